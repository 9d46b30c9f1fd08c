"""Trace readers: public request-arrival traces as arrays of arrival times (seconds, float64).

Formats (``../shared/traces/README.md``):

- Azure Functions 2019, per-minute invocation counts per function. Both the original release
  (``HashOwner, HashApp, HashFunction, Trigger, 1 … 1440``) and the vHive-sampled layout
  (``HashFunction, HashApp, HashOwner, minute_1 … minute_1440``) are read; count columns are found by name.
- Azure Functions 2021, one row per invocation: ``app, func, end_timestamp, duration`` (seconds). The arrival is
  ``end_timestamp - duration``.
- Azure LLM inference 2023: ``TIMESTAMP, ContextTokens, GeneratedTokens``.

Every reader returns a :class:`Trace`: all arrivals of all functions merged in time order, with the index of the
function each belongs to. Scaling (:meth:`Trace.compressed`, :meth:`Trace.rate_scaled`, :func:`sample_functions`)
is seeded, so the same arguments give the same arrivals. Imports nothing of Shoal.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

__all__ = [
    "Trace",
    "TraceError",
    "arrivals_from_counts",
    "read_azure_functions_2019",
    "read_azure_functions_2021",
    "read_azure_llm_2023",
    "read_counts_2019",
    "sample_functions",
]


class TraceError(ValueError):
    """A trace file is missing, empty or not in the format its reader expects."""


@dataclass(frozen=True)
class Trace:
    """Arrivals of one or more functions, merged: ``times[k]`` (seconds from 0, sorted) belongs to
    ``functions[func[k]]``. ``span_s`` is the length of the period the trace covers (not the last arrival).
    ``extra`` holds per-arrival columns a format carries (durations, token counts), in the same order."""

    name: str
    functions: tuple[str, ...]
    times: np.ndarray
    func: np.ndarray
    span_s: float
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.times) != len(self.func):
            raise TraceError("times and func must have the same length")

    def __len__(self) -> int:
        return len(self.times)

    def of(self, function: int | str) -> np.ndarray:
        """Arrival times of one function (by index or name)."""
        i = self.functions.index(function) if isinstance(function, str) else function
        return self.times[self.func == i]

    def compressed(self, factor: float) -> Trace:
        """Time compression: every time divided by ``factor`` (2 plays the trace twice as fast, doubling rates)."""
        if not factor > 0:
            raise TraceError(f"time compression factor must be > 0, got {factor!r}")
        return Trace(self.name, self.functions, self.times / factor, self.func, self.span_s / factor, self.extra)

    def rate_scaled(self, scale: float, seed: int = 0) -> Trace:
        """Rate scaling over the same span. ``scale < 1`` keeps each arrival with probability ``scale``. ``scale > 1``
        superposes ``floor(scale)`` copies of the trace, each after the first shifted cyclically by its own
        uniform random offset over the span (so copies do not arrive at the same instants), plus a thinned copy
        for the fraction. Each function keeps its own index; per-arrival columns follow their arrivals."""
        if not scale > 0:
            raise TraceError(f"rate scale must be > 0, got {scale!r}")
        rng = np.random.default_rng(seed)
        whole, frac = int(scale), scale - int(scale)
        parts: list[np.ndarray] = []
        idx: list[np.ndarray] = []
        n = len(self.times)
        for copy in range(whole + (1 if frac > 1e-12 else 0)):
            keep = np.arange(n) if copy < whole else np.flatnonzero(rng.random(n) < frac)
            shift = 0.0 if copy == 0 else rng.uniform(0.0, self.span_s)
            t = self.times[keep] + shift
            if shift:
                t = np.mod(t, self.span_s) if self.span_s > 0 else t
            parts.append(t)
            idx.append(keep)
        return _merge(self, np.concatenate(parts), np.concatenate(idx))

    def window(self, start_s: float, end_s: float) -> Trace:
        """Arrivals in [start_s, end_s), re-based to start at 0."""
        keep = np.flatnonzero((self.times >= start_s) & (self.times < end_s))
        return _merge(self, self.times[keep] - start_s, keep, span_s=end_s - start_s)


def _merge(trace: Trace, times: np.ndarray, idx: np.ndarray, span_s: float | None = None) -> Trace:
    order = np.argsort(times, kind="stable")
    src = idx[order]
    extra = {k: v[src] for k, v in trace.extra.items()}
    span = trace.span_s if span_s is None else span_s
    return Trace(trace.name, trace.functions, times[order], trace.func[src], span, extra)


def _open_rows(path: str | Path) -> tuple[list[str], list[list[str]]]:
    p = Path(path)
    if not p.is_file():
        raise TraceError(f"no such trace file: {str(p)!r}")
    with p.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if len(rows) < 2:
        raise TraceError(f"trace {str(p)!r} has no data rows")
    return [h.strip() for h in rows[0]], rows[1:]


_MINUTE = re.compile(r"^(?:minute_)?(\d+)$")


def read_counts_2019(path: str | Path) -> tuple[tuple[str, ...], np.ndarray]:
    """Function names (``HashApp/HashFunction``) and their per-minute invocation counts, shape (functions, minutes)."""
    header, rows = _open_rows(path)
    cols = sorted(((int(m[1]), i) for i, h in enumerate(header) if (m := _MINUTE.match(h))), key=lambda c: c[0])
    if not cols:
        raise TraceError(f"trace {str(path)!r} has no per-minute count columns (1..1440 or minute_1..minute_1440)")
    try:
        app_col, fn_col = header.index("HashApp"), header.index("HashFunction")
    except ValueError:
        raise TraceError(f"trace {str(path)!r} lacks the HashApp or HashFunction column") from None
    first = cols[0][1]
    contiguous = [i for _, i in cols] == list(range(first, first + len(cols)))
    counts = np.zeros((len(rows), len(cols)), dtype=np.int64)
    names = []
    for r, row in enumerate(rows):
        names.append(f"{row[app_col]}/{row[fn_col]}")
        values = row[first : first + len(cols)] if contiguous else [row[i] for _, i in cols]
        try:
            counts[r] = np.array([v or 0 for v in values], dtype=np.float64)
        except ValueError as e:
            raise TraceError(f"trace {str(path)!r}, row {r + 2}: {e}") from None
    if (counts < 0).any():
        raise TraceError(f"trace {str(path)!r} has negative invocation counts")
    return tuple(names), counts


def arrivals_from_counts(
    counts: np.ndarray, *, interval_s: float = 60.0, spread: str = "even", seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Arrival times and function indices from per-interval counts (shape (functions, intervals)), merged in time.

    ``spread="even"``: the n arrivals of an interval are evenly spaced in it (at (k + 0.5) / n of the interval).
    ``spread="poisson"``: each is placed uniformly at random in its interval, as a Poisson process conditioned on
    that interval's count (seeded)."""
    if spread not in ("even", "poisson"):
        raise TraceError(f"spread must be 'even' or 'poisson', got {spread!r}")
    counts = np.asarray(counts, dtype=np.int64)
    flat = counts.ravel()  # function-major: entry f * intervals + m
    n_int = counts.shape[1]
    cell = np.repeat(np.arange(flat.size), flat)
    if spread == "even":
        starts = np.cumsum(flat) - flat
        k = np.arange(cell.size) - starts[cell]
        offset = (k + 0.5) / flat[cell]
    else:
        offset = np.random.default_rng(seed).random(cell.size)
    times = ((cell % n_int) + offset) * interval_s
    funcs = (cell // n_int).astype(np.int32)
    order = np.argsort(times, kind="stable")
    return times[order], funcs[order]


def read_azure_functions_2019(
    path: str | Path, *, spread: str = "even", seed: int = 0, minutes: int | None = None
) -> Trace:
    """Azure Functions 2019 per-minute counts as arrivals (see :func:`arrivals_from_counts`); ``minutes`` keeps the
    first minutes only."""
    names, counts = read_counts_2019(path)
    if minutes is not None:
        counts = counts[:, :minutes]
    times, funcs = arrivals_from_counts(counts, spread=spread, seed=seed)
    return Trace(Path(path).name, names, times, funcs, 60.0 * counts.shape[1])


def read_azure_functions_2021(path: str | Path) -> Trace:
    """Azure Functions 2021 invocations; arrivals are ``end_timestamp - duration``, re-based so the first is at 0.
    ``extra["duration_s"]`` holds each invocation's measured duration."""
    header, rows = _open_rows(path)
    try:
        a, f, e, d = (header.index(c) for c in ("app", "func", "end_timestamp", "duration"))
    except ValueError:
        raise TraceError(f"trace {str(path)!r} needs the columns app, func, end_timestamp, duration") from None
    names: dict[str, int] = {}
    funcs = np.empty(len(rows), dtype=np.int32)
    ends = np.empty(len(rows))
    durs = np.empty(len(rows))
    for i, row in enumerate(rows):
        funcs[i] = names.setdefault(f"{row[a]}/{row[f]}", len(names))
        try:
            ends[i], durs[i] = float(row[e]), float(row[d])
        except ValueError as err:
            raise TraceError(f"trace {str(path)!r}, row {i + 2}: {err}") from None
    starts = ends - durs
    t0 = starts.min()
    order = np.argsort(starts, kind="stable")
    times = starts[order] - t0
    span = float(max(ends.max() - t0, times[-1]))
    return Trace(Path(path).name, tuple(names), times, funcs[order], span, {"duration_s": durs[order]})


def _parse_timestamp(text: str) -> float:
    date, _, frac = text.strip().partition(".")
    t = datetime.fromisoformat(date).timestamp()
    return t + (float("0." + frac) if frac else 0.0)


def read_azure_llm_2023(path: str | Path) -> Trace:
    """Azure LLM inference 2023 arrivals (one function), re-based to 0; ``extra`` holds ``context_tokens`` and
    ``generated_tokens``."""
    header, rows = _open_rows(path)
    try:
        ts, ctx, gen = (header.index(c) for c in ("TIMESTAMP", "ContextTokens", "GeneratedTokens"))
    except ValueError:
        raise TraceError(f"trace {str(path)!r} needs the columns TIMESTAMP, ContextTokens, GeneratedTokens") from None
    try:
        t = np.array([_parse_timestamp(r[ts]) for r in rows])
        c = np.array([int(r[ctx]) for r in rows], dtype=np.int64)
        g = np.array([int(r[gen]) for r in rows], dtype=np.int64)
    except ValueError as err:
        raise TraceError(f"trace {str(path)!r}: {err}") from None
    order = np.argsort(t, kind="stable")
    times = t[order] - t[order[0]]
    extra = {"context_tokens": c[order], "generated_tokens": g[order]}
    return Trace(Path(path).name, (Path(path).stem,), times, np.zeros(len(t), np.int32), float(times[-1]), extra)


def sample_functions(trace: Trace, n: int, *, seed: int = 0, only_active: bool = True) -> Trace:
    """A trace of ``n`` functions drawn from ``trace``'s (without replacement while there are enough, then again
    with each repeat shifted cyclically by a random offset over the span, so that a 100-function sample can drive
    thousands of functions). Functions with no arrival are skipped when ``only_active``."""
    if n < 1:
        raise TraceError(f"need at least one function, got {n!r}")
    rng = np.random.default_rng(seed)
    pool = np.unique(trace.func) if only_active else np.arange(len(trace.functions))
    if pool.size == 0:
        raise TraceError("the trace has no function with arrivals")
    picks: list[int] = []
    while len(picks) < n:
        picks.extend(rng.permutation(pool)[: n - len(picks)].tolist())
    by_func = _group(trace)
    parts, fids, src, names = [], [], [], []
    for new, old in enumerate(picks):
        rows = by_func.get(old, np.zeros(0, dtype=np.int64))
        t = trace.times[rows]
        if new >= pool.size and trace.span_s > 0:
            t = np.mod(t + rng.uniform(0.0, trace.span_s), trace.span_s)
        parts.append(t)
        fids.append(np.full(len(rows), new, dtype=np.int32))
        src.append(rows)
        names.append(trace.functions[old] if new < pool.size else f"{trace.functions[old]}#{new // pool.size}")
    times, func, rows_all = np.concatenate(parts), np.concatenate(fids), np.concatenate(src)
    order = np.argsort(times, kind="stable")
    extra = {k: v[rows_all[order]] for k, v in trace.extra.items()}
    return Trace(trace.name, tuple(names), times[order], func[order], trace.span_s, extra)


def _group(trace: Trace) -> dict[int, np.ndarray]:
    order = np.argsort(trace.func, kind="stable")
    f = trace.func[order]
    bounds = np.flatnonzero(np.diff(f)) + 1
    return {int(g[0]): rows for g, rows in zip(np.split(f, bounds), np.split(order, bounds), strict=True) if len(g)}
