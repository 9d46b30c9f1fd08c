"""Profiles: what ``shoal profile`` measured about an application, as a versioned JSON document.

A profile is the predictors' and the planner's input: per stage (plan fine) and per function of other plans, latency
against vCPU share, batch size and input size, with its spread; the cold start and peak memory of an instance; how
many bytes each output puts on the data plane; the cost of one data hop against bytes; and GPU latency under
spatio-temporal sharing, taken from a table measured elsewhere. ``docs/profiles.md`` describes every field.

This module is the schema (frozen dataclasses), the reader, the writer and the validator. It does no measuring (that
is ``shoal.runtime.profiler``) and imports nothing of Shoal's runtime.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "SCHEMA",
    "GPU_TABLE_SOURCE",
    "ZOO_GPU_MODELS",
    "GPU_BATCHES",
    "GPU_SM_PERCENTS",
    "GPU_QUOTA_PERCENTS",
    "ProfileError",
    "Spread",
    "Point",
    "HopPoint",
    "GpuPoint",
    "StageInfo",
    "AppInfo",
    "Settings",
    "Profile",
    "read_profile",
    "write_profile",
    "validate_profile",
    "table_model",
    "read_gpu_table",
]

#: The schema this Shoal writes and reads. The number after the slash changes when a field changes meaning or a
#: required field is added or removed; readers refuse other numbers rather than misread them.
SCHEMA = "shoal.profile/1"
_SCHEMA_PREFIX = "shoal.profile/"
_VERSION = 1

#: Where GPU rows come from: no GPU here, so they are read from the RaPP table (../shared/gpu-profiles/README.md).
GPU_TABLE_SOURCE = "measured elsewhere: RaPP V100 table"
#: Which model of the GPU table stands for each backbone of ``shoal.zoo`` (None: no counterpart in the table).
ZOO_GPU_MODELS: dict[str, str | None] = {
    "small_cnn": None,
    "resnet18_like": "resnet18",
    "resnet50_like": "resnet50",
    "mobilenet_v2_like": "mobilenet_v2",
}
#: The points of the GPU table copied into a profile: every batch size, three SM partitions, two time quotas.
GPU_BATCHES = (1, 2, 4, 8)
GPU_SM_PERCENTS = (25, 50, 100)
GPU_QUOTA_PERCENTS = (50, 100)


class ProfileError(ValueError):
    """A profile file is malformed, or of a schema version this Shoal does not read. The message names the field."""


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
        _obj(d, where)
        s = cls(
            _num(d, "median", where, lo=0),
            _num(d, "p10", where, lo=0),
            _num(d, "p90", where, lo=0),
            _num(d, "cv", where, lo=0),
            _int(d, "n", where, lo=1),
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
    request's); ``busy_ms`` the instance's time on the call (the whole batch).
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

    def to_dict(self) -> dict[str, Any]:
        return {
            self.kind: self.name,
            "plan": self.plan,
            "stages": list(self.stages),
            "vcpu": self.vcpu,
            "batch": self.batch,
            "batching": self.batching,
            "input_size": self.input_size,
            "input_bytes": self.input_bytes,
            "latency_ms": self.latency_ms.to_dict(),
            "busy_ms": self.busy_ms.to_dict(),
            "output_bytes": self.output_bytes,
            "load_ms": self.load_ms,
            "cold_start_ms": self.cold_start_ms,
            "peak_rss_mb": self.peak_rss_mb,
        }

    @classmethod
    def from_dict(cls, d: Any, kind: str, where: str) -> Point:
        _obj(d, where)
        batching = _str(d, "batching", where)
        if batching not in ("rows", "requests"):
            raise ProfileError(f"{where}.batching: expected 'rows' or 'requests', got {batching!r}")
        return cls(
            kind=kind,
            name=_str(d, kind, where),
            plan=_str(d, "plan", where),
            stages=tuple(_strs(d, "stages", where)),
            vcpu=_num(d, "vcpu", where, lo=0, strict=True),
            batch=_int(d, "batch", where, lo=1),
            batching=batching,
            input_size=_str(d, "input_size", where),
            input_bytes=_int(d, "input_bytes", where, lo=0),
            latency_ms=Spread.from_dict(_get(d, "latency_ms", where), f"{where}.latency_ms"),
            busy_ms=Spread.from_dict(_get(d, "busy_ms", where), f"{where}.busy_ms"),
            output_bytes=_int(d, "output_bytes", where, lo=0),
            load_ms=_num(d, "load_ms", where, lo=0),
            cold_start_ms=_num(d, "cold_start_ms", where, lo=0),
            peak_rss_mb=_num(d, "peak_rss_mb", where, lo=0),
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
        return {
            "bytes": self.bytes,
            "per_hop_ms": self.per_hop_ms,
            "extra_hops": self.extra_hops,
            "fine_ms": self.fine_ms.to_dict(),
            "coarse_ms": self.coarse_ms.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Any, where: str) -> HopPoint:
        _obj(d, where)
        return cls(
            bytes=_int(d, "bytes", where, lo=1),
            per_hop_ms=_num(d, "per_hop_ms", where),  # may come out a little negative for tiny values: noise
            extra_hops=_int(d, "extra_hops", where, lo=1),
            fine_ms=Spread.from_dict(_get(d, "fine_ms", where), f"{where}.fine_ms"),
            coarse_ms=Spread.from_dict(_get(d, "coarse_ms", where), f"{where}.coarse_ms"),
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
        return {
            "stage": self.stage,
            "model": self.model,
            "batch": self.batch,
            "sm_percent": self.sm_percent,
            "quota_percent": self.quota_percent,
            "latency_ms": self.latency_ms,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, d: Any, where: str) -> GpuPoint:
        _obj(d, where)
        return cls(
            stage=_str(d, "stage", where),
            model=_str(d, "model", where),
            batch=_int(d, "batch", where, lo=1),
            sm_percent=_int(d, "sm_percent", where, lo=1),
            quota_percent=_int(d, "quota_percent", where, lo=1),
            latency_ms=_num(d, "latency_ms", where, lo=0, strict=True),
            source=_str(d, "source", where),
        )


@dataclass(frozen=True)
class StageInfo:
    """A stage as the application declares it."""

    name: str
    after: tuple[str, ...]
    batch: bool
    vcpu: float
    memory_mb: int
    gpu: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "after": list(self.after),
            "batch": self.batch,
            "vcpu": self.vcpu,
            "memory_mb": self.memory_mb,
            "gpu": self.gpu,
        }

    @classmethod
    def from_dict(cls, d: Any, where: str) -> StageInfo:
        _obj(d, where)
        return cls(
            name=_str(d, "name", where),
            after=tuple(_strs(d, "after", where)),
            batch=_bool(d, "batch", where),
            vcpu=_num(d, "vcpu", where, lo=0, strict=True),
            memory_mb=_int(d, "memory_mb", where, lo=1),
            gpu=_num(d, "gpu", where, lo=0),
        )


@dataclass(frozen=True)
class AppInfo:
    name: str
    slo: str
    source: str
    stages: tuple[StageInfo, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "slo": self.slo,
            "source": self.source,
            "stages": [s.to_dict() for s in self.stages],
        }

    @classmethod
    def from_dict(cls, d: Any, where: str) -> AppInfo:
        _obj(d, where)
        return cls(
            name=_str(d, "name", where),
            slo=_str(d, "slo", where),
            source=_str(d, "source", where),
            stages=tuple(
                StageInfo.from_dict(s, f"{where}.stages[{i}]") for i, s in enumerate(_list(d, "stages", where))
            ),
        )


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
        return {
            "repeats": self.repeats,
            "warmup": self.warmup,
            "vcpus": list(self.vcpus),
            "batch_sizes": list(self.batch_sizes),
            "input_sizes": list(self.input_sizes),
            "plans": list(self.plans),
            "hop_bytes": list(self.hop_bytes),
            "inputs": self.inputs,
        }

    @classmethod
    def from_dict(cls, d: Any, where: str) -> Settings:
        _obj(d, where)
        return cls(
            repeats=_int(d, "repeats", where, lo=1),
            warmup=_int(d, "warmup", where, lo=0),
            vcpus=tuple(_num_item(v, f"{where}.vcpus[{i}]") for i, v in enumerate(_list(d, "vcpus", where))),
            batch_sizes=tuple(
                _int_item(v, f"{where}.batch_sizes[{i}]") for i, v in enumerate(_list(d, "batch_sizes", where))
            ),
            input_sizes=tuple(_strs(d, "input_sizes", where)),
            plans=tuple(_strs(d, "plans", where)),
            hop_bytes=tuple(
                _int_item(v, f"{where}.hop_bytes[{i}]") for i, v in enumerate(_list(d, "hop_bytes", where))
            ),
            inputs=_str(d, "inputs", where),
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
        _obj(doc, "profile")
        _check_schema(doc.get("schema"))
        machine = _get(doc, "machine", "profile")
        _obj(machine, "machine")
        _str(machine, "cpu", "machine")
        _int(machine, "cores", "machine", lo=1)
        return cls(
            created=_str(doc, "created", "profile"),
            machine=machine,
            app=AppInfo.from_dict(_get(doc, "app", "profile"), "app"),
            settings=Settings.from_dict(_get(doc, "settings", "profile"), "settings"),
            stages=tuple(
                Point.from_dict(p, "stage", f"stages[{i}]") for i, p in enumerate(_list(doc, "stages", "profile"))
            ),
            functions=tuple(
                Point.from_dict(p, "function", f"functions[{i}]")
                for i, p in enumerate(_list(doc, "functions", "profile"))
            ),
            hops=tuple(HopPoint.from_dict(h, f"hops[{i}]") for i, h in enumerate(_list(doc, "hops", "profile"))),
            gpu=tuple(GpuPoint.from_dict(g, f"gpu[{i}]") for i, g in enumerate(_list(doc, "gpu", "profile"))),
            notes=tuple(_strs(doc, "notes", "profile")),
            schema=SCHEMA,
        )


def validate_profile(doc: Any) -> Profile:
    """Check a decoded profile document; returns the :class:`Profile`, or raises :class:`ProfileError`."""
    return Profile.from_dict(doc)


def read_profile(path: str | os.PathLike[str]) -> Profile:
    """Read and validate a profile file."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except OSError as e:
        raise ProfileError(f"cannot read profile {str(p)!r}: {e.strerror or e}") from None
    except json.JSONDecodeError as e:
        raise ProfileError(f"{str(p)!r} is not JSON: {e}") from None
    try:
        return Profile.from_dict(doc)
    except ProfileError as e:
        raise ProfileError(f"{p}: {e}") from None


