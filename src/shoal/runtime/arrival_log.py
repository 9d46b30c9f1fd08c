"""Arrival times kept on disk, so that an adaptive loop that restarts plans from the traffic it served before.

A forecast (``policy.forecast.Lookahead``) plans ahead of a burst only once its look-back holds three periods of
arrivals (with a 3-minute cron job, nine minutes), and a horizon priced as one load (``policy.granularity.Horizon``)
weighs a whole horizon of them. A server that restarts (a deploy, a crash, a new machine) would start blind and meet
the next bursts on whatever plan it started with. ``ArrivalLog`` writes the look-back's arrivals to a file every
window and reads them back when the loop starts, moved onto the new host's clock (times before its start are
negative, as ``SimAdaptive(seen_before=...)`` takes them).

The log also says what it observed: from when, until when it was last written, and the spans in between that were
not observed (earlier restarts' downtime). The time between its last write and the restart is not observed either.
Read as time without traffic, a downtime of 10 s made a Poisson load read as bursty for the next horizon (its end
is a rise); the loop takes these spans out of its readings instead (``policy.arrivals``, ``Logged.unseen``).

With the loop's meter (``policy.served.ServedCosts``), the log also keeps what the loop learned of its plans: each
plan's metered windows (cost, and with SLO trials what it served within the SLO), the rates each was tried at, and
the error budget's ledger (``ServedCosts.state``), so that a restart neither forgets what a plan really costs nor
spends its error budget on a trial it made before.

The file is NumPy's ``.npz`` format (whatever its name): ``arrivals``, wall-clock seconds (``time.time()``), one
float64 per arrival, oldest first; ``covered``, the wall-clock times from and until which it observed; ``unseen``,
one ``(start, end)`` row per span not observed; with the meter, ``served``, one string of JSON. It is read with
``allow_pickle=False`` and the JSON with ``json.loads``: a file is data, never code.
A log of Shoal before stop 21 (one ``.npy`` array of arrivals) is read as observed from its first arrival to its
last. The file is replaced whole (written beside it, then renamed), so a crash mid-write leaves the previous one. At
200 req/s a 12-minute look-back is 144,000 arrivals, 1.2 MB.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shoal.policy.arrivals import Unseen, merged_unseen

__all__ = ["ArrivalLog", "ArrivalLogError", "Logged"]


class ArrivalLogError(ValueError):
    """The arrival log cannot be read or written; the message says which file and what to do."""


@dataclass(frozen=True)
class Logged:
    """What a log holds of a look-back, on the reading host's clock: the arrival ``times`` (oldest first), the time
    ``since`` which arrivals were observed (the look-back's start where the log covers all of it; the reading time
    where there is no log), and the ``unseen`` spans in between (oldest first): those the log kept and the time
    since it was last written, a restart's downtime; ``served``, the meter's state where the log kept one."""

    times: np.ndarray
    since: float
    unseen: tuple[tuple[float, float], ...] = ()
    served: dict[str, Any] | None = None

    @property
    def unseen_s(self) -> float:
        return sum(end - start for start, end in self.unseen)


class ArrivalLog:
    """Arrival times of one application in ``path`` (created on the first ``write``; its folder must exist)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise ArrivalLogError(f"{self.path} is a folder; name a file for the arrival log, e.g. {self.path}/app.npy")
        if not self.path.parent.is_dir():
            raise ArrivalLogError(f"no folder {self.path.parent} for the arrival log {self.path}: create it first")

    def read(self, now: float, keep_s: float, wall: float | None = None) -> Logged:
        """The logged arrivals of the last ``keep_s`` seconds on a clock that reads ``now`` at wall-clock ``wall``
        (default: the time now), with what was observed of them (``Logged``); empty, observed since ``now``, if
        there is no log yet. Arrivals logged at or after ``wall`` (the wall clock moved back) are left out."""
        _check_keep(keep_s)
        wall = time.time() if wall is None else wall
        if not self.path.exists():
            return Logged(np.empty(0), now)
        times, covered, unseen, served = self._load()
        if covered is None:  # an old log with no arrivals: nothing observed to go on
            return Logged(np.empty(0), now)
        since, until = covered
        offset = wall - now
        recent = times[(times > wall - keep_s) & (times < wall)] - offset
        since = max(since, wall - keep_s)
        if until < wall:  # down since the last write
            unseen = np.vstack([unseen, [[until, wall]]])
        holes = merged_unseen([(a - offset, b - offset) for a, b in unseen], since - offset, now)
        return Logged(recent, min(since - offset, now), tuple(holes), served)

    def _load(self) -> tuple[np.ndarray, tuple[float, float] | None, np.ndarray, dict[str, Any] | None]:
        """The file's arrivals (sorted), the wall-clock times it observed from and until (None: an old log with no
        arrivals), its unseen spans, and the meter's state if it kept one."""
        served = None
        try:
            stored = np.load(self.path, allow_pickle=False)
            if isinstance(stored, np.lib.npyio.NpzFile):
                with stored:
                    missing = {"arrivals", "covered", "unseen"} - set(stored.files)
                    if missing:
                        raise ArrivalLogError(
                            f"{self.path} is not an arrival log (no {', '.join(sorted(missing))} in it); move it "
                            "away or delete it"
                        )
                    times, covered, unseen = stored["arrivals"], stored["covered"], stored["unseen"]
                    if "served" in stored.files:
                        served = self._served(stored["served"])
            else:  # a log of one array (before stop 21): observed from its first arrival to its last
                times, covered, unseen = stored, None, np.empty((0, 2))
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
        if covered is None:
            return times, ((float(times[0]), float(times[-1])) if times.size else None), unseen, None
        spans_ok = unseen.ndim == 2 and unseen.shape[1] == 2 and unseen.dtype.kind == "f"
        spans_ok = spans_ok and bool(np.all(np.isfinite(unseen)) and np.all(unseen[:, 0] <= unseen[:, 1]))
        if not (spans_ok and covered.shape == (2,) and covered.dtype.kind == "f") or np.isnan(covered).any():
            raise ArrivalLogError(
                f"{self.path} is not an arrival log (its covered or unseen spans are not times); move it away or "
                "delete it"
            )
        return times, (float(covered[0]), float(covered[1])), unseen.astype(np.float64), served

    def _served(self, stored: np.ndarray) -> dict[str, Any]:
        """The meter's state kept as one string of JSON."""
        try:
            if stored.ndim != 0 or stored.dtype.kind != "U":
                raise ValueError(f"a {stored.dtype} array of shape {stored.shape}, not one string")
            state = json.loads(str(stored[()]))
            if not isinstance(state, dict):
                raise ValueError(f"JSON {type(state).__name__}, not an object")
        except ValueError as e:
            raise ArrivalLogError(
                f"{self.path} is not an arrival log (its meter state: {e}); move it away or delete it"
            ) from None
        return state

    def write(
        self,
        arrivals: Sequence[float] | np.ndarray,
        now: float,
        keep_s: float,
        wall: float | None = None,
        since: float | None = None,
        unseen: Unseen = (),
        served: Mapping[str, Any] | None = None,
    ) -> int:
        """Replace the log with ``arrivals`` (times on a clock that reads ``now`` at wall-clock ``wall``) of the last
        ``keep_s`` seconds, observed ``since`` then (default: all of them) but for the ``unseen`` spans, and the
        meter's ``served`` state (``ServedCosts.state``) if given; returns how many arrivals were written."""
        _check_keep(keep_s)
        wall = time.time() if wall is None else wall
        offset = wall - now
        start = now - keep_s if since is None else max(now - keep_s, since)
        t = np.asarray(arrivals, dtype=np.float64)
        t = t[(t > now - keep_s) & (t <= now)] + offset
        holes = np.array(merged_unseen(unseen, start, now), dtype=np.float64).reshape(-1, 2) + offset
        partial = self.path.with_name(f".{self.path.name}.{os.getpid()}.partial")
        try:
            with partial.open("wb") as f:
                extra = {} if served is None else {"served": np.array(json.dumps(served))}
                np.savez(f, arrivals=t, covered=np.array([start + offset, wall]), unseen=holes, **extra)
            os.replace(partial, self.path)
        except OSError as e:
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
            raise ArrivalLogError(f"cannot write the arrival log {self.path}: {e}") from None
        return int(t.size)


def _check_keep(keep_s: float) -> None:
    if not (keep_s > 0 and math.isfinite(keep_s)):
        raise ArrivalLogError(f"keep_s must be a finite number of seconds > 0, got {keep_s!r}")
