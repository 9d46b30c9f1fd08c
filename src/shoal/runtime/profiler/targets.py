"""What to profile: the application loaded from its file, its inputs, and the GPU-table models of its stages."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from shoal.app import INPUT, App, StageFailed, run_stages
from shoal.app.loader import load_app
from shoal.runtime.profiler.options import INPUT_SIZES, InputsFn, ProfilerError

__all__ = ["Target", "default_gpu_table", "load_target", "reference_values", "stage_gpu_models", "zoo_inputs"]


@dataclass
class Target:
    """An application to profile, with its inputs and the GPU-table models of its stages."""

    app: App
    source: str
    inputs: InputsFn | None
    inputs_source: str
    gpu_models: dict[str, str] = field(default_factory=dict)


def load_target(ref: str, gpu_models: Mapping[str, str] | None = None) -> Target:
    """Load ``FILE.py[:APP]`` and what the file says about profiling it.

    Inputs come from the file's ``profile_inputs(size: str) -> Any`` if it defines one, else from
    ``shoal.zoo.inputs.sample_inputs`` for the example applications. GPU models come from the file's
    ``GPU_MODELS = {"stage": "model"}`` (keys may also be ``"app/stage"``), updated with ``gpu_models``.
    """
    app = load_app(ref)
    module = _module_of(ref, app)
    hook = getattr(module, "profile_inputs", None) if module is not None else None
    if hook is not None and not callable(hook):
        raise ProfilerError(f"{ref}: profile_inputs must be a function (size: str) -> input")
    if hook is not None:
        inputs, where = hook, f"profile_inputs() of {Path(ref.partition(':')[0]).name}"
    else:
        inputs, where = zoo_inputs(app.name), "shoal.zoo.inputs.sample_inputs"
    declared = getattr(module, "GPU_MODELS", None) if module is not None else None
    if declared is not None and not isinstance(declared, Mapping):
        raise ProfilerError(f"{ref}: GPU_MODELS must be a dict of stage name -> GPU table model")
    for stage in gpu_models or {}:
        if stage not in app.stages and stage.partition("/")[2] not in app.stages:
            raise ProfilerError(f"GPU model given for {stage!r}, which is not a stage of {app.name!r}")
    mapping = {**dict(declared or {}), **dict(gpu_models or {})}
    return Target(app, ref, inputs, where if inputs is not None else "none", stage_gpu_models(app, mapping))


def _module_of(ref: str, app: App) -> ModuleType | None:
    """The module :func:`load_app` made of the file (it is registered in ``sys.modules``)."""
    path = Path(ref.partition(":")[0]).resolve()
    for mod in list(sys.modules.values()):
        f = getattr(mod, "__file__", None)
        if f and Path(f).resolve() == path and any(v is app for v in vars(mod).values()):
            return mod
    return None


def stage_gpu_models(app: App, mapping: Mapping[str, str]) -> dict[str, str]:
    """Stage -> GPU-table model name for ``app``: ``"app/stage"`` keys first, then ``"stage"``."""
    out: dict[str, str] = {}
    for name in app.stages:
        model = mapping.get(f"{app.name}/{name}", mapping.get(name))
        if model is not None:
            out[name] = str(model)
    return out


def zoo_inputs(app_name: str, n: int = 48, seed: int = 0) -> InputsFn | None:
    """Small, medium and large inputs of an example application from ``shoal.zoo.inputs``: of ``n`` samples, sorted
    by size, the smallest, the median and the largest. None if the zoo does not know the application."""
    try:
        from shoal.zoo.inputs import APPS, input_size, sample_inputs
    except ImportError:
        return None
    if app_name not in APPS:
        return None
    cache: dict[str, Any] = {}

    def inputs(size: str) -> Any:
        if not cache:
            xs = sample_inputs(app_name, n, seed)
            order = sorted(range(n), key=lambda i: input_size(xs[i]))
            cache.update(small=xs[order[0]], medium=xs[order[n // 2]], large=xs[order[-1]])
        if size not in cache:
            raise ProfilerError(f"sample inputs come in sizes {', '.join(INPUT_SIZES)}, not {size!r}")
        return cache[size]

    return inputs


def default_gpu_table() -> Path | None:
    """``../shared/gpu-profiles/rapp_v100_latency.csv`` next to this source checkout, if it is there."""
    root = Path(__file__).resolve().parents[4]
    table = root.parent / "shared" / "gpu-profiles" / "rapp_v100_latency.csv"
    return table if (root / "pyproject.toml").is_file() and table.is_file() else None


def _as_input(app: App, x: Any) -> Any:
    """What the runtime hands the first stage: the app's input spec turns lists into arrays."""
    if app.input is not None and not isinstance(x, np.ndarray):
        return np.asarray(x, dtype=app.input.dtype)
    return x


def reference_values(app: App, inputs: InputsFn, sizes: Sequence[str], notes: list[str]) -> dict[str, dict[str, Any]]:
    """Every stage's value for each input size, from running the whole application in this process."""
    states = {n: s.load() for n, s in app.stages.items() if s.load is not None}
    out: dict[str, dict[str, Any]] = {}
    for size in sizes:
        try:
            x = inputs(size)
        except ProfilerError:
            raise
        except Exception as e:
            raise ProfilerError(f"profile_inputs({size!r}) raised {type(e).__name__}: {e}") from e
        try:
            out[size] = run_stages(app, list(app.stages), {INPUT: _as_input(app, x)}, states)
        except StageFailed as e:
            notes.append(f"the {size} input fails in process ({e}); not profiled at that size")
    if not out:
        raise ProfilerError(f"no input size runs through {app.name!r} in process; see the notes: {'; '.join(notes)}")
    return out
