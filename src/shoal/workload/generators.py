"""Synthetic arrival processes as arrays of arrival times (seconds from 0, float64, sorted), all seeded.

- :func:`poisson`: homogeneous Poisson arrivals.
- :func:`mmpp`: a Markov-modulated Poisson process (bursty): the rate switches between states, staying in each for
  an exponential time.
- :func:`bursts`: an MMPP of a fixed shape at a given mean rate (bursts at ``peak`` times the quiet rate, ``share``
  of each cycle: a third by default): the bursty load the empirical tables are measured under (``shoal measure
  --bursty-cycle``); :func:`bursts_scv` and :func:`bursts_index` give its burstiness (``policy.arrivals``) as a
  process, not a sample; :func:`fit_bursts` finds the shape of a load (its two levels and how long each lasts).
- :func:`diurnal`: a sinusoidal day (or any period) of rates, as a non-homogeneous Poisson process.
- :func:`ramp`: a linear ramp of rates.
- :func:`periodic_bursts`: bursts that repeat every period (timer-driven traffic), onsets jittered.

Non-homogeneous processes are drawn by thinning (Lewis and Shedler): a Poisson process at the peak rate, each point
kept with probability rate(t) / peak. Imports nothing of Shoal (``fit_bursts`` imports hmmlearn when called).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "BURST_SHARE",
    "BurstShape",
    "bursts",
    "bursts_index",
    "bursts_scv",
    "diurnal",
    "fit_bursts",
    "mmpp",
    "mmpp_burst_index",
    "periodic_bursts",
    "poisson",
    "ramp",
    "thinned",
]


def _check(rate: float, seconds: float) -> None:
    if not (rate >= 0 and math.isfinite(rate)):
        raise ValueError(f"rate must be a finite number >= 0, got {rate!r}")
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ValueError(f"seconds must be a finite number > 0, got {seconds!r}")


def poisson(rate: float, seconds: float, seed: int = 0) -> np.ndarray:
    """Poisson arrivals of ``rate`` per second over ``[0, seconds)``: a Poisson count, then sorted uniform times."""
    _check(rate, seconds)
    rng = np.random.default_rng(seed)
    n = rng.poisson(rate * seconds)
    return np.sort(rng.random(n) * seconds)


def thinned(rate_at: Callable[[np.ndarray], np.ndarray], peak: float, seconds: float, seed: int = 0) -> np.ndarray:
    """Non-homogeneous Poisson arrivals with rate ``rate_at(t)`` (vectorised, never above ``peak``)."""
    _check(peak, seconds)
    rng = np.random.default_rng(seed)
    t = np.sort(rng.random(rng.poisson(peak * seconds)) * seconds)
    if peak == 0:
        return t
    keep = rng.random(t.size) * peak < rate_at(t)
    return t[keep]


def diurnal(
    mean_rate: float,
    seconds: float,
    *,
    period_s: float = 86_400.0,
    amplitude: float = 0.5,
    peak_at_s: float = 0.0,
    seed: int = 0,
) -> np.ndarray:
    """Rate ``mean_rate * (1 + amplitude * cos(2π (t - peak_at_s) / period_s))``; ``amplitude`` in [0, 1]."""
    if not 0 <= amplitude <= 1:
        raise ValueError(f"amplitude must be in [0, 1], got {amplitude!r}")
    w = 2 * math.pi / period_s
    return thinned(
        lambda t: mean_rate * (1 + amplitude * np.cos(w * (t - peak_at_s))),
        mean_rate * (1 + amplitude),
        seconds,
        seed,
    )


def ramp(start_rate: float, end_rate: float, seconds: float, seed: int = 0) -> np.ndarray:
    """Rate rising (or falling) linearly from ``start_rate`` to ``end_rate`` over ``seconds``."""
    _check(start_rate, seconds)
    _check(end_rate, seconds)
    return thinned(
        lambda t: start_rate + (end_rate - start_rate) * t / seconds, max(start_rate, end_rate), seconds, seed
    )


def periodic_bursts(
    quiet_rate: float,
    burst_rate: float,
    period_s: float,
    burst_s: float,
    seconds: float,
    *,
    first_at_s: float = 0.0,
    jitter_s: float = 0.0,
    seed: int = 0,
) -> np.ndarray:
    """Poisson arrivals at ``quiet_rate``, and at ``burst_rate`` for ``burst_s`` from each onset: onsets every
    ``period_s`` from ``first_at_s``, each moved by a uniform jitter in ``[-jitter_s, jitter_s]`` (a cron job whose
    start wanders). Bursts whose onsets repeat, unlike ``mmpp``'s memoryless ones (``policy.forecast``)."""
    _check(quiet_rate, seconds)
    _check(burst_rate, seconds)
    if not (0 < burst_s < period_s and math.isfinite(period_s)):
        raise ValueError(f"need 0 < burst_s < period_s (finite), got {burst_s!r}, {period_s!r}")
    if not (jitter_s >= 0 and 2 * jitter_s + burst_s <= period_s):
        raise ValueError(f"jitter_s must be >= 0 and leave the bursts apart, got {jitter_s!r}")
    rng = np.random.default_rng(seed + 7919)
    k = np.arange(math.floor((first_at_s - period_s) / period_s), math.ceil(seconds / period_s) + 1)
    onsets = first_at_s + k * period_s + rng.uniform(-jitter_s, jitter_s, k.size)

    def rate_at(t: np.ndarray) -> np.ndarray:
        i = np.searchsorted(onsets, t, side="right") - 1
        inside = (i >= 0) & (t - onsets[np.maximum(i, 0)] < burst_s)
        return np.where(inside, burst_rate, quiet_rate)

    return thinned(rate_at, max(quiet_rate, burst_rate), seconds, seed)


