"""Synthetic arrival processes as arrays of arrival times (seconds from 0, float64, sorted), all seeded.

- :func:`poisson`: homogeneous Poisson arrivals.
- :func:`mmpp`: a Markov-modulated Poisson process (bursty): the rate switches between states, staying in each for
  an exponential time.
- :func:`bursts`: an MMPP of a fixed shape at a given mean rate (bursts at ``peak`` times the quiet rate, half as
  long as the quiet phases): the bursty load the empirical tables are measured under (``shoal measure --bursty-cycle``);
  :func:`bursts_scv` and :func:`bursts_index` give its burstiness (``policy.arrivals``) as a process, not a sample;
  :func:`fit_bursts` finds the shape whose burst index matches a load's at several time scales.
- :func:`diurnal`: a sinusoidal day (or any period) of rates, as a non-homogeneous Poisson process.
- :func:`ramp`: a linear ramp of rates.
- :func:`periodic_bursts`: bursts that repeat every period (timer-driven traffic), onsets jittered.

Non-homogeneous processes are drawn by thinning (Lewis and Shedler): a Poisson process at the peak rate, each point
kept with probability rate(t) / peak. Imports nothing of Shoal.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
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


def bursts(mean_rate: float, seconds: float, cycle_s: float, peak: float = 4.0, seed: int = 0) -> np.ndarray:
    """Bursty arrivals of mean rate ``mean_rate``: an ``mmpp`` whose quiet phases last ``2/3 cycle_s`` and bursts
    ``1/3 cycle_s`` on average, bursts at ``peak`` times the quiet rate. With phases long against the gaps, the gaps'
    SCV is ``2 (2k + 1)(k + 2) / 9k - 1`` for ``k = peak``: 2 with the default peak of 4 (the middle of the
    empirical table's SCV class 2), 1 with ``peak=1`` (Poisson). One shape at every rate, so that rows measured at
    several rates share a burstiness class and are interpolated in rate."""
    _check(mean_rate, seconds)
    bursts_scv(peak)
    if not (cycle_s > 0 and math.isfinite(cycle_s)):
        raise ValueError(f"cycle_s must be a finite number > 0, got {cycle_s!r}")
    quiet = 3.0 * mean_rate / (2.0 + peak)
    return mmpp([quiet, peak * quiet], [2.0 * cycle_s / 3.0, cycle_s / 3.0], seconds, seed=seed)


def bursts_scv(peak: float = 4.0) -> float:
    """The SCV of the gaps of ``bursts`` with this ``peak`` (phases long against the gaps): the burstiness of the
    process, which a short sample of it scatters around (a minute of 15-s cycles: 1.5 to 3 for peak 4)."""
    if not (peak >= 1 and math.isfinite(peak)):
        raise ValueError(f"peak must be a finite number >= 1, got {peak!r}")
    return 2.0 * (2.0 * peak + 1.0) * (peak + 2.0) / (9.0 * peak) - 1.0


def bursts_index(peak: float = 4.0, cycle_s: float = 180.0, scale_s: float = 10.0) -> float:
    """The burst index at ``scale_s`` (``policy.arrivals``) of ``bursts`` with this ``peak`` and ``cycle_s``, at any
    mean rate: 0.069 for the defaults. A 12-minute sample's scatters around it (0.05 to 0.11)."""
    bursts_scv(peak)
    if not (cycle_s > 0 and math.isfinite(cycle_s)):
        raise ValueError(f"cycle_s must be a finite number > 0, got {cycle_s!r}")
    return mmpp_burst_index([1.0, peak], [2.0 * cycle_s / 3.0, cycle_s / 3.0], scale_s)


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
    """The ``bursts`` process that fits a load: bursts at ``peak`` times the quiet rate, a quiet phase and a burst
    lasting ``cycle_s`` together on average. ``misfit`` is the fit's root mean square error, in standard errors of
    the load's indices (about 1 or less: the shape explains the load; several: the load is not shaped like
    ``bursts``, for example a single surge or a drift, and the shape is the nearest one)."""

    peak: float
    cycle_s: float
    misfit: float


REL = 1.5

#: The shapes ``fit_bursts`` weighs: peaks from barely bursty to sharp, cycles from seconds to an hour.
_FIT_PEAKS = np.geomspace(1.25, 40.0, 61)
_FIT_CYCLES_S = np.geomspace(1.0, 3600.0, 121)


def fit_bursts(curve: Iterable[tuple[float, float, float, int]]) -> BurstShape | None:
    """The ``bursts`` shape whose burst index best matches a load's, given as ``(scale_s, index, noise, bins)``
    (``policy.arrivals.burst_curve``: the load's index at several scales, its standard error under Poisson arrivals
    and the number of bins it was read over); ``None`` where no index stands three standard errors above 0 (no
    bursts to fit: measure Poisson).

    Why several scales: one index confounds how sharp bursts are with how long they last (short sharp bursts and
    long mild ones can rise alike within 10 s); across scales the index rises up to about a burst's length and then
    falls, so where it peaks tells the cycle and how high the peak. The fit is least squares over a grid of shapes,
    each scale weighted by its standard error: Poisson noise plus ``REL / sqrt(bins)`` of the index (a mean of
    squared rises over few bins scatters widely once bursts dominate it)."""
    points = [(float(s), float(i), float(n), int(k)) for s, i, n, k in curve]
    if any(not (s > 0 and n > 0 and k > 0 and math.isfinite(i)) for s, i, n, k in points):
        raise ValueError("each point needs a scale > 0, a finite index, a noise > 0 and bins > 0")
    if not any(i > 3.0 * n for _, i, n, _ in points):
        return None
    scales = np.array([p[0] for p in points])
    observed = np.array([p[1] for p in points])
    spread = np.array([n + REL * max(i, 0.0) / math.sqrt(k) for _, i, n, k in points])
    weights = 1.0 / spread**2
    best = (math.inf, 0.0, 0.0)
    for peak in _FIT_PEAKS:
        for cycle in _FIT_CYCLES_S:
            model = np.array([bursts_index(float(peak), float(cycle), float(s)) for s in scales])
            error = float(np.sum(weights * (model - observed) ** 2))
            if error < best[0]:
                best = (error, float(peak), float(cycle))
    error, peak, cycle = best
    return BurstShape(peak, cycle, math.sqrt(error / len(points)))
