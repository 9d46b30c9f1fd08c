"""One string names a load: a synthetic process or a trace file, as ``shoal sim --trace`` takes it.

- ``poisson:RATE:SECONDS``
- ``mmpp:LOW:HIGH:SECONDS`` (bursty: LOW req/s for 30 s on average, HIGH for 5 s on average)
- ``diurnal:MEAN:SECONDS`` (amplitude 0.5, period one day, peak at noon)
- ``ramp:START:END:SECONDS``
- a CSV path: the format is told by its header (Azure Functions 2019 counts, 2021 invocations, LLM 2023).
Imports nothing of Shoal.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from shoal.workload import generators as gen
from shoal.workload.traces import (
    Trace,
    TraceError,
    read_azure_functions_2019,
    read_azure_functions_2021,
    read_azure_llm_2023,
    sample_functions,
)

__all__ = ["load", "prepare"]


def _synthetic(name: str, times: np.ndarray, seconds: float) -> Trace:
    return Trace(name, (name,), times, np.zeros(len(times), np.int32), seconds)


def load(spec: str, *, seed: int = 0, spread: str = "even") -> Trace:
    """The arrivals ``spec`` names (see the module docstring)."""
    kind, _, rest = spec.partition(":")
    args = rest.split(":") if rest else []
    try:
        nums = [float(a) for a in args]
    except ValueError:
        nums = []
    if kind == "poisson" and len(nums) == 2:
        return _synthetic(spec, gen.poisson(nums[0], nums[1], seed), nums[1])
    if kind == "mmpp" and len(nums) == 3:
        return _synthetic(spec, gen.mmpp([nums[0], nums[1]], [30.0, 5.0], nums[2], seed), nums[2])
    if kind == "diurnal" and len(nums) == 2:
        return _synthetic(spec, gen.diurnal(nums[0], nums[1], peak_at_s=43_200.0, seed=seed), nums[1])
    if kind == "ramp" and len(nums) == 3:
        return _synthetic(spec, gen.ramp(nums[0], nums[1], nums[2], seed), nums[2])
    path = Path(spec)
    if not path.is_file():
        raise TraceError(
            f"cannot read load {spec!r}: give a trace CSV, or poisson:RATE:SECONDS, mmpp:LOW:HIGH:SECONDS, "
            "diurnal:MEAN:SECONDS or ramp:START:END:SECONDS"
        )
    with path.open(encoding="utf-8") as f:
        header = f.readline()
    if "HashFunction" in header:
        return read_azure_functions_2019(path, spread=spread, seed=seed)
    if "end_timestamp" in header:
        return read_azure_functions_2021(path)
    if "TIMESTAMP" in header:
        return read_azure_llm_2023(path)
    raise TraceError(f"{spec!r}: not a trace format Shoal reads (Azure Functions 2019, 2021, or Azure LLM 2023)")


def prepare(
    spec: str,
    *,
    seed: int = 0,
    functions: int | None = None,
    compress: float = 1.0,
    rate_scale: float = 1.0,
    minutes: float | None = None,
) -> Trace:
    """The arrivals ``spec`` names, shaped the way ``shoal sim`` and ``shoal load`` take options: ``functions``
    trace functions sampled (None: as the trace has them), time divided by ``compress``, rate multiplied by
    ``rate_scale``, and only the first ``minutes`` kept."""
    t = load(spec, seed=seed)
    if functions is not None and (functions != len(t.functions) or functions > 1):
        t = sample_functions(t, functions, seed=seed)
    t = t.compressed(compress) if compress != 1.0 else t
    t = t.rate_scaled(rate_scale, seed=seed) if rate_scale != 1.0 else t
    if minutes is not None:
        if not minutes > 0:
            raise TraceError(f"minutes must be > 0, got {minutes!r}")
        t = t.window(0.0, min(t.span_s, minutes * 60))
    return t
