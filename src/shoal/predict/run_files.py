"""Run files: one run of the runtime kept whole as JSON, for fitting the learned application predictor.

One layout for every writer: ``shoal measure --runs-out DIR`` and ``benchmarks/granularity.py``
(``results/granularity_runs/APP/*.json``) both write a JSON object holding

- ``ref``: the application as ``shoal`` loads it (``FILE.py`` or ``FILE.py:VARIABLE``), and optionally
  ``app_name``, its name (``App.name``), by which ``shoal predict fit-app`` finds its profile: the fit then builds
  the application's graph from the profile (``AppInfo.graph``) and never imports the code ``ref`` points at;
- ``plan``: the plan's label (``fine``, ``coarse``, ``a+b,c``; ``adaptive`` for a run that switched plans);
- ``slo`` (``p99:300ms``), ``seconds`` (the length of the load), ``kind`` (``measure``, ``calibrate``, ``fixed``,
  ``adaptive``), ``load`` (``poisson``, ``steady``, ``bursty``, ``trace``), ``rate`` (the nominal rate, req/s, or
  absent), ``repeat`` (``shoal measure``: the seed of the arrivals);
- optionally ``input_mix`` (the fractions of input sizes sent; absent: small, medium and large in turn, as both
  writers send them) and ``config`` (the ``FunctionConfig`` every function ran with, as keyword arguments; absent:
  the defaults, or what the reader is told);
- ``run``: ``ReplayResult.to_dict()`` (per request arrival, latency, status and plan; samples of instances and cost).

The rate and SCV a predictor is given are read from the arrivals themselves, whole run or per window
(``app_learned.observed_runs``), so a file need not carry them. This module only reads and checks the documents:
turning ``run`` back into a ``ReplayResult`` is the runtime's (``ReplayResult.from_dict``), which ``predict`` does
not import. Never a pickle: these files are shared and read back.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from shoal.app import FunctionConfig, SpecError
from shoal.predict.app_model import PredictError, read_json_doc

__all__ = ["EVEN_MIX", "RunFile", "read_run_files", "run_file_doc"]

#: What both writers send: inputs small, medium, large in turn.
EVEN_MIX: dict[str, float] = {"small": 1.0, "medium": 1.0, "large": 1.0}
_REQUIRED = ("ref", "plan", "slo", "seconds", "run")
_HOW = "write runs with `shoal measure APP --runs-out DIR` (or benchmarks/granularity.py)"


@dataclass(frozen=True)
class RunFile:
    """One run file, checked (see the module docstring); ``run`` is ``ReplayResult.to_dict()``'s document."""

    path: Path
    ref: str
    plan: str
    slo: str
    seconds: float
    kind: str
    load: str
    rate: float | None
    repeat: int
    run: dict[str, Any] = field(repr=False)
    input_mix: dict[str, float] = field(default_factory=lambda: dict(EVEN_MIX))
    config: dict[str, Any] | None = None
    app_name: str | None = None  # absent from run files written before stop 11

    @property
    def name(self) -> str:
        """How messages name the run: its file."""
        return str(self.path)

    def function_config(self, default: FunctionConfig | None = None) -> FunctionConfig:
        """The settings every function of the run had: the file's ``config``, else ``default``, else the defaults."""
        if self.config is None:
            return default or FunctionConfig()
        try:
            return FunctionConfig(**self.config)
        except (TypeError, SpecError) as e:
            raise PredictError(f"{self.name}: bad 'config' ({e}): {_HOW}") from None


