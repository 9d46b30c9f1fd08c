"""What the simulator needs to know about an application that its code does not say: how long each stage runs.

A :class:`StageModel` is a CPU time (constant, or lognormal with a coefficient of variation) or a GPU model of the
measured table run on the function's GPU share. A :class:`Deployment` is an application under a plan with a model
for each stage, and optionally an explicit GPU share (SM partition, time quota) per function.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shoal.app import App, Plan
from shoal.sim.gpu import GpuShare

__all__ = ["Deployment", "ModelError", "StageModel", "read_stage_models"]


class ModelError(ValueError):
    """A stage model or deployment is malformed."""


@dataclass(frozen=True)
class StageModel:
    """How long one stage runs on one batch.

    CPU: ``mean_s`` per request (lognormal with coefficient of variation ``cv`` when ``cv > 0``); a batch of b
    takes ``mean_s * b ** batch_exponent`` (1: no gain from batching). GPU: the table's latency of ``model`` at the
    batch size and the function's (sm, quota). A stage not marked ``batch`` runs the items of a batch one after
    another. ``output_bytes`` is what its output puts on the data plane; ``load_s`` adds to an instance's cold start.
    ``cpu_fraction`` is the share of a CPU stage's time spent on a core (1: CPU-bound; less for a stage that sleeps,
    does I/O or waits for a device): only that share is slowed down by CPU contention (``shoal.sim.cpu``).
    """

    kind: str = "cpu"
    mean_s: float = 0.01
    cv: float = 0.0
    model: str | None = None
    batch_exponent: float = 1.0
    output_bytes: int = 0
    load_s: float = 0.0
    cpu_fraction: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ("cpu", "gpu"):
            raise ModelError(f"stage model kind must be 'cpu' or 'gpu', got {self.kind!r}")
        if self.kind == "gpu" and not self.model:
            raise ModelError("a GPU stage model needs the name of a model of the GPU table")
        if not (self.mean_s > 0 and math.isfinite(self.mean_s)) or self.cv < 0:
            raise ModelError(f"need mean_s > 0 and cv >= 0, got {self.mean_s!r}, {self.cv!r}")
        if self.output_bytes < 0 or self.load_s < 0 or self.batch_exponent < 0:
            raise ModelError("output_bytes, load_s and batch_exponent must be >= 0")
        if not 0.0 <= self.cpu_fraction <= 1.0:
            raise ModelError(f"cpu_fraction is a share of the stage's time, in [0, 1]; got {self.cpu_fraction!r}")

    @classmethod
    def cpu(cls, mean_s: float, cv: float = 0.0, **kw: Any) -> StageModel:
        return cls("cpu", mean_s=mean_s, cv=cv, **kw)

    @classmethod
    def gpu(cls, model: str, **kw: Any) -> StageModel:
        return cls("gpu", model=model, **kw)


@dataclass(frozen=True)
class Deployment:
    """An application under a plan, with a model of every stage's time. Stages without one get ``default``."""

    app: App
    plan: Plan
    stages: Mapping[str, StageModel] = field(default_factory=dict)
    gpu_shares: Mapping[str, GpuShare] = field(default_factory=dict)
    default: StageModel = field(default_factory=StageModel)
    name: str | None = None

    def __post_init__(self) -> None:
        if self.plan.app is not self.app:
            raise ModelError(f"the plan was made for app {self.plan.app.name!r}, not {self.app.name!r}")
        unknown = set(self.stages) - set(self.app.stages)
        if unknown:
            raise ModelError(f"stage models given for {sorted(unknown)}, which are not stages of {self.app.name!r}")
        fns = {f.name for f in self.plan.functions}
        if set(self.gpu_shares) - fns:
            raise ModelError(f"GPU shares given for {sorted(set(self.gpu_shares) - fns)}, not functions of the plan")

    def model_of(self, stage: str) -> StageModel:
        return self.stages.get(stage, self.default)

    @property
    def label(self) -> str:
        return self.name or self.app.name


def read_stage_models(path: str | Path) -> tuple[dict[str, StageModel], dict[str, GpuShare]]:
    """Stage models and GPU shares from TOML::

    [stages.backbone]
    kind = "gpu"          # or "cpu" (then mean_ms and cv)
    model = "resnet50"
    output_kb = 4
    load_ms = 800
    cpu_fraction = 1.0    # share of its time on a core (CPU stages; for the CPU-contention model)

    [functions.backbone]  # optional: the GPU share of a function of the plan
    sm = 0.3
    quota = 0.5
    memory_mb = 2000
    """
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ModelError(f"cannot read stage models from {str(p)!r}: {e}") from None
    stages: dict[str, StageModel] = {}
    for name, d in data.get("stages", {}).items():
        d = dict(d)
        known = {"kind", "mean_ms", "cv", "model", "batch_exponent", "output_kb", "load_ms", "cpu_fraction"}
        if set(d) - known:
            raise ModelError(f"{p}: stage {name!r} has unknown key(s) {sorted(set(d) - known)}")
        stages[name] = StageModel(
            kind=d.get("kind", "cpu"),
            mean_s=d.get("mean_ms", 10.0) / 1e3,
            cv=d.get("cv", 0.0),
            model=d.get("model"),
            batch_exponent=d.get("batch_exponent", 1.0),
            output_bytes=int(d.get("output_kb", 0) * 1024),
            load_s=d.get("load_ms", 0.0) / 1e3,
            cpu_fraction=d.get("cpu_fraction", 1.0),
        )
    shares = {
        name: GpuShare(sm=d.get("sm", 1.0), quota=d.get("quota", 1.0), memory_mb=int(d.get("memory_mb", 0)))
        for name, d in data.get("functions", {}).items()
    }
    return stages, shares
