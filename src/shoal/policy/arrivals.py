"""What an adaptive loop observes of its arrivals: rate, the SCV of the gaps, and the burst index.

Two measures of burstiness, for two questions:

- **SCV of the inter-arrival gaps** (1 for Poisson): how requests cluster over seconds. It is what a queueing model
  needs (Kingman's and Allen-Cunneen's approximations take it), but it does not tell a slow drift of the rate, which an
  autoscaler follows, from a burst it cannot: a trace whose rate wanders over minutes has an SCV a little above 1, as
  does an MMPP with mild bursts, and a table priced by SCV blended the trace towards its bursty rows (BENCHMARKS.md
  §13c, fan-out on the trace load).
- **Burst index** at a time scale ``scale_s``: how much the rate rises from one ``scale_s`` bin to the next,
  relative to the mean, with Poisson noise taken out,

      B = (mean(max(0, n[k+1] - n[k])²) - n̄) / n̄²,   n[k] the arrivals in bin k, n̄ their mean.

  Over rises and falls alike it would be (Allan factor - 1) / n̄ (the Allan factor of a point process, Lowen and
  Teich); rises only, because a rate that falls is no danger to an SLO, and a load that stops (a service's traffic
  ending, the drain at the end of a run) read as a burst and moved fan-out to a dearer plan. For a load whose rises
  and falls match (an MMPP) the two are equal. It is 0 for Poisson (a neighbouring difference is symmetric, its
  positive part's mean square n̄), about 0 for a drift slow against ``scale_s`` (neighbouring bins see nearly the
  same rate), and for bursts the squared size of their rises times how often they come: what an autoscaler has to
  follow within ``scale_s``. It does not depend on the rate for a load of one shape, so rows measured at several
  rates share it. The default scale, 10 s, is about what Shoal's autoscaler takes to see a rise and have new
  instances serving (a 2-s tick, a stable window of seconds, a cold start), and the controller's window.

**Time not observed** (``unseen``: spans ``(start, end)`` of the arrivals' clock): a restarted server's log of the
traffic it served before (``runtime.arrival_log``) has a hole for the time it was down. Read as time without
arrivals, that hole lowers the rate and its end reads as a rise: 10 s down gave a Poisson load at 12 req/s an index
of 0.14 over the next 90 s, where bursty traffic sits at 0.2 (docs/granularity.md). So the readings take unseen
spans out: the rate is over the seconds observed, a gap between arrivals that spans a hole is no gap of the traffic,
and the burst index compares only neighbouring bins that were both observed whole (``burst_index_of_counts``).

Pure: arrival times in, numbers out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "BURST_SCALE_S",
    "IndexAt",
    "ObservedLoad",
    "Unseen",
    "bins_observed",
    "burst_curve",
    "burst_index",
    "burst_index_of_counts",
    "credible_burst",
    "merged_unseen",
    "observe_load",
    "observed_runs",
]

#: The time scale of the burst index (module docstring): the bins whose neighbours are compared.
BURST_SCALE_S = 10.0

#: Spans ``(start, end)`` of the arrivals' clock in which arrivals were not observed (module docstring).
Unseen = Sequence[tuple[float, float]]


@dataclass(frozen=True)
class ObservedLoad:
    """Arrivals of one window: ``rate`` per second, ``scv`` the squared coefficient of variation of the gaps between
    arrivals (1 for a Poisson process, above 1 for bursty load; NaN with fewer than three arrivals), and, where asked
    for, the ``burst`` index at ``burst_scale_s`` (NaN where not asked for or the window holds fewer than three
    bins). ``expected_weight`` (0 to 1) says how much of the load is expectation rather than observation: what a
    loop knows of its traffic before it has seen enough of it (``policy.granularity.Horizon``). ``expected_burst``
    (NaN: none) is then blended into the credited index (``credible_burst``); an expected rate is already in
    ``rate``, and ``count / window_s`` is the rate seen."""

    rate: float
    scv: float
    count: int
    window_s: float
    burst: float = math.nan
    burst_scale_s: float | None = None
    expected_burst: float = math.nan
    expected_weight: float = 0.0
    #: Seconds of the window in which arrivals were not observed (module docstring); ``rate`` is over the rest.
    unseen_s: float = 0.0


def observe_load(
    arrivals: Sequence[float] | np.ndarray,
    now: float,
    window_s: float,
    burst_scale_s: float | None = None,
    unseen: Unseen = (),
) -> ObservedLoad:
    """The load of the window ``(now - window_s, now]`` from arrival times (seconds, any order); with
    ``burst_scale_s``, its burst index at that scale too. ``unseen``: spans in which arrivals were not observed,
    taken out of every reading (module docstring)."""
    if not window_s > 0:
        raise ValueError(f"window_s must be > 0, got {window_s!r}")
    holes = merged_unseen(unseen, now - window_s, now)
    t = np.asarray(arrivals, dtype=np.float64)
    t = np.sort(t[(t > now - window_s) & (t <= now)])
    scv = math.nan
    spans_hole = np.zeros(max(t.size - 1, 0), dtype=bool)
    for start, end in holes:  # a gap that spans a hole is the hole's, not the traffic's
        spans_hole |= (t[:-1] < end) & (t[1:] > start)
    gaps = np.diff(t)[~spans_hole]
    if gaps.size >= 2:
        mean = float(gaps.mean())
        scv = float(gaps.var(ddof=1) / (mean * mean)) if mean > 0 else math.nan
    unseen_s = sum(end - start for start, end in holes)
    seen_s = window_s - unseen_s
    burst = math.nan if burst_scale_s is None else burst_index(t, now, window_s, burst_scale_s, holes)
    rate = t.size / seen_s if seen_s > 0 else 0.0
    return ObservedLoad(rate, scv, int(t.size), window_s, burst, burst_scale_s, unseen_s=unseen_s)


def merged_unseen(unseen: Unseen, start: float, end: float) -> list[tuple[float, float]]:
    """The unseen spans clipped to ``[start, end]``, merged where they overlap, oldest first; empty ones dropped.
    Raises ValueError on a span that is not two finite times, the first no later than the second."""
    spans = []
    for span in unseen:
        a, b = (float(x) for x in span)
        if not (math.isfinite(a) and math.isfinite(b) and a <= b):
            raise ValueError(f"an unseen span is (start, end), finite and start <= end; got {span!r}")
        a, b = max(a, start), min(b, end)
        if b > a:
            spans.append((a, b))
    spans.sort()
    out: list[tuple[float, float]] = []
    for a, b in spans:
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def burst_index(arrivals: np.ndarray, now: float, window_s: float, scale_s: float, unseen: Unseen = ()) -> float:
    """The burst index (module docstring) of the arrivals in ``(now - window_s, now]``, binned at ``scale_s`` from
    ``now`` backwards (whole bins only); NaN with fewer than three bins or no arrival. Can come out below 0 by
    sampling noise; ``credible_burst`` says how far it can be trusted. Bins that overlap an ``unseen`` span are
    left out, and rises are read only between neighbours on one side of it."""
    if not scale_s > 0:
        raise ValueError(f"burst scale must be > 0, got {scale_s!r}")
    bins = int(window_s // scale_s + 1e-9)
    if bins < 3:
        return math.nan
    edges = now - scale_s * np.arange(bins, -1, -1, dtype=np.float64)
    counts = np.histogram(np.asarray(arrivals, dtype=np.float64), edges)[0].astype(np.float64)
    return burst_index_of_counts(observed_runs(counts, edges, unseen))


def observed_runs(counts: np.ndarray, edges: np.ndarray, unseen: Unseen) -> list[np.ndarray]:
    """``counts`` of the bins between ``edges``, split into runs of neighbouring bins that no ``unseen`` span
    overlaps (those bins left out)."""
    seen = bins_observed(edges, unseen)
    if seen.all():
        return [counts]
    parts = np.split(np.where(seen, counts, np.nan), np.flatnonzero(~seen))
    return [p[~np.isnan(p)] for p in parts if np.any(~np.isnan(p))]


def bins_observed(edges: np.ndarray, unseen: Unseen) -> np.ndarray:
    """For the bins between ``edges`` (ascending), whether no ``unseen`` span overlaps them."""
    seen = np.ones(edges.size - 1, dtype=bool)
    for start, end in merged_unseen(unseen, float(edges[0]), float(edges[-1])):
        seen &= ~((edges[:-1] < end) & (edges[1:] > start))
    return seen


def burst_index_of_counts(runs: Sequence[np.ndarray]) -> float:
    """The burst index (module docstring) from arrival counts in bins of one length, given as ``runs`` of
    neighbouring bins: rises are read between neighbours within a run only, so that what lies between runs (time
    not observed, the seam between traces laid end to end) reads as neither a fall nor a rise. NaN with fewer than
    three bins, no two neighbours or no arrival."""
    counts = [np.asarray(r, dtype=np.float64) for r in runs]
    rises = [np.maximum(np.diff(c), 0.0) for c in counts if c.size >= 2]
    every = np.concatenate(counts) if counts else np.empty(0)
    if every.size < 3 or not rises:
        return math.nan
    mean = float(every.mean())
    if mean <= 0:
        return math.nan
    return float((np.mean(np.concatenate(rises) ** 2) - mean) / (mean * mean))


def _poisson_noise(per_bin: float, bins: int) -> float:
    """The standard error of the burst index of Poisson arrivals (``credible_burst``)."""
    return 2.0 / (per_bin * math.sqrt(bins - 1))


@dataclass(frozen=True)
class IndexAt:
    """The burst index of a whole load at one time scale, its standard error under Poisson arrivals, and the
    number of bins it was read over."""

    scale_s: float
    index: float
    noise: float
    bins: int


#: The scales ``burst_curve`` looks at by default: from a second to a few minutes.
CURVE_SCALES_S = (1.0, 2.0, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0)


def burst_curve(
    arrivals: Sequence[float] | np.ndarray, seconds: float, scales_s: Sequence[float] = CURVE_SCALES_S
) -> list[IndexAt]:
    """The burst index of the arrivals in ``[0, seconds)`` at each of ``scales_s``, where it can be read: at least
    ten bins and an arrival per bin on average. How the index changes with the scale tells how long bursts last
    (it rises with the scale up to about a burst's length, then falls as bins average bursts out), and its height
    how sharp they are: ``generators.fit_bursts`` reads from it whether there are bursts to fit and how well a
    shape explains them."""
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ValueError(f"seconds must be a finite number > 0, got {seconds!r}")
    t = np.asarray(arrivals, dtype=np.float64)
    t = t[(t >= 0) & (t < seconds)]
    curve = []
    for scale in scales_s:
        bins = int(seconds // scale + 1e-9)
        per_bin = t.size / bins if bins else 0.0
        if bins < 10 or per_bin < 1.0:
            continue
        index = burst_index(t, bins * scale, bins * scale, scale)
        if math.isfinite(index):
            curve.append(IndexAt(scale, index, _poisson_noise(per_bin, bins), bins))
    return curve


def credible_burst(load: ObservedLoad) -> float:
    """The load's burst index less what Poisson sampling explains, no lower than 0; NaN where it has none.

    Under Poisson arrivals the estimate scatters around 0 with a standard error of about ``2 / (n̄ sqrt(K))`` (K
    differences of neighbouring bins, n̄ arrivals per bin; 1.86-1.95 / (n̄ sqrt(K)) measured over 1,000 samples at
    2 and 40 req/s, 60 and 600 s). Three standard errors are taken off (``credible_scv`` takes two off the SCV):
    the estimate is skewed, and with two, 4 % of Poisson samples came out bursty, up to 0.03 at 2 req/s over 10
    minutes, half the bursty calibration's index; with three, about 1 %. A quiet load's few arrivals per bin are
    not a burst. With an expectation (``expected_weight`` > 0), the credited index is blended with it by that
    weight; where too little was seen to read an index, the expectation is taken at its weight alone."""
    if load.burst_scale_s is None:
        return math.nan
    bins = int((load.window_s - load.unseen_s) // load.burst_scale_s + 1e-9)  # about the bins read (unseen out)
    per_bin = load.count / bins if bins else 0.0
    seen = math.nan
    if math.isfinite(load.burst) and bins >= 3 and per_bin > 0:
        seen = max(0.0, load.burst - 3.0 * _poisson_noise(per_bin, bins))
    w = load.expected_weight
    if w <= 0 or math.isnan(load.expected_burst):
        return seen
    return w * load.expected_burst if math.isnan(seen) else w * load.expected_burst + (1.0 - w) * seen