def run_file_doc(
    ref: str,
    plan: str,
    slo: str,
    seconds: float,
    run: Mapping[str, Any],
    *,
    kind: str = "measure",
    load: str = "poisson",
    rate: float | None = None,
    repeat: int = 0,
    config: FunctionConfig | None = None,
    input_mix: Mapping[str, float] | None = None,
    app_name: str | None = None,
) -> dict[str, Any]:
    """The document of one run file; ``run`` is ``ReplayResult.to_dict()``. ``config`` must not set resources (a
    run file records one setting for every function; per-function resources are the stages' own)."""
    doc: dict[str, Any] = {
        "ref": ref,
        **({"app_name": app_name} if app_name is not None else {}),
        "plan": plan,
        "slo": slo,
        "seconds": seconds,
        "kind": kind,
        "load": load,
        "rate": rate,
        "repeat": repeat,
    }
    if config is not None:
        if config.resources is not None:
            raise PredictError("a run file's config cannot carry resources: they are the stages' own")
        doc["config"] = {k: v for k, v in asdict(config).items() if k != "resources"}
    if input_mix is not None:
        doc["input_mix"] = dict(input_mix)
    return doc | {"run": dict(run)}


def _expand(paths: Iterable[str | Path]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.rglob("*.json"))
            if not found:
                raise PredictError(f"{p}: no run files (*.json) in this folder: {_HOW}")
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise PredictError(f"{p}: no such file or folder: give run files or folders of them ({_HOW})")
    return out


def _check(doc: Any, path: Path) -> RunFile:
    if isinstance(doc, dict) and str(doc.get("schema", "")).startswith("shoal.measured"):
        raise PredictError(
            f"{path}: a `shoal measure` table (its --out), not a run file: measure with --runs-out DIR and give DIR"
        )
    if not isinstance(doc, dict) or any(k not in doc for k in _REQUIRED):
        missing = [k for k in _REQUIRED if not isinstance(doc, dict) or k not in doc]
        raise PredictError(f"{path}: not a run file (no {', '.join(repr(k) for k in missing)}): {_HOW}")
    run = doc["run"]
    if not isinstance(run, dict) or not all(k in run for k in ("arrival_s", "latency_s", "status", "plan")):
        raise PredictError(f"{path}: 'run' is not a ReplayResult document (arrival_s, latency_s, status, plan): {_HOW}")
    try:
        seconds = float(doc["seconds"])
        rate = None if doc.get("rate") is None else float(doc["rate"])
        mix = {str(k): float(v) for k, v in (doc.get("input_mix") or EVEN_MIX).items()}
        repeat = int(doc.get("repeat", 0))
    except (TypeError, ValueError, AttributeError) as e:
        raise PredictError(f"{path}: a malformed field ({e}): {_HOW}") from None
    if not (math.isfinite(seconds) and seconds > 0):
        raise PredictError(f"{path}: 'seconds' must be > 0, got {doc['seconds']!r}")
    config = doc.get("config")
    if config is not None and not isinstance(config, dict):
        raise PredictError(f"{path}: 'config' must be an object of FunctionConfig settings, got {config!r}")
    return RunFile(
        path=path,
        ref=str(doc["ref"]),
        plan=str(doc["plan"]),
        slo=str(doc["slo"]),
        seconds=seconds,
        kind=str(doc.get("kind", "measure")),
        load=str(doc.get("load", "poisson")),
        rate=rate,
        repeat=repeat,
        run=run,
        input_mix=mix,
        config=config,
        app_name=None if doc.get("app_name") is None else str(doc["app_name"]),
    )


def read_run_files(paths: Iterable[str | Path]) -> list[RunFile]:
    """Every run file of ``paths`` (files, or folders searched recursively for ``*.json``), checked, in order.

    Refuses, naming the file: a path that does not exist, a folder with no run files, a file that is not JSON or
    lacks a run file's fields. Nothing is skipped silently: which runs to use (adaptive runs switch plans) is the
    caller's choice."""
    out = []
    for p in _expand(paths):
        doc = read_json_doc(p, "run file", lambda e, p=p: f"{p}: not JSON ({e}): {_HOW}")
        out.append(_check(doc, p))
    if not out:
        raise PredictError(f"no run files given: {_HOW}")
    return out