def write_profile(profile: Profile, path: str | os.PathLike[str]) -> Path:
    """Write ``profile`` as JSON (creating the directory), after checking that it reads back."""
    Profile.from_dict(profile.to_dict())
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(profile.dumps())
    tmp.replace(p)
    return p


# -- GPU rows from the measured table ----------------------------------------------------------------------------------
def table_model(name: str) -> str | None:
    """The GPU table's model for ``name``: a zoo backbone (``resnet18_like``) is mapped by :data:`ZOO_GPU_MODELS`;
    any other name is taken as a table model (``resnet18``) as it is."""
    return ZOO_GPU_MODELS.get(name, name)


def read_gpu_table(
    path: str | os.PathLike[str],
    models: Mapping[str, str],
    batches: Iterable[int] = GPU_BATCHES,
    sm_percents: Iterable[int] = GPU_SM_PERCENTS,
    quota_percents: Iterable[int] = GPU_QUOTA_PERCENTS,
) -> tuple[list[GpuPoint], list[str]]:
    """GPU rows for ``models`` (stage -> table model) from a table of columns ``model, batch, sm_percent,
    quota_percent, latency_ms``; also notes on models the table lacks."""
    want_b, want_s, want_q = set(batches), set(sm_percents), set(quota_percents)
    by_model: dict[str, list[str]] = {}
    for stage, model in models.items():
        by_model.setdefault(model, []).append(stage)
    rows: list[GpuPoint] = []
    seen: set[str] = set()
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            missing = {"model", "batch", "sm_percent", "quota_percent", "latency_ms"} - set(reader.fieldnames or [])
            if missing:
                raise ProfileError(f"GPU table {str(path)!r} lacks the columns {sorted(missing)}")
            for r in reader:
                stages = by_model.get(r["model"])
                if not stages:
                    continue
                seen.add(r["model"])
                b, s, q = int(r["batch"]), int(r["sm_percent"]), int(r["quota_percent"])
                if b in want_b and s in want_s and q in want_q:
                    rows.extend(GpuPoint(st, r["model"], b, s, q, float(r["latency_ms"])) for st in stages)
    except OSError as e:
        raise ProfileError(f"cannot read the GPU table {str(path)!r}: {e.strerror or e}") from None
    notes = [
        f"GPU table {Path(path).name} has no model {m!r} (asked for stage {', '.join(by_model[m])}): no GPU rows"
        for m in by_model
        if m not in seen
    ]
    rows.sort(key=lambda g: (g.stage, g.batch, g.sm_percent, g.quota_percent))
    return rows, notes


