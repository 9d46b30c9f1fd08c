"""A GPU latency table in the schema of ``../shared/gpu-profiles/``: ``model, batch, sm_percent, quota_percent,
latency_ms``, read with errors that name the row and the column.

Users bring their own GPU measurements in this schema, so every value is checked where it is read: a table that
parses but holds a negative latency or a 150 % SM partition would otherwise train a predictor on nonsense and fail
far from the cause.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["COLUMNS", "LatencyTable", "LatencyTableError", "read_latency_table"]

COLUMNS = ("model", "batch", "sm_percent", "quota_percent", "latency_ms")


class LatencyTableError(ValueError):
    """A GPU latency table is missing, malformed, or lacks what a predictor needs. The message says where."""


@dataclass(frozen=True)
class LatencyTable:
    """The rows of a table as parallel arrays (one entry per measured point)."""

    model: np.ndarray  # str
    batch: np.ndarray  # int
    sm: np.ndarray  # int, percent
    quota: np.ndarray  # int, percent
    latency_ms: np.ndarray  # float
    source: str = ""

    def __len__(self) -> int:
        return len(self.model)

    @property
    def models(self) -> list[str]:
        """Model names in order of first appearance."""
        return list(dict.fromkeys(self.model.tolist()))

    def of(self, model: str) -> LatencyTable:
        """The rows of one model."""
        m = self.model == model
        return LatencyTable(self.model[m], self.batch[m], self.sm[m], self.quota[m], self.latency_ms[m], self.source)

    def subset(self, models: set[str] | list[str]) -> LatencyTable:
        """The rows of the given models."""
        m = np.isin(self.model, list(models))
        return LatencyTable(self.model[m], self.batch[m], self.sm[m], self.quota[m], self.latency_ms[m], self.source)

    def points(self, model: str) -> dict[tuple[int, int, int], float]:
        """``(batch, sm %, quota %) -> latency ms`` of one model."""
        t = self.of(model)
        return {
            (int(b), int(s), int(q)): float(v) for b, s, q, v in zip(t.batch, t.sm, t.quota, t.latency_ms, strict=True)
        }


def read_latency_table(path: str | os.PathLike[str]) -> LatencyTable:
    """Read and check a table; raises :class:`LatencyTableError` naming the file, line and column at fault."""
    p = Path(path)
    try:
        with p.open(newline="", encoding="utf-8") as f:
            return _parse(csv.reader(f), str(p))
    except OSError as e:
        raise LatencyTableError(f"cannot read the GPU table {str(p)!r}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise LatencyTableError(f"{p}: not a UTF-8 text CSV file") from None


def _parse(reader: csv.Reader, where: str) -> LatencyTable:  # type: ignore[name-defined]
    header = next(reader, None)
    if header is None:
        raise LatencyTableError(f"{where}: the file is empty; expected a header line {','.join(COLUMNS)}")
    names = [h.strip() for h in header]
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        raise LatencyTableError(
            f"{where}: line 1 (header) lacks the column(s) {', '.join(missing)}; expected {','.join(COLUMNS)}"
        )
    col = {c: names.index(c) for c in COLUMNS}
    models: list[str] = []
    ints: list[tuple[int, int, int]] = []
    lat: list[float] = []
    seen: dict[tuple[str, int, int, int], int] = {}
    for line, row in enumerate(reader, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) < len(names):
            raise LatencyTableError(f"{where}: line {line} has {len(row)} fields, the header has {len(names)}")
        model = row[col["model"]].strip()
        if not model:
            raise LatencyTableError(f"{where}: line {line}, column model: empty model name")
        b = _int(row[col["batch"]], where, line, "batch", 1, None)
        s = _int(row[col["sm_percent"]], where, line, "sm_percent", 1, 100)
        q = _int(row[col["quota_percent"]], where, line, "quota_percent", 1, 100)
        v = _positive(row[col["latency_ms"]], where, line)
        key = (model, b, s, q)
        if key in seen:
            raise LatencyTableError(
                f"{where}: line {line} repeats the point of line {seen[key]} "
                f"(model {model}, batch {b}, sm_percent {s}, quota_percent {q}); keep one measurement per point"
            )
        seen[key] = line
        models.append(model)
        ints.append((b, s, q))
        lat.append(v)
    if not models:
        raise LatencyTableError(f"{where}: the table has a header but no rows")
    arr = np.asarray(ints, dtype=np.int64)
    return LatencyTable(
        np.asarray(models, dtype=object), arr[:, 0], arr[:, 1], arr[:, 2], np.asarray(lat, dtype=np.float64), where
    )


def _int(text: str, where: str, line: int, column: str, lo: int, hi: int | None) -> int:
    try:
        v = int(text.strip())
    except ValueError:
        raise LatencyTableError(f"{where}: line {line}, column {column}: expected an integer, got {text!r}") from None
    if v < lo or (hi is not None and v > hi):
        bound = f"in {lo}..{hi}" if hi is not None else f">= {lo}"
        raise LatencyTableError(f"{where}: line {line}, column {column}: must be {bound}, got {v}")
    return v


def _positive(text: str, where: str, line: int) -> float:
    try:
        v = float(text.strip())
    except ValueError:
        raise LatencyTableError(f"{where}: line {line}, column latency_ms: expected a number, got {text!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise LatencyTableError(f"{where}: line {line}, column latency_ms: must be a finite number > 0, got {text!r}")
    return v