#: The part of each cycle that ``bursts`` spends bursting unless told otherwise.
BURST_SHARE = 1.0 / 3.0


def mmpp(
    rates: Sequence[float], mean_dwell_s: Sequence[float], seconds: float, seed: int = 0, start_state: int = 0
) -> np.ndarray:
    """Bursty arrivals: state ``i`` emits Poisson arrivals at ``rates[i]`` for an exponential time of mean
    ``mean_dwell_s[i]``, then moves to another state chosen uniformly (with two states: they alternate)."""
    if len(rates) != len(mean_dwell_s) or not rates:
        raise ValueError("rates and mean_dwell_s must be non-empty and of the same length")
    for r in rates:
        _check(r, seconds)
    if any(not d > 0 for d in mean_dwell_s):
        raise ValueError("every mean dwell time must be > 0")
    rng = np.random.default_rng(seed)
    k = len(rates)
    state, t = start_state, 0.0
    parts = []
    while t < seconds:
        dwell = min(rng.exponential(mean_dwell_s[state]), seconds - t)
        n = rng.poisson(rates[state] * dwell)
        parts.append(t + rng.random(n) * dwell)
        t += dwell
        if k > 1:
            state = (state + 1 + int(rng.integers(k - 1))) % k
    return np.sort(np.concatenate(parts)) if parts else np.zeros(0)


def bursts(
    mean_rate: float, seconds: float, cycle_s: float, peak: float = 4.0, seed: int = 0, share: float = BURST_SHARE
) -> np.ndarray:
    """Bursty arrivals of mean rate ``mean_rate``: an ``mmpp`` whose bursts take ``share`` of each ``cycle_s`` on
    average (a third by default: quiet phases of ``2/3 cycle_s``, bursts of ``1/3 cycle_s``), bursts at ``peak``
    times the quiet rate. With phases long against the gaps, the gaps' SCV is ``bursts_scv(peak, share)``: 2 with
    the default peak of 4 (the middle of the empirical table's SCV class 2), 1 with ``peak=1`` (Poisson). One shape
    at every rate, so that rows measured at several rates share a burstiness class and are interpolated in rate."""
    _check(mean_rate, seconds)
    bursts_scv(peak, share)
    if not (cycle_s > 0 and math.isfinite(cycle_s)):
        raise ValueError(f"cycle_s must be a finite number > 0, got {cycle_s!r}")
    quiet = mean_rate / (1.0 - share + share * peak)
    return mmpp([quiet, peak * quiet], [(1.0 - share) * cycle_s, share * cycle_s], seconds, seed=seed)


def bursts_scv(peak: float = 4.0, share: float = BURST_SHARE) -> float:
    """The SCV of the gaps of ``bursts`` with this ``peak`` and ``share`` (phases long against the gaps): the
    burstiness of the process, which a short sample of it scatters around (a minute of 15-s cycles: 1.5 to 3 for
    peak 4). A gap is drawn from a phase in proportion to the phase's arrivals, so with rates 1 and ``k`` and burst
    share ``s`` the SCV is ``2 (1 - s + s k)(1 - s + s / k) - 1``."""
    if not (peak >= 1 and math.isfinite(peak)):
        raise ValueError(f"peak must be a finite number >= 1, got {peak!r}")
    if not 0 < share < 1:
        raise ValueError(f"share (the bursts' part of each cycle) must be in (0, 1), got {share!r}")
    return 2.0 * (1.0 - share + share * peak) * (peak * (1.0 - share) + share) / peak - 1.0


