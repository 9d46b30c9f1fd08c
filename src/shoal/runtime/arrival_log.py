"""Arrival times kept on disk, so that an adaptive loop that restarts plans from the traffic it served before.

A forecast (``policy.forecast.Lookahead``) plans ahead of a burst only once its look-back holds three periods of
arrivals (with a 3-minute cron job, nine minutes), and a horizon priced as one load (``policy.granularity.Horizon``)
weighs a whole horizon of them. A server that restarts (a deploy, a crash, a new machine) would start blind and meet
the next bursts on whatever plan it started with. ``ArrivalLog`` writes the look-back's arrivals to a file every
window and reads them back when the loop starts, moved onto the new host's clock (times before its start are
negative, as ``SimAdaptive(seen_before=...)`` takes them).

The file holds wall-clock seconds (``time.time()``), one float64 per arrival, oldest first, in NumPy's ``.npy``
format, read with ``allow_pickle=False``: a file is data, never code. It is replaced whole (written beside it, then
renamed), so a crash mid-write leaves the previous one. At 200 req/s a 12-minute look-back is 144,000 arrivals,
1.2 MB.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["ArrivalLog", "ArrivalLogError"]


class ArrivalLogError(ValueError):
    """The arrival log cannot be read or written; the message says which file and what to do."""


class ArrivalLog:
    """Arrival times of one application in ``path`` (created on the first ``write``; its folder must exist)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise ArrivalLogError(f"{self.path} is a folder; name a file for the arrival log, e.g. {self.path}/app.npy")
        if not self.path.parent.is_dir():
            raise ArrivalLogError(f"no folder {self.path.parent} for the arrival log {self.path}: create it first")

    def read(self, now: float, keep_s: float, wall: float | None = None) -> np.ndarray:
        """The logged arrivals of the last ``keep_s`` seconds on a clock that reads ``now`` at wall-clock ``wall``
        (default: the time now), oldest first; empty if there is no log yet. Arrivals logged at or after ``wall``
        (the wall clock moved back) are left out."""
        _check_keep(keep_s)
        wall = time.time() if wall is None else wall
        if not self.path.exists():
            return np.empty(0)
        try:
            times = np.load(self.path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            raise ArrivalLogError(
                f"cannot read the arrival log {self.path} ({e}); it is not one Shoal wrote: move it away or delete "
                "it, and the loop starts a new one"
            ) from None
        if times.ndim != 1 or times.dtype.kind != "f" or not np.all(np.isfinite(times)):
            raise ArrivalLogError(
                f"{self.path} is not an arrival log (need one finite float per arrival, got {times.dtype} of shape "
                f"{times.shape}); move it away or delete it"
            )
        times = np.sort(times.astype(np.float64))
        recent = times[(times > wall - keep_s) & (times < wall)]
        return recent - (wall - now)

    def write(
        self, arrivals: Sequence[float] | np.ndarray, now: float, keep_s: float, wall: float | None = None
    ) -> int:
        """Replace the log with ``arrivals`` (times on a clock that reads ``now`` at wall-clock ``wall``) of the last
        ``keep_s`` seconds; returns how many were written."""
        _check_keep(keep_s)
        wall = time.time() if wall is None else wall
        t = np.asarray(arrivals, dtype=np.float64)
        t = t[(t > now - keep_s) & (t <= now)] + (wall - now)
        partial = self.path.with_name(f".{self.path.name}.{os.getpid()}.partial")
        try:
            with partial.open("wb") as f:
                np.save(f, t, allow_pickle=False)
            os.replace(partial, self.path)
        except OSError as e:
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
            raise ArrivalLogError(f"cannot write the arrival log {self.path}: {e}") from None
        return int(t.size)


def _check_keep(keep_s: float) -> None:
    if not (keep_s > 0 and math.isfinite(keep_s)):
        raise ArrivalLogError(f"keep_s must be a finite number of seconds > 0, got {keep_s!r}")
