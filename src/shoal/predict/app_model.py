"""The one interface of application-level prediction: a profile, a plan and a load in; per-function and end-to-end
latency percentiles, SLO hit rate, instances and cost out.

Every application predictor (analytical, learned, empirical) implements :class:`AppPredictor`, so the planner and
the adaptive controller can take any of them, and compare them on the same runs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from shoal.app import SLO, Plan
from shoal.predict.profile import Profile

__all__ = ["Load", "FunctionPrediction", "Prediction", "AppPredictor", "PredictError", "read_json_doc"]


class PredictError(ValueError):
    """A prediction was asked for with inputs it cannot answer: the message says which and what to do."""


def read_json_doc(path: Path, what: str, not_json: Callable[[ValueError], str]) -> Any:
    """The decoded JSON of a predictor's file (never a pickle), or a PredictError: ``cannot read WHAT 'PATH': why``
    when the file cannot be read, ``not_json(error)`` when it is not JSON (the caller says what the file should be)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise PredictError(f"cannot read {what} {str(path)!r}: {e.strerror or e}") from None
    except ValueError as e:
        raise PredictError(not_json(e)) from None


@dataclass(frozen=True)
class Load:
    """What arrives: ``rate_rps`` requests per second on average; ``scv``, the squared coefficient of variation of
    inter-arrival times (1 for Poisson, above 1 for bursty, 0 for evenly spaced); ``input_mix``, the fraction of
    requests at each input size the profile measured (None: the profile's middle size)."""

    rate_rps: float
    scv: float = 1.0
    input_mix: Mapping[str, float] | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate_rps) and self.rate_rps > 0):
            raise PredictError(f"load rate must be a finite number of requests per second > 0, got {self.rate_rps!r}")
        if not (math.isfinite(self.scv) and self.scv >= 0):
            raise PredictError(f"load scv (squared CV of inter-arrival times) must be >= 0, got {self.scv!r}")
        if self.input_mix is not None:
            if not self.input_mix:
                raise PredictError("input_mix is empty: give fractions per input size, e.g. {'small': 0.5, ...}")
            bad = {k: v for k, v in self.input_mix.items() if not (math.isfinite(v) and v >= 0)}
            if bad or sum(self.input_mix.values()) <= 0:
                raise PredictError(f"input_mix fractions must be >= 0 and not all 0, got {dict(self.input_mix)}")

    def mix(self, sizes: tuple[str, ...]) -> dict[str, float]:
        """Normalised fractions over the measured ``sizes``; an unmeasured size is refused, naming those measured."""
        if self.input_mix is None:
            return {sizes[len(sizes) // 2] if "medium" not in sizes else "medium": 1.0}
        unknown = [s for s in self.input_mix if s not in sizes]
        if unknown:
            raise PredictError(f"input size {unknown[0]!r} was not profiled; the profile has {', '.join(sizes)}")
        total = sum(self.input_mix.values())
        return {s: v / total for s, v in self.input_mix.items() if v > 0}

    def to_dict(self) -> dict[str, Any]:
        return {"rate_rps": self.rate_rps, "scv": self.scv, "input_mix": dict(self.input_mix or {}) or None}


def _ms(v: float) -> float | None:
    return round(v * 1e3, 4) if math.isfinite(v) else None


@dataclass(frozen=True)
class FunctionPrediction:
    """One function of the plan. Times in seconds; ``latency_s`` maps 50/95/99 to percentiles of the time a request
    spends in this function (overhead, batching, queue, service, cold start)."""

    name: str
    stages: tuple[str, ...]
    instances: int  # steady-state instances under this load (the autoscaler's fixed point)
    mean_instances: float  # live on average, idle keep-alive and scale-to-zero counted
    utilisation: float
    batch: float  # mean batch size
    service_s: float  # mean busy time of one batch
    wait_s: float  # mean queue wait (inf when overloaded)
    cold_start_p: float
    latency_s: Mapping[int, float]
    cost_per_s: float  # resource cost, USD per second
    stable: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "stages": list(self.stages),
            "instances": self.instances,
            "mean_instances": self.mean_instances,
            "utilisation": self.utilisation,
            "batch": self.batch,
            "service_ms": _ms(self.service_s),
            "wait_ms": _ms(self.wait_s),
            "cold_start_p": self.cold_start_p,
            "latency_ms": {f"p{k}": _ms(v) for k, v in self.latency_s.items()},
            "cost_per_s_usd": self.cost_per_s,
            "stable": self.stable,
        }


@dataclass(frozen=True)
class Prediction:
    """End to end: latency percentiles (inf where requests are lost), the SLO and the fraction of requests that
    meet its latency bound (lost requests miss), instances, and cost (resource cost per second and per request; the
    user bill per request)."""

    predictor: str
    plan: str
    load: Load
    slo: SLO
    latency_s: Mapping[int, float]
    slo_hit_rate: float
    instances: int
    mean_instances: float
    cost_per_s: float
    cost_per_request: float
    bill_per_request: float
    functions: tuple[FunctionPrediction, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def p99_s(self) -> float:
        return self.latency_s[99]

    def to_dict(self) -> dict[str, Any]:
        return {
            "predictor": self.predictor,
            "plan": self.plan,
            "load": self.load.to_dict(),
            "slo": str(self.slo),
            "latency_ms": {f"p{k}": _ms(v) for k, v in self.latency_s.items()},
            "slo_hit_rate": self.slo_hit_rate,
            "instances": self.instances,
            "mean_instances": self.mean_instances,
            "resource_cost_per_s_usd": self.cost_per_s,
            "resource_cost_per_request_usd": self.cost_per_request,
            "user_bill_per_request_usd": self.bill_per_request,
            "functions": [f.to_dict() for f in self.functions],
            "notes": list(self.notes),
        }


class AppPredictor(Protocol):
    """What the planner and the adaptive controller call. Pure: no I/O, no clock; the same inputs give the same
    prediction."""

    kind: str

    def predict(self, profile: Profile, plan: Plan, load: Load, slo: SLO | None = None) -> Prediction: ...