def bursts_index(peak: float = 4.0, cycle_s: float = 180.0, scale_s: float = 10.0, share: float = BURST_SHARE) -> float:
    """The burst index at ``scale_s`` (``policy.arrivals``) of ``bursts`` with this ``peak``, ``cycle_s`` and
    ``share``, at any mean rate: 0.069 for the defaults. A 12-minute sample's scatters around it (0.05 to 0.11)."""
    bursts_scv(peak, share)
    if not (cycle_s > 0 and math.isfinite(cycle_s)):
        raise ValueError(f"cycle_s must be a finite number > 0, got {cycle_s!r}")
    return mmpp_burst_index([1.0, peak], [(1.0 - share) * cycle_s, share * cycle_s], scale_s)


def mmpp_burst_index(rates: Sequence[float], mean_dwell_s: Sequence[float], scale_s: float) -> float:
    """The burst index at ``scale_s`` (``policy.arrivals``) of a two-state ``mmpp``, exactly. The process is
    reversible, so neighbouring bins' counts are exchangeable and its rises are distributed as its falls: with
    Poisson noise taken out, the index is half the mean square of the difference of the bins' expected arrivals
    Λ, Λ' over (m τ)², m the mean rate, i.e. ``(Var Λ - Cov(Λ, Λ')) / (m τ)²``. The rate's autocovariance is
    ``σ² exp(-θ s)``, ``θ`` the sum of the switching rates and ``σ²`` the rate's variance."""
    if len(rates) != 2 or len(mean_dwell_s) != 2:
        raise ValueError("the burst index is known exactly for two-state MMPPs only")
    if any(not (d > 0 and math.isfinite(d)) for d in mean_dwell_s) or any(not (r >= 0) for r in rates):
        raise ValueError("dwell times must be finite and > 0, rates >= 0")
    if not (scale_s > 0 and math.isfinite(scale_s)):
        raise ValueError(f"scale_s must be a finite number > 0, got {scale_s!r}")
    (r0, r1), (d0, d1) = rates, mean_dwell_s
    p0, p1 = d0 / (d0 + d1), d1 / (d0 + d1)
    mean = p0 * r0 + p1 * r1
    if mean <= 0:
        raise ValueError("an MMPP with no arrivals has no burst index")
    theta = 1.0 / d0 + 1.0 / d1
    var_rate = (r1 - r0) ** 2 * p0 * p1
    decay = -math.expm1(-theta * scale_s)  # 1 - exp(-θτ), exact for small θτ
    var_bin = 2.0 * var_rate * (scale_s / theta - decay / theta**2)
    cov_neighbours = var_rate * decay**2 / theta**2
    return (var_bin - cov_neighbours) / (mean * scale_s) ** 2


@dataclass(frozen=True)
class BurstShape:
    """The ``bursts`` process that fits a load: bursts at ``peak`` times the quiet rate, taking ``share`` of a
    cycle of ``cycle_s`` (a quiet phase and a burst together) on average. ``misfit`` is the root mean square
    distance of the shape's burst index from the load's at each scale, in standard errors of the load's indices
    (about 1 or less: the shape explains the load; several: the load is not shaped like ``bursts``, for example a
    single surge or a drift, and the shape is the nearest one)."""

    peak: float
    cycle_s: float
    share: float
    misfit: float


#: How far a load's burst index at each scale may scatter, beyond Poisson noise, relative to the index over the
#: square root of the bins or of the sample's cycles, whichever are fewer: the index is a mean of squared rises,
#: which bursts' onsets and ends dominate, so a sample holds about as many independent ones as it holds cycles.
#: With it the fitted shape of an hour of ``bursts`` (six shapes, 10 seeds each) misfits by 0.57 at the median
#: and 0.86 at the 90th percentile, a linear ramp or a sinusoidal cycle by 2.3-2.8.
REL = 1.5
#: The sharpest bursts ``fit_bursts`` reports: traffic silent between bursts has no quiet rate to divide by.
MAX_PEAK = 100.0
#: ``fit_bursts`` bins arrivals this finely (a transition inside a bin blurs both levels), and into at most
#: ``_MAX_BINS`` bins (0.25-s bins up to about 7 hours of traffic, wider beyond; an hour's 14,400 bins fit in
#: 0.02-0.2 s).
_FIT_BIN_S = 0.25
_MAX_BINS = 100_000


