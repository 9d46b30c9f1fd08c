"""Profiles: what ``shoal profile`` measured about an application, as a versioned JSON document.

A profile is the predictors' and the planner's input: per stage (plan fine) and per function of other plans, latency
against vCPU share, batch size and input size, with its spread; the cold start and peak memory of an instance; how
many bytes each output puts on the data plane; the cost of one data hop against bytes; and GPU latency under
spatio-temporal sharing, taken from a table measured elsewhere. ``docs/profiles.md`` describes every field.

This module is the schema (frozen dataclasses, each with its ``to_dict`` and validating ``from_dict``); reading and
writing files is ``shoal.predict.profile_io``, the GPU table ``shoal.predict.gpu_table``. It does no measuring (that
is ``shoal.runtime.profiler``) and imports nothing of Shoal's runtime.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from shoal.predict.fields import (
    ProfileError,
    bool_field,
    expect_obj,
    get_field,
    int_field,
    ints_field,
    list_field,
    num_field,
    nums_field,
    str_field,
    strs_field,
)

if TYPE_CHECKING:
    from shoal.app import App

__all__ = [
    "SCHEMA",
    "GPU_TABLE_SOURCE",
    "ProfileError",
    "Spread",
    "Point",
    "HopPoint",
    "GpuPoint",
    "StageInfo",
    "AppInfo",
    "Settings",
    "Profile",
]

#: The schema this Shoal writes and reads. The number after the slash changes when a field changes meaning or a
#: required field is added or removed; readers refuse other numbers rather than misread them.
SCHEMA = "shoal.profile/1"
_SCHEMA_PREFIX = "shoal.profile/"
_VERSION = 1

#: Where GPU rows come from: no GPU here, so they are read from the RaPP table (../shared/gpu-profiles/README.md).
GPU_TABLE_SOURCE = "measured elsewhere: RaPP V100 table"


# -- the schema --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Spread:
    """The spread of repeated measurements, in milliseconds: median, 10th and 90th percentile, coefficient of
    variation (sample standard deviation / mean) and the number of samples."""

    median: float
    p10: float
    p90: float
    cv: float
    n: int

    @classmethod
    def of(cls, samples_ms: Sequence[float]) -> Spread:
        if not samples_ms:
            raise ValueError("a spread needs at least one sample")
        a = np.asarray(samples_ms, dtype=np.float64)
        mean = float(a.mean())
        cv = float(a.std(ddof=1) / mean) if len(a) > 1 and mean > 0 else 0.0
        p10, med, p90 = (float(v) for v in np.percentile(a, [10, 50, 90]))
        return cls(round(med, 4), round(p10, 4), round(p90, 4), round(cv, 4), len(a))

    def to_dict(self) -> dict[str, Any]:
        return {"median": self.median, "p10": self.p10, "p90": self.p90, "cv": self.cv, "n": self.n}

    @classmethod
    def from_dict(cls, d: Any, where: str) -> Spread:
        expect_obj(d, where)
        s = cls(
            num_field(d, "median", where, lo=0),
            num_field(d, "p10", where, lo=0),
            num_field(d, "p90", where, lo=0),
            num_field(d, "cv", where, lo=0),
            int_field(d, "n", where, lo=1),
        )
        if not s.p10 <= s.median <= s.p90:
            raise ProfileError(f"{where}: need p10 <= median <= p90, got {s.p10} / {s.median} / {s.p90}")
        return s


@dataclass(frozen=True)
class Point:
    """One measured point: a stage (a function of plan fine) or a function of another plan, at one vCPU share,
    batch size and input size.

    ``batching`` says how a batch was made: ``"rows"``, one request carrying ``batch`` rows (stages declared
    ``batch=True``); ``"requests"``, ``batch`` requests sent at once and run as one batch by the runtime's dynamic
    batching (functions). ``latency_ms`` is a request's latency through the runtime (for a batch, its slowest
    request's); ``busy_ms`` the instance's time on the call (the whole batch); ``cpu_ms``, optional (None in
    profiles written before it), the instance's CPU time per call, mean over the repeats: with ``busy_ms`` it tells
    CPU-bound stages from ones that sleep or wait, which the simulator's CPU-contention model needs.
    """

    kind: str  # "stage" | "function"
    name: str
    plan: str
    stages: tuple[str, ...]
    vcpu: float
    batch: int
    batching: str
    input_size: str
    input_bytes: int
    latency_ms: Spread
    busy_ms: Spread
    output_bytes: int
    load_ms: float
    cold_start_ms: float
    peak_rss_mb: float
    cpu_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        rest = _as_dict(self)
        del rest["kind"], rest["name"]
        if rest["cpu_ms"] is None:
            del rest["cpu_ms"]
        return {self.kind: self.name, **rest}

    @classmethod
    def from_dict(cls, d: Any, kind: str, where: str) -> Point:
        expect_obj(d, where)
        batching = str_field(d, "batching", where)
        if batching not in ("rows", "requests"):
            raise ProfileError(f"{where}.batching: expected 'rows' or 'requests', got {batching!r}")
        return cls(
            kind=kind,
            name=str_field(d, kind, where),
            plan=str_field(d, "plan", where),
            stages=tuple(strs_field(d, "stages", where)),
            vcpu=num_field(d, "vcpu", where, lo=0, strict=True),
            batch=int_field(d, "batch", where, lo=1),
            batching=batching,
            input_size=str_field(d, "input_size", where),
            input_bytes=int_field(d, "input_bytes", where, lo=0),
            latency_ms=Spread.from_dict(get_field(d, "latency_ms", where), f"{where}.latency_ms"),
            busy_ms=Spread.from_dict(get_field(d, "busy_ms", where), f"{where}.busy_ms"),
            output_bytes=int_field(d, "output_bytes", where, lo=0),
            load_ms=num_field(d, "load_ms", where, lo=0),
            cold_start_ms=num_field(d, "cold_start_ms", where, lo=0),
            peak_rss_mb=num_field(d, "peak_rss_mb", where, lo=0),
            cpu_ms=num_field(d, "cpu_ms", where, lo=0) if "cpu_ms" in d else None,
        )


@dataclass(frozen=True)
class HopPoint:
    """The cost of one function boundary for a value of ``bytes`` bytes: an echo chain served fine and coarse,
    ``per_hop_ms = (median fine - median coarse) / extra_hops``."""

    bytes: int
    per_hop_ms: float
    extra_hops: int
    fine_ms: Spread
    coarse_ms: Spread

    def to_dict(self) -> dict[str, Any]:
        return _as_dict(self)

    @classmethod
    def from_dict(cls, d: Any, where: str) -> HopPoint:
        expect_obj(d, where)
        return cls(
            bytes=int_field(d, "bytes", where, lo=1),
            per_hop_ms=num_field(d, "per_hop_ms", where),  # may come out a little negative for tiny values: noise
            extra_hops=int_field(d, "extra_hops", where, lo=1),
            fine_ms=Spread.from_dict(get_field(d, "fine_ms", where), f"{where}.fine_ms"),
            coarse_ms=Spread.from_dict(get_field(d, "coarse_ms", where), f"{where}.coarse_ms"),
        )


@dataclass(frozen=True)
class GpuPoint:
    """GPU latency of the model that stands for ``stage``, at a batch size, SM partition and time quota."""

    stage: str
    model: str
    batch: int
    sm_percent: int
    quota_percent: int
    latency_ms: float
    source: str = GPU_TABLE_SOURCE

    def to_dict(self) -> dict[str, Any]:
        return _as_dict(self)

    @classmethod
    def from_dict(cls, d: Any, where: str) -> GpuPoint:
        expect_obj(d, where)
        return cls(
            stage=str_field(d, "stage", where),
            model=str_field(d, "model", where),
            batch=int_field(d, "batch", where, lo=1),
            sm_percent=int_field(d, "sm_percent", where, lo=1),
            quota_percent=int_field(d, "quota_percent", where, lo=1),
            latency_ms=num_field(d, "latency_ms", where, lo=0, strict=True),
            source=str_field(d, "source", where),
        )


@dataclass(frozen=True)
class StageInfo:
    """A stage as the application declares it: its place in the graph and its resources, all the predictors need
    of the application (``AppInfo.graph``). ``gpu_memory_mb`` and ``max_concurrency`` are absent from profiles
    written before they were recorded; such profiles read as the defaults (0, 1)."""

    name: str
    after: tuple[str, ...]
    batch: bool
    vcpu: float
    memory_mb: int
    gpu: float
    gpu_memory_mb: int = 0
    max_concurrency: int = 1

    def to_dict(self) -> dict[str, Any]:
        return _as_dict(self)

    @classmethod
    def from_dict(cls, d: Any, where: str) -> StageInfo:
        expect_obj(d, where)
        return cls(
            name=str_field(d, "name", where),
            after=tuple(strs_field(d, "after", where)),
            batch=bool_field(d, "batch", where),
            vcpu=num_field(d, "vcpu", where, lo=0, strict=True),
            memory_mb=int_field(d, "memory_mb", where, lo=1),
            gpu=num_field(d, "gpu", where, lo=0),
            gpu_memory_mb=int_field(d, "gpu_memory_mb", where, lo=0) if "gpu_memory_mb" in d else 0,
            max_concurrency=int_field(d, "max_concurrency", where, lo=1) if "max_concurrency" in d else 1,
        )


@dataclass(frozen=True)
class AppInfo:
    name: str
    slo: str
    source: str
    stages: tuple[StageInfo, ...]

    def to_dict(self) -> dict[str, Any]:
        return _as_dict(self)

    def graph(self) -> App:
        """The application as the profile recorded it: its stages, their order and resources, and its SLO, enough to
        parse plans and predict them, with no code behind the stages (calling one raises). Lets a predictor be
        fitted or used from data files alone, without importing the application a file names."""
        from shoal.app import App, AppError

        app = App(self.name, slo=self.slo)
        for st in self.stages:
            try:
                app.stage(
                    _profiled_only(self.name, st.name),
                    name=st.name,
                    after=st.after,
                    vcpu=st.vcpu,
                    memory_mb=st.memory_mb,
                    gpu=st.gpu,
                    gpu_memory_mb=st.gpu_memory_mb,
                    max_concurrency=st.max_concurrency,
                    batch=st.batch,
                )
            except (AppError, ValueError) as e:
                raise ProfileError(f"app.stages: {st.name!r}: {e}") from None
        return app

    @classmethod
    def from_dict(cls, d: Any, where: str) -> AppInfo:
        expect_obj(d, where)
        return cls(
            name=str_field(d, "name", where),
            slo=str_field(d, "slo", where),
            source=str_field(d, "source", where),
            stages=tuple(
                StageInfo.from_dict(s, f"{where}.stages[{i}]") for i, s in enumerate(list_field(d, "stages", where))
            ),
        )


def _profiled_only(app: str, stage: str) -> Any:
    def run(*_: Any) -> Any:
        raise RuntimeError(f"stage {stage!r} of {app!r} was built from a profile: it can be planned, not run")

    return run


@dataclass(frozen=True)
class Settings:
    """How the profile was taken."""

    repeats: int
    warmup: int
    vcpus: tuple[float, ...]
    batch_sizes: tuple[int, ...]
    input_sizes: tuple[str, ...]
    plans: tuple[str, ...]
    hop_bytes: tuple[int, ...]
    inputs: str  # where the inputs came from

    def to_dict(self) -> dict[str, Any]:
        return _as_dict(self)

    @classmethod
    def from_dict(cls, d: Any, where: str) -> Settings:
        expect_obj(d, where)
        return cls(
            repeats=int_field(d, "repeats", where, lo=1),
            warmup=int_field(d, "warmup", where, lo=0),
            vcpus=tuple(nums_field(d, "vcpus", where)),
            batch_sizes=tuple(ints_field(d, "batch_sizes", where)),
            input_sizes=tuple(strs_field(d, "input_sizes", where)),
            plans=tuple(strs_field(d, "plans", where)),
            hop_bytes=tuple(ints_field(d, "hop_bytes", where)),
            inputs=str_field(d, "inputs", where),
        )


@dataclass(frozen=True)
class Profile:
    """A whole profile: machine, application, settings, and the measured rows."""

    created: str
    machine: Mapping[str, Any]
    app: AppInfo
    settings: Settings
    stages: tuple[Point, ...] = ()
    functions: tuple[Point, ...] = ()
    hops: tuple[HopPoint, ...] = ()
    gpu: tuple[GpuPoint, ...] = ()
    notes: tuple[str, ...] = ()
    schema: str = field(default=SCHEMA)

    # -- reading ------------------------------------------------------------------------------------------------------
    @property
    def points(self) -> tuple[Point, ...]:
        return self.stages + self.functions

    def point(
        self, name: str, *, plan: str = "fine", vcpu: float = 1.0, batch: int = 1, input_size: str = "medium"
    ) -> Point | None:
        """The row of stage (plan fine) or function ``name`` at the given point, or None if it was not measured."""
        for p in self.stages if plan == "fine" else self.functions:
            if (p.name, p.plan, p.vcpu, p.batch, p.input_size) == (name, plan, vcpu, batch, input_size):
                return p
        return None

    # -- (de)serialising ----------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "created": self.created,
            "machine": dict(self.machine),
            "app": self.app.to_dict(),
            "settings": self.settings.to_dict(),
            "stages": [p.to_dict() for p in self.stages],
            "functions": [p.to_dict() for p in self.functions],
            "hops": [h.to_dict() for h in self.hops],
            "gpu": [g.to_dict() for g in self.gpu],
            "notes": list(self.notes),
        }

    def dumps(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, doc: Any) -> Profile:
        """Validate a decoded JSON document and build the profile; :class:`ProfileError` names the first bad field."""
        expect_obj(doc, "profile")
        _check_schema(doc.get("schema"))
        machine = get_field(doc, "machine", "profile")
        expect_obj(machine, "machine")
        str_field(machine, "cpu", "machine")
        int_field(machine, "cores", "machine", lo=1)
        return cls(
            created=str_field(doc, "created", "profile"),
            machine=machine,
            app=AppInfo.from_dict(get_field(doc, "app", "profile"), "app"),
            settings=Settings.from_dict(get_field(doc, "settings", "profile"), "settings"),
            stages=tuple(
                Point.from_dict(p, "stage", f"stages[{i}]") for i, p in enumerate(list_field(doc, "stages", "profile"))
            ),
            functions=tuple(
                Point.from_dict(p, "function", f"functions[{i}]")
                for i, p in enumerate(list_field(doc, "functions", "profile"))
            ),
            hops=tuple(HopPoint.from_dict(h, f"hops[{i}]") for i, h in enumerate(list_field(doc, "hops", "profile"))),
            gpu=tuple(GpuPoint.from_dict(g, f"gpu[{i}]") for i, g in enumerate(list_field(doc, "gpu", "profile"))),
            notes=tuple(strs_field(doc, "notes", "profile")),
            schema=SCHEMA,
        )


def _check_schema(value: Any) -> None:
    if value is None:
        raise ProfileError(f'schema: missing; a Shoal profile starts with "schema": "{SCHEMA}"')
    if not isinstance(value, str) or not value.startswith(_SCHEMA_PREFIX):
        raise ProfileError(f"schema: {value!r} is not a Shoal profile (expected {SCHEMA!r})")
    version = value[len(_SCHEMA_PREFIX) :]
    if version != str(_VERSION):
        newer = version.isdigit() and int(version) > _VERSION
        hint = "upgrade Shoal to read it" if newer else "profile the application again with this Shoal"
        raise ProfileError(
            f"schema: version {version!r} of {value!r} is not supported: this Shoal reads {SCHEMA}; {hint}"
        )


def _as_dict(row: Any) -> dict[str, Any]:
    """A row's fields in their order, for JSON: tuples as lists, rows as their ``to_dict()``."""
    return {f.name: _plain(getattr(row, f.name)) for f in fields(row)}


def _plain(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    return v.to_dict() if hasattr(v, "to_dict") else v