# -- validation helpers ------------------------------------------------------------------------------------------------
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


def _type_name(v: Any) -> str:
    return "null" if v is None else type(v).__name__


def _obj(d: Any, where: str) -> None:
    if not isinstance(d, Mapping):
        raise ProfileError(f"{where}: expected an object, got {_type_name(d)}")


def _get(d: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in d:
        raise ProfileError(f"{_path(where, key)}: missing")
    return d[key]


def _path(where: str, key: str) -> str:
    return key if where == "profile" else f"{where}.{key}"


def _num_item(v: Any, path: str, lo: float | None = None, strict: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ProfileError(f"{path}: expected a finite number, got {v!r}")
    if lo is not None and (v <= lo if strict else v < lo):
        raise ProfileError(f"{path}: must be {'>' if strict else '>='} {lo:g}, got {v!r}")
    return float(v)


def _int_item(v: Any, path: str, lo: int | None = None) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ProfileError(f"{path}: expected an integer, got {v!r}")
    if lo is not None and v < lo:
        raise ProfileError(f"{path}: must be >= {lo}, got {v!r}")
    return v


def _num(d: Mapping[str, Any], key: str, where: str, lo: float | None = None, strict: bool = False) -> float:
    return _num_item(_get(d, key, where), _path(where, key), lo, strict)


def _int(d: Mapping[str, Any], key: str, where: str, lo: int | None = None) -> int:
    return _int_item(_get(d, key, where), _path(where, key), lo)


def _str(d: Mapping[str, Any], key: str, where: str) -> str:
    v = _get(d, key, where)
    if not isinstance(v, str):
        raise ProfileError(f"{_path(where, key)}: expected a string, got {_type_name(v)}")
    return v


def _bool(d: Mapping[str, Any], key: str, where: str) -> bool:
    v = _get(d, key, where)
    if not isinstance(v, bool):
        raise ProfileError(f"{_path(where, key)}: expected true or false, got {v!r}")
    return v


def _list(d: Mapping[str, Any], key: str, where: str) -> list[Any]:
    v = _get(d, key, where)
    if not isinstance(v, list):
        raise ProfileError(f"{_path(where, key)}: expected a list, got {_type_name(v)}")
    return v


def _strs(d: Mapping[str, Any], key: str, where: str) -> list[str]:
    items = _list(d, key, where)
    for i, v in enumerate(items):
        if not isinstance(v, str):
            raise ProfileError(f"{_path(where, key)}[{i}]: expected a string, got {_type_name(v)}")
    return items
