"""Forecasting the load of the next seconds from traffic whose bursts repeat.

An adaptive loop that only reacts meets each burst on the plan it chose in the quiet before it: in the GPU
scenarios even a perfect reaction one window late loses 1 to 4 points of SLO hit rate under bursts
(BENCHMARKS.md §13h), so the loop holds the burst plan through the quiet instead, for 14 to 46 % more cost. Bursts
whose onsets repeat (timer-triggered jobs, a batch upload every few minutes, the "periodic" functions that Shahrad
et al. found among the Azure Functions' most invoked) can be seen coming: the time since the last one says when the
next begins. Memoryless bursts (a Markov-modulated process) cannot, and must not be mistaken for periodic ones.

``fit_periodic`` looks for such a period in the arrivals of a look-back (the sample autocorrelation of the arrivals
binned at ``bin_s``, the highest peak after its first zero crossing, at least ``min_strength`` and seen over
``min_periods`` periods or more), and folds the look-back by it into a rate profile per phase. ``PeriodicForecast
.rate_between(t0, t1)`` then reads the highest rate the profile holds over a coming span: the load to plan for a
warm-up ahead. Where no period stands out (Poisson, a drift, an MMPP), ``fit_periodic`` returns None and the loop
does what it did without a forecast.

Pure: arrival times in, a forecast out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from shoal.policy.arrivals import BURST_SCALE_S, ObservedLoad, Unseen, bins_observed
from shoal.policy.granularity import Candidate, GranularityController, GranularityDecision
from shoal.policy.hindsight import switching_schedule

__all__ = ["MAX_WINDOWS", "OVERSHOOT", "RISE", "Lookahead", "PeriodicForecast", "fit_periodic"]

#: A forecast rate this many times the rate now is a burst beginning (``Lookahead.ahead``).
RISE = 1.5
#: ``Lookahead.windows``: at most this many windows ahead (one period's, for periods up to this many windows).
MAX_WINDOWS = 60
#: ``Lookahead.decide``: the current plan's metered cost replaces the table's while the load holds only where it is
#: this many times the table's: instances an onset made the autoscaler start, beyond the steady state the table
#: prices, and not the few percent by which any run differs from a table.
OVERSHOOT = 1.2


@dataclass(frozen=True)
class PeriodicForecast:
    """A load that repeats every ``period_s``: ``profile[k]`` is the mean rate (per second) over phase
    ``[k bin_s, (k + 1) bin_s)`` of the period, phases counted from time 0 of the arrivals' clock. ``strength`` is
    the autocorrelation at the period (1: every period alike), ``periods`` how many periods it was fitted over."""

    period_s: float
    bin_s: float
    profile: tuple[float, ...]
    strength: float
    periods: float

    def rate_between(self, t0: float, t1: float) -> float:
        """The highest rate of the profile over the times ``[t0, t1]``: the load to have a plan ready for."""
        if not (math.isfinite(t0) and math.isfinite(t1) and t1 >= t0):
            raise ValueError(f"need finite t0 <= t1, got {t0!r}, {t1!r}")
        n = len(self.profile)
        first = math.floor((t0 % self.period_s) / self.bin_s)
        bins = min(n, math.floor((t1 - t0) / self.bin_s) + 2)  # the bins [t0, t1] touches, at most all of them
        return max(self.profile[(first + k) % n] for k in range(bins))

    def burst_index(self, scale_s: float) -> float:
        """The burst index at ``scale_s`` (``policy.arrivals``) of traffic following the profile: its rises between
        ``scale_s`` bins over ten periods, less what the profile's own sampling noise (a mean over ``periods``
        periods of Poisson counts) explains; no lower than 0. The burstiness a plan meets at each onset, on the
        scale the empirical table's bursty rows are keyed by."""
        if not (scale_s > 0 and math.isfinite(scale_s)):
            raise ValueError(f"scale_s must be a finite number > 0, got {scale_s!r}")
        step = min(self.bin_s, scale_s) / 4
        t = np.arange(0.0, 10 * self.period_s, step)
        phase = np.minimum((np.mod(t, self.period_s) // self.bin_s).astype(np.int64), len(self.profile) - 1)
        counts = np.bincount((t // scale_s).astype(np.int64), weights=np.asarray(self.profile)[phase] * step)
        counts = counts[:-1]  # the last bin may be partial
        mean = float(counts.mean()) if counts.size else 0.0
        if counts.size < 3 or mean <= 0:
            return 0.0
        rises = np.maximum(np.diff(counts), 0.0)
        return max(0.0, float((np.mean(rises**2) - mean / self.periods) / (mean * mean)))

    @property
    def peak(self) -> float:
        """The profile's highest rate over its mean: how sharp the repeating bursts are (1: a flat load)."""
        mean = sum(self.profile) / len(self.profile)
        return max(self.profile) / mean if mean > 0 else math.nan


def fit_periodic(
    arrivals: Sequence[float] | np.ndarray,
    now: float,
    lookback_s: float,
    bin_s: float = 2.0,
    min_periods: float = 3.0,
    min_strength: float = 0.6,
    min_period_s: float | None = None,
    unseen: Unseen = (),
) -> PeriodicForecast | None:
    """The period and profile of the arrivals in ``[now - lookback_s, now)``, or None where none stands out.

    The autocorrelation of the binned counts (unbiased: each lag's products over their own number, so a period
    late in the look-back is not discounted) falls from 1 as the lag grows; a period shows as a peak after the
    first zero crossing. A memoryless burst process has no such peak beyond its noise; ``min_strength`` (0.6) is
    above what an hour-scale MMPP's sample autocorrelation reaches over a few of its cycles, and ``min_periods``
    (3) asks for the period to have been seen that many times. ``min_period_s`` (default 4 bins) keeps clustering
    within seconds from counting as a period. Bins that overlap an ``unseen`` span (a restart's downtime,
    ``policy.arrivals``) are missing values: out of the mean, of each lag's products and of the profile, so that
    time not observed is neither read as quiet nor shifts the phase."""
    if not (lookback_s > 0 and math.isfinite(lookback_s)):
        raise ValueError(f"lookback_s must be a finite number > 0, got {lookback_s!r}")
    if not (bin_s > 0 and math.isfinite(bin_s)) or bin_s * 8 > lookback_s:
        raise ValueError(f"bin_s must be > 0 and at most an eighth of lookback_s, got {bin_s!r}")
    if not (min_periods >= 2 and math.isfinite(min_periods)):
        raise ValueError(f"min_periods must be a finite number >= 2, got {min_periods!r}")
    if not 0 < min_strength <= 1:
        raise ValueError(f"min_strength must be in (0, 1], got {min_strength!r}")
    t = np.asarray(arrivals, dtype=np.float64)
    start = now - lookback_s
    t = t[(t >= start) & (t < now)]
    n = math.floor(lookback_s / bin_s)
    if t.size < 8:
        return None
    start = now - n * bin_s
    counts = np.bincount(((t[t >= start] - start) // bin_s).astype(np.int64), minlength=n)[:n].astype(np.float64)
    seen = bins_observed(start + bin_s * np.arange(n + 1, dtype=np.float64), unseen)
    m = seen.astype(np.float64)
    observed = int(seen.sum())
    if observed < 8:
        return None
    x = (counts - counts[seen].mean()) * m
    var = float(np.dot(x, x)) / observed
    if var <= 0:
        return None
    max_lag = math.floor(observed / min_periods)
    lo = max(4, math.ceil((min_period_s or 0.0) / bin_s))
    if max_lag <= lo:
        return None
    # unbiased autocorrelation up to max_lag, through the FFT (n log n; a look-back of an hour at 2 s is 1800
    # bins): each lag's products over the number of pairs of observed bins at that lag (n - lag with none unseen)
    size = 1 << (2 * n - 1).bit_length()
    f, g = np.fft.rfft(x, size), np.fft.rfft(m, size)
    raw = np.fft.irfft(f * np.conj(f), size)[: max_lag + 2]
    pairs = np.rint(np.fft.irfft(g * np.conj(g), size)[: max_lag + 2])
    acf = np.divide(raw, pairs * var, out=np.zeros_like(raw), where=pairs > 0)
    below = np.flatnonzero(acf[: max_lag + 1] < 0)
    if below.size == 0:
        return None
    first = max(int(below[0]), lo)
    k = first + int(np.argmax(acf[first : max_lag + 1]))
    strength = float(acf[k])
    if strength < min_strength:
        return None
    # refine the peak between bins (a parabola through the peak and its neighbours)
    a, b, c = acf[k - 1], acf[k], acf[k + 1]
    denom = a - 2 * b + c
    shift = 0.5 * (a - c) / denom if denom < 0 else 0.0
    period = (k + max(-0.5, min(0.5, shift))) * bin_s
    phases = math.ceil(period / bin_s)
    mids = start + (np.arange(n) + 0.5) * bin_s
    which = np.minimum((np.mod(mids, period) // bin_s).astype(np.int64), phases - 1)[seen]
    sums = np.bincount(which, weights=counts[seen], minlength=phases)
    times = np.bincount(which, minlength=phases)
    rates = [float(s / (m * bin_s)) if m else math.nan for s, m in zip(sums, times, strict=True)]
    for i, r in enumerate(rates):  # a phase no bin's middle fell in (the period's last, partial one): its neighbour's
        if math.isnan(r):
            rates[i] = rates[i - 1] if i and not math.isnan(rates[i - 1]) else float(counts[seen].mean() / bin_s)
    profile = tuple(rates)
    return PeriodicForecast(period, bin_s, profile, strength, observed * bin_s / period)


class Lookahead:
    """An adaptive loop's forecast: refitted at each window over the last ``lookback_s`` of arrivals
    (``fit_periodic``).

    While a period holds (``active``), the loop decides each window by ``decide``: the first step of the cheapest
    schedule over the forecast ``windows`` of the next period, so that the burst plan is warm when a burst begins and
    the quiet plan serves between bursts; and it weighs no horizon, whose burst pricing exists to hold the burst plan
    through the quiet when onsets cannot be seen coming. Its emergency checks between windows read ``ahead``: the
    higher of the rate seen and the rate forecast until the next check and a warm-up after. Without a period it
    changes nothing."""

    def __init__(
        self,
        lookback_s: float,
        bin_s: float = 2.0,
        min_periods: float = 3.0,
        min_strength: float = 0.6,
        metered: bool = False,
    ) -> None:
        fit_periodic([], 0.0, lookback_s, bin_s, min_periods, min_strength)  # the same checks, at construction
        #: The loops price staying at what the current plan's instances cost now (``decide``'s metered cost). Off
        #: by default: in the GPU scenarios it cut the forecast's cost 2-25 % for 0.04-1.3 points of SLO hit, where
        #: no plan met the target (BENCHMARKS.md §13k), which the controller's rule does not trade.
        self.metered = metered
        self.lookback_s = lookback_s
        self.bin_s = bin_s
        self.min_periods = min_periods
        self.min_strength = min_strength
        self.forecast: PeriodicForecast | None = None

    def refit(self, arrivals: Sequence[float] | np.ndarray, now: float, unseen: Unseen = ()) -> PeriodicForecast | None:
        """Fit the look-back ending ``now`` (``unseen``: spans not observed, ``fit_periodic``); the forecast (or
        None) is kept for ``ahead`` until the next refit."""
        self.forecast = fit_periodic(
            arrivals, now, self.lookback_s, self.bin_s, self.min_periods, self.min_strength, unseen=unseen
        )
        return self.forecast

    @property
    def active(self) -> bool:
        return self.forecast is not None

    def ahead(self, load: ObservedLoad, now: float, lead_s: float) -> ObservedLoad:
        """``load`` with its rate raised to the forecast's highest over ``[now, now + lead_s]``, if that is higher
        (``load`` itself without a forecast); the arrivals seen stay in ``count``. Where that is a burst beginning
        (more than ``RISE`` times the rate now, seen or forecast), the load also carries the profile's burst index
        as its expected burstiness (``credible_burst`` takes it at weight 1): what a plan has to absorb at an onset
        is a rise, which the table prices by its bursty rows, not the burst rate held steadily."""
        f = self.forecast
        if f is None:
            return load
        rate = f.rate_between(now, now + lead_s)
        if rate <= load.rate:
            return load
        return _planned(replace(load, rate=rate), f, rising=rate > RISE * max(load.rate, f.rate_between(now, now)))

    def windows(self, load: ObservedLoad, now: float, lead_s: float, window_s: float) -> list[ObservedLoad]:
        """The loads of the windows of one period ahead (at most ``MAX_WINDOWS``), the first beginning ``lead_s``
        from ``now`` (a warm-up: a switch made now serves from then): each at the forecast's highest rate in it
        (the first no lower than the rate seen), a window whose rate rises more than ``RISE`` times over the one
        before it (the first: over the rate now) with the profile's burst index, as ``ahead`` gives it. Empty
        without a forecast."""
        f = self.forecast
        if f is None:
            return []
        if not (window_s > 0 and lead_s >= 0):
            raise ValueError(f"need window_s > 0 and lead_s >= 0, got {window_s!r}, {lead_s!r}")
        count = min(MAX_WINDOWS, max(1, math.ceil(f.period_s / window_s)))
        before = max(load.rate, f.rate_between(now, now))
        out = []
        for k in range(count):
            t0 = now + lead_s + k * window_s
            rate = f.rate_between(t0, t0 + window_s)
            if k == 0:
                rate = max(rate, load.rate)
            out.append(_planned(replace(load, rate=rate, window_s=window_s), f, rising=rate > RISE * before))
            before = rate
        return out

    @staticmethod
    def held(load: ObservedLoad, ahead: Sequence[ObservedLoad]) -> int:
        """How many of the forecast windows ``ahead`` (``windows``) come before the load first falls below the rate
        seen over ``RISE``: while it holds, the autoscaler keeps the instances it has."""
        for k, w in enumerate(ahead):
            if w.rate < load.rate / RISE:
                return k
        return len(ahead)

    def decide(
        self,
        controller: GranularityController,
        now: float,
        current: str,
        windows: Sequence[Sequence[Candidate]],
        window_s: float,
        overlap_s: float,
        metered_cost_per_s: float | None = None,
        held: int = 0,
    ) -> GranularityDecision:
        """The plan for the next window from the cheapest schedule over the forecast windows' candidates
        (``policy.hindsight.switching_schedule`` from ``current``, each switch priced over ``overlap_s``; plans not
        scored in every window left out): what the scheduled oracle does with the load known, done with the load
        forecast. The controller notes it
        (``GranularityController.follow``); its confirmations and dwell are for loads that cannot be foreseen.

        ``metered_cost_per_s``: what the current plan's live instances cost now. Over the first ``held`` windows
        (``held``: while the load holds) staying is priced at that where it is more than ``OVERSHOOT`` times the
        table's price: at a burst's onset the autoscaler starts more instances than the burst's steady state needs
        and keeps them while the load holds, which a table measured in steady state cannot see, while a switch
        warms the new plan for the work at hand (in the GPU scenarios fine kept through a burst cost 73 % more than
        the table's steady state: BENCHMARKS.md §13i). Not where, inside a burst, the schedule would leave the plan
        only to come back to it by the burst's end (see the code)."""
        common = set.intersection(*({c.plan for c in w} for w in windows)) if windows else set()
        if current not in common:
            raise ValueError(f"the current plan {current!r} is not scored in every forecast window")
        if metered_cost_per_s is not None and not (metered_cost_per_s >= 0 and math.isfinite(metered_cost_per_s)):
            raise ValueError(f"metered_cost_per_s must be a finite number >= 0, got {metered_cost_per_s!r}")
        windows = [[c for c in w if c.plan in common] for w in windows]
        target = controller.config.slo_target
        plans = switching_schedule(windows, target, window_s, overlap_s, start=current)
        if metered_cost_per_s is not None:
            staying = [
                [_metered(c, metered_cost_per_s) if k < held and c.plan == current else c for c in w]
                for k, w in enumerate(windows)
            ]
            shed = switching_schedule(staying, target, window_s, overlap_s, start=current)
            # Inside a burst (the load falls within the period: held < windows), a schedule that leaves the plan
            # only to come back to it by the burst's end is a detour that sheds the autoscaler's overshoot, which
            # it sheds itself once the load falls, for two switches under load that the table does not price the
            # SLO risk of (without this, detect's bursts went fine -> middle -> fine a window apart): the table
            # decides then.
            detour = held < len(windows) and shed[0] != current and current in shed[1 : held + 1]
            # Nor for a plan the table calls worse on SLO hit than staying in any window the load holds: the meter
            # prices staying, not what a switch does to the SLO (in the GPU scenarios' detect, a quiet-phase move to
            # a plan 0.003 below fine lost more requests at the next onset than the table said).
            moved = shed[0]
            downgrade = moved != current and any(_hit(w, moved) < _hit(w, current) for w in windows[: max(held, 1)])
            if not (detour or downgrade):
                plans = shed
        f = self.forecast
        period = f"{f.period_s:.0f}-s period" if f is not None else "no period"
        changes = [p for k, p in enumerate(plans) if k == 0 or p != plans[k - 1]]
        ahead = " -> ".join(changes[:4]) + (" -> ..." if len(changes) > 4 else "")
        return controller.follow(now, current, plans[0], f"forecast ({period}): {ahead} over the next period")

    def decide_window(
        self,
        controller: GranularityController,
        now: float,
        current: str,
        load: ObservedLoad,
        ahead: Sequence[ObservedLoad],
        windows: Sequence[Sequence[Candidate]],
        window_s: float,
        overlap_s: float,
        cost_rate: Callable[[], float],
        moved_at: float,
    ) -> GranularityDecision:
        """``decide`` as the adaptive loops call it each window: ``ahead`` are the forecast ``windows``' loads
        (``windows``), ``load`` the one seen; with ``metered``, staying is priced at ``cost_rate()`` (what the
        current plan's instances cost now, USD per second) once the plan has served a window since traffic moved to
        it at ``moved_at`` (before, the meter reads its warm-up)."""
        reads = self.metered and now - moved_at >= window_s
        return self.decide(
            controller,
            now,
            current,
            windows,
            window_s,
            overlap_s,
            metered_cost_per_s=cost_rate() if reads else None,
            held=self.held(load, ahead),
        )

    def record(self) -> dict[str, float] | None:
        """The forecast in a window's record: period, strength and the profile's peak over its mean."""
        f = self.forecast
        if f is None:
            return None
        return {"period_s": round(f.period_s, 2), "strength": round(f.strength, 3), "peak": round(f.peak, 2)}


def _hit(window: Sequence[Candidate], plan: str) -> float:
    return next(c.slo_hit for c in window if c.plan == plan)


def _metered(staying: Candidate, cost_per_s: float) -> Candidate:
    """The current plan priced at what its instances cost now, where that is an onset's overshoot (``OVERSHOOT``)."""
    return replace(staying, cost_per_s=cost_per_s) if cost_per_s > OVERSHOOT * staying.cost_per_s else staying


def _planned(load: ObservedLoad, forecast: PeriodicForecast, rising: bool) -> ObservedLoad:
    """A forecast load as it is planned for: where a burst begins in it (``rising``), with the profile's burst index
    as its expected burstiness at weight 1 (``credible_burst``), for the table's bursty rows to price the rise."""
    if not rising:
        return load
    scale = load.burst_scale_s or BURST_SCALE_S
    return replace(load, burst_scale_s=scale, expected_burst=forecast.burst_index(scale), expected_weight=1.0)