def fit_bursts(
    arrivals: Sequence[float] | np.ndarray, seconds: float, curve: Iterable[tuple[float, float, float, int]]
) -> BurstShape | None:
    """The ``bursts`` shape of a load: its arrivals in ``[0, seconds)`` and its burst index curve as
    ``(scale_s, index, noise, bins)`` points (``policy.arrivals.burst_curve``: the index at several scales, its
    standard error under Poisson arrivals and the number of bins it was read over). ``None`` where no index stands
    three standard errors above 0: no bursts to fit (measure Poisson).

    The shape is the maximum-likelihood two-state Markov-modulated Poisson process of the binned arrivals (a
    two-state Poisson hidden Markov model, hmmlearn's EM, started from the counts' lower half and top fifth): its
    two rates give the peak, its states' mean dwell times the cycle and the bursts' share of it. Why not the curve
    alone (the fit until stop 16): the index curve tells how long bursts last but not their share from their
    peak; bursts 40 % of a cycle at 8x the quiet rate and a third of it at 4.7x rise alike at every scale, and the
    table then prices the wrong bursts (BENCHMARKS.md §12i). The levels of the binned rates tell them apart. The
    curve still says whether there are bursts at all and how well the shape explains them (``misfit``, each
    scale weighted by its standard error: Poisson noise plus ``REL`` times the index over the square root of the
    bins or of the sample's cycles, whichever are fewer)."""
    points = [(float(s), float(i), float(n), int(k)) for s, i, n, k in curve]
    if any(not (s > 0 and n > 0 and k > 0 and math.isfinite(i)) for s, i, n, k in points):
        raise ValueError("each point needs a scale > 0, a finite index, a noise > 0 and bins > 0")
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ValueError(f"seconds must be a finite number > 0, got {seconds!r}")
    if not any(i > 3.0 * n for _, i, n, _ in points):
        return None
    quiet, burst, quiet_s, burst_s = _two_levels(np.asarray(arrivals, dtype=np.float64), seconds)
    peak = min(MAX_PEAK, burst / quiet) if quiet > 0 else MAX_PEAK
    cycle, share = quiet_s + burst_s, burst_s / (quiet_s + burst_s)
    model = np.array([bursts_index(peak, cycle, s, share) for s, _, _, _ in points])
    observed = np.array([i for _, i, _, _ in points])
    independent = np.minimum([k for _, _, _, k in points], max(1.0, seconds / cycle))
    noise = np.array([n for _, _, n, _ in points])
    spread = noise + REL * np.maximum(np.maximum(model, observed), 0.0) / np.sqrt(independent)
    return BurstShape(peak, cycle, share, math.sqrt(float(np.mean(((model - observed) / spread) ** 2))))


def _two_levels(arrivals: np.ndarray, seconds: float) -> tuple[float, float, float, float]:
    """The quiet and burst rates (per second) and mean dwell times (seconds) of the two-state Poisson hidden Markov
    model that best explains the arrivals binned in ``[0, seconds)`` (``fit_bursts``)."""
    from hmmlearn.hmm import PoissonHMM  # imported here: only fitting a shape needs it

    width = max(_FIT_BIN_S, seconds / _MAX_BINS)
    edges = np.arange(0.0, seconds + width / 2, width)
    if edges.size < 3:
        raise ValueError(f"{seconds!r} s is too short to fit bursts in")
    counts = np.histogram(arrivals, edges)[0]
    low = float(counts[counts <= np.median(counts)].mean())
    high = max(float(counts[counts >= np.quantile(counts, 0.8)].mean()), low + 1e-3)
    # tol: log-likelihood gained per EM step, summed over up to _MAX_BINS bins
    model = PoissonHMM(n_components=2, n_iter=1000, tol=1e-2, init_params="", params="stl")
    model.startprob_ = np.array([0.5, 0.5])
    model.transmat_ = np.array([[0.95, 0.05], [0.05, 0.95]])
    model.lambdas_ = np.array([[low], [high]])
    model.fit(counts[:, None])
    rates = model.lambdas_[:, 0] / width
    stay = np.minimum(np.diag(model.transmat_), 1.0 - 1.0 / counts.size)  # a state never left lasts the sample
    dwell = width / (1.0 - stay)
    q, b = (0, 1) if rates[0] <= rates[1] else (1, 0)
    return float(rates[q]), float(rates[b]), float(dwell[q]), float(dwell[b])
