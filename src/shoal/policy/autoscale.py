"""A Knative-KPA-style autoscaler as a pure policy: an observation with its time goes in, a decision comes out.

The runtime calls `KpaAutoscaler.decide` on every tick (about 0.25 s) and the simulator does the same on its own
clock, so the policy reads no clock, does no I/O and costs amortised O(1) per call. Follows Knative's KPA
(https://knative.dev/docs/serving/autoscaling/kpa-specific/): a stable and a panic window average of concurrency,
panic mode that only scales up, scale-up / scale-down rate limits relative to the ready count.

The window averages are sample averages over the samples inside the window, kept as exact integer running sums (no
float drift over long runs). Callers should therefore call `decide` at a regular period, as Knative scrapes its
metric at a regular period; the runtime's tick and the simulator's tick both do.

A caller on a fixed tick grid (the simulator) can also hand over many ticks at once. The windows store runs of equal
samples, so `decide_ticks` adds n ticks of one observation in O(1) and returns exactly what n calls of `decide`
would have returned last; `next_change` says at which later tick the decision could first differ if the observation
stays the same (the window averages are piecewise linear in the tick between the ticks where old runs expire, so the
first tick where ceil(avg / target) moves is found per piece by bisection with the very float expressions `decide`
evaluates). Together they let a caller skip every tick on which nothing would happen, with identical decisions.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["AutoscalerConfig", "KpaAutoscaler", "ScaleDecision", "ScaleObservation"]

# Slack for float comparisons, so 2.0000000001 instances does not become 3 and a window of 60 s measured as
# 59.99999999 s still counts as elapsed.
_EPS = 1e-9


def _ceil(x: float) -> int:
    """ceil with a relative epsilon; any positive demand needs at least one instance, however small it is."""
    n = math.ceil(x - _EPS * max(1.0, abs(x)))
    return max(n, 1) if x > 0 else max(n, 0)


@dataclass(frozen=True)
class AutoscalerConfig:
    """How a function scales. Defaults are Knative's, so behaviour familiar from Knative carries over."""

    target_concurrency: float
    min_instances: int = 0
    max_instances: int = 8
    stable_window_s: float = 60.0
    panic_window_s: float = 6.0
    panic_threshold: float = 2.0
    max_scale_up_rate: float = 1000.0
    max_scale_down_rate: float = 2.0

    def __post_init__(self) -> None:
        """Reject configs the algorithm cannot honour, naming the field, at deploy time rather than mid-traffic."""
        if not (math.isfinite(self.target_concurrency) and self.target_concurrency > 0):
            raise ValueError(f"target_concurrency must be a finite number > 0, got {self.target_concurrency!r}")
        if self.min_instances < 0:
            raise ValueError(f"min_instances must be >= 0, got {self.min_instances!r}")
        if self.max_instances < max(1, self.min_instances):
            raise ValueError(
                f"max_instances must be >= 1 and >= min_instances ({self.min_instances}), got {self.max_instances!r}"
            )
        if not (math.isfinite(self.stable_window_s) and self.stable_window_s > 0):
            raise ValueError(f"stable_window_s must be a finite number > 0, got {self.stable_window_s!r}")
        if not (0 < self.panic_window_s <= self.stable_window_s):
            raise ValueError(
                f"panic_window_s must be > 0 and <= stable_window_s ({self.stable_window_s}), "
                f"got {self.panic_window_s!r}"
            )
        # Rates and the threshold of exactly 1 would freeze scaling (or panic in steady state); Knative requires > 1.
        for name in ("panic_threshold", "max_scale_up_rate", "max_scale_down_rate"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 1.0):
                raise ValueError(f"{name} must be a finite number > 1.0, got {value!r}")


@dataclass(frozen=True)
class ScaleObservation:
    """What the scaler sees on one tick. Concurrency is in_flight + queued: queued requests are demand too."""

    now: float
    in_flight: int
    queued: int
    ready: int
    starting: int

    def __post_init__(self) -> None:
        """Negative counts mean a bookkeeping bug upstream; fail loudly instead of scaling on garbage."""
        for name in ("in_flight", "queued", "ready", "starting"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class ScaleDecision:
    """How many instances (ready + starting) the function should have, and why, for logs and traces."""

    desired: int
    panic: bool
    reason: str


def _first_tick(pred: Callable[[int], bool], guess: int, lo: int) -> int:
    """The first integer m >= lo with pred(m), for a predicate false then true in m; `guess` is a float estimate.
    The answer is decided by `pred` itself, so it is exactly the tick the per-tick path would have acted on."""
    m = max(guess, lo)
    while m > lo and pred(m - 1):
        m -= 1
    while not pred(m):
        m += 1
    return m


def _guess(t: float, tick_s: float) -> int:
    x = t / tick_s
    return math.ceil(x) if math.isfinite(x) and abs(x) < 2**62 else 0


class _Window:
    """Samples younger than `length_s`, with an exact integer running sum, stored as runs of equal values.

    A run is ``[k0, n, tick, value]``: n samples of `value` at times ``(k0 + i) * tick`` for i < n. A single sample at
    an arbitrary time t is the run ``[1, 1, t, value]`` (1 * t == t exactly); samples on a tick grid merge into one
    run while the value stays the same. Expiry drops whole runs or a counted prefix of one, so adding n samples and
    expiring costs O(1) amortised, whatever n is."""

    __slots__ = ("_band", "_band_key", "_breaks", "_count", "_lag", "_runs", "_total", "length_s")

    def __init__(self, length_s: float) -> None:
        self.length_s = length_s
        self._runs: deque[list[Any]] = deque()
        self._count = 0
        self._total = 0
        self._band_key: tuple[int, int, float] | None = None  # (count, ref, target) of the cached band of sums
        self._band = (0, 0)
        self._breaks = 0  # runs that do not continue the grid of the run before them (the oldest run aside)
        self._lag: tuple[float, int] | None = None  # (tick_s, lag) last found by first_change

    def add(self, now: float, value: int) -> None:
        self.add_run(1, 1, now, value, now)

    def add_run(self, k0: int, n: int, tick: float, value: int, now: float) -> None:
        """Add n samples of `value` at times (k0 + i) * tick, then expire as of `now` (the last sample's time)."""
        runs = self._runs
        last = runs[-1] if runs else None
        adjacent = last is not None and last[2] == tick and last[0] + last[1] == k0
        if adjacent and last is not None and last[3] == value:
            last[1] += n
        elif last is None or adjacent:
            runs.append([k0, n, tick, value, False])
        else:  # a gap or another tick before this run: it breaks the grid (see first_change)
            runs.append([k0, n, tick, value, True])
            self._breaks += 1
        self._count += n
        self._total += n * value
        cutoff = now - self.length_s + _EPS
        while self._count > 1:  # the newest sample always counts
            run = runs[0]
            k, m, t, v, _ = run
            if k * t > cutoff:
                break
            if (k + m - 1) * t <= cutoff:
                drop = m
            else:  # a prefix of this run is older than the cutoff: count it exactly, as the per-sample loop would
                drop = min(m, max(0, int(cutoff / t) - k + 1))
                while drop > 0 and (k + drop - 1) * t > cutoff:
                    drop -= 1
                while drop < m and (k + drop) * t <= cutoff:
                    drop += 1
            drop = min(drop, self._count - 1)
            if drop == m:
                runs.popleft()
                if runs and runs[0][4]:  # a break in front of the oldest run no longer matters
                    runs[0][4] = False
                    self._breaks -= 1
            else:
                run[0] = k + drop
                run[1] = m - drop
            self._count -= drop
            self._total -= drop * v

    def average(self) -> float:
        return self._total / self._count if self._count else 0.0

    def first_change(self, k: int, tick_s: float, value: int, target: float) -> int | None:
        """The first tick m > k at which ``_ceil(average / target)`` could differ from its value now, if a sample of
        `value` is added at every tick k+1, k+2, ... (times m * tick_s); None if never. The window must hold the
        sample of tick k. Between the ticks where an old run starts and stops expiring, the count is constant and
        the sum moves by a constant step each tick (or the count grows by one and the sum by `value`), so the
        average is monotone there: the first change in such a piece is found by bisection, evaluating the same float
        expression `decide` does. Where that structure does not hold (a run off the grid, runs expiring in the same
        tick) the answer is the first uncertain tick, which is safe: the caller just looks again then."""
        total, count = self._total, self._count
        ref = _ceil(total / count / target)
        length = self.length_s

        def expiry(t0: float) -> int:  # the first tick whose cutoff reaches a sample at time t0, as add_run decides
            return _first_tick(lambda j: t0 <= j * tick_s - length + _EPS, _guess(t0 + length, tick_s), k + 1)

        def expires_at(j: int, lag: int) -> bool:  # does the sample of tick j expire exactly at tick j + lag?
            t0 = j * tick_s
            return t0 <= (j + lag) * tick_s - length + _EPS and not t0 <= (j + lag - 1) * tick_s - length + _EPS

        # On the grid, the sample of tick j expires at tick j + lag; checked at the oldest grid sample and tick k.
        runs = self._runs
        lag: int | None = None
        for run in runs:
            if run[2] == tick_s:
                j0: int = run[0]
                cached = self._lag
                if (
                    cached is not None
                    and cached[0] == tick_s
                    and expires_at(j0, cached[1])
                    and expires_at(k, cached[1])
                ):
                    lag = cached[1]
                else:
                    lag = expiry(j0 * tick_s) - j0
                    if expiry(k * tick_s) - k != lag:
                        lag = None
                    else:
                        self._lag = (tick_s, lag)
                break
        first = runs[0]
        if lag is not None and first[2] == tick_s and first[0] + lag == k + 1 and first[0] + count - 1 == k:
            # The common case, a full window of contiguous grid samples: from tick k+1 on, each tick drops the
            # oldest sample and adds one of `value`, so the count holds and only the sum moves.
            h = self._lockstep(k, tick_s, value, total, count, ref, target)
            if h != -1:
                return h
        band: tuple[int, int, int] | None = None  # (count, lo, hi): the sums that keep ref at that count
        m = k  # (total, count) are the window's as of tick m, and every tick in (k, m] is known to give `ref`
        for k0, n, t, v, _ in self._runs:
            if t == tick_s and lag is not None:
                e0, e1 = k0 + lag, k0 + n - 1 + lag
            else:
                e0 = e1 = expiry(k0 * t)
                if n > 1:
                    e1 = expiry((k0 + n - 1) * t)
                    if t != tick_s or e1 - e0 != n - 1:
                        return m + 1
            if e0 <= m:  # expiries of two runs overlap: not one piece; look again there
                return m + 1
            if e0 - 1 > m:  # nothing expires: the count grows by one a tick
                h = _bisect(total, count, value, 1, m, e0 - 1, ref, target)
                if h is not None:
                    return h
                total += value * (e0 - 1 - m)
                count += e0 - 1 - m
                m = e0 - 1
            # One old sample out and one new in per tick: the count holds, the sum moves by a constant step, and
            # the decision stays while the sum stays in the band of sums that give `ref` at this count.
            if band is None or band[0] != count:
                band = (count, *_band(count, ref, target))
            _, lo, hi = band
            step: int = value - v
            end = total + step * (e1 - m)
            if step > 0 and end > hi:
                return m + (hi - total) // step + 1
            if step < 0 and end < lo:
                return m + (total - lo) // -step + 1
            total = end
            m = e1
        return None  # only samples of `value` are left, and their average is `value` from here on

    def _lockstep(
        self, k: int, tick_s: float, value: int, total: int, count: int, ref: int, target: float
    ) -> int | None:
        """first_change for a full window of contiguous runs on the grid; -1 if the runs are not that after all."""
        runs = self._runs
        last = runs[-1]
        if self._breaks or runs[0][2] != tick_s or last[0] + last[1] != k + 1:
            return -1
        key = (count, ref, target)
        if self._band_key != key:
            self._band_key = key
            self._band = _band(count, ref, target)
        lo, hi = self._band
        if value == 0:
            # The sum only falls, to the sum of the samples not yet expired: find from the newest end where what
            # is left first drops below lo.
            left: int = 0  # sum of the runs newer than the one looked at
            after: int = 0  # samples in those runs
            for _, n, _, v, _ in reversed(runs):
                if v and left + n * v >= lo:
                    keep: int = -((left - lo) // v) - 1  # largest number of this run's samples left with a sum < lo
                    return k + count - after - keep
                left += n * v
                after += int(n)
            return None
        done = 0  # samples expired so far
        for _, n, _, v, _ in runs:
            step: int = value - v
            end = total + step * n
            if step > 0 and end > hi:
                return k + done + (hi - total) // step + 1
            if step < 0 and end < lo:
                return k + done + (total - lo) // -step + 1
            total = end
            done += n
        return None


def _band(count: int, ref: int, target: float) -> tuple[int, int]:
    """The integer sums S with ``_ceil(S / count / target) == ref``, as (lo, hi); the expression is monotone in S,
    so the band is an interval, found from a float guess and settled by evaluating the expression itself."""

    def want(total: int) -> int:
        return _ceil(total / count / target)

    hi = max(0, math.floor(ref * target * count))
    while want(hi + 1) <= ref:
        hi += 1
    while hi > 0 and want(hi) > ref:
        hi -= 1
    lo = max(0, math.ceil((ref - 1) * target * count))
    while lo > 0 and want(lo - 1) >= ref:
        lo -= 1
    while want(lo) < ref:
        lo += 1
    return lo, hi


def _bisect(
    total: int, count: int, d_total: int, d_count: int, m: int, end: int, ref: int, target: float
) -> int | None:
    """First tick in (m, end] where ``_ceil((total + d_total*j) / (count + d_count*j) / target)`` (j = tick - m)
    differs from `ref`, given that it equals `ref` at j = 0 and is monotone in j; None if it never does."""
    span = end - m
    if span <= 0 or _ceil((total + d_total * span) / (count + d_count * span) / target) == ref:
        return None
    lo, hi = 0, span  # equal at lo, different at hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _ceil((total + d_total * mid) / (count + d_count * mid) / target) == ref:
            lo = mid
        else:
            hi = mid
    return m + hi


class KpaAutoscaler:
    """Knative-KPA-style autoscaler: concurrency (in_flight + queued) averaged over a stable and a panic window."""

    def __init__(self, config: AutoscalerConfig) -> None:
        self.config = config
        self._stable = _Window(config.stable_window_s)
        self._panic = _Window(config.panic_window_s)
        self._last_now: float | None = None
        # Last time concurrency was > 0; starts at the first observation, so a scaler that has just been created
        # (e.g. after a plan switch) waits a full stable window before it lets instances go to zero.
        self._last_busy: float | None = None
        self._panic_since: float | None = None  # last time the panic condition held; None when not panicking
        self._panic_cond = False  # whether the panic condition held at the last observation
        self._max_panic_desired = 0
        self._decisions = 0  # decisions made so far: tells whether an answer of next_change is still current
        self._change: tuple[tuple[int, int, int, int, int, float], int | None] | None = None

    def decide(self, obs: ScaleObservation) -> ScaleDecision:
        """Record the sample, then decide. Times must not go backwards: the windows assume a monotonic clock."""
        now = obs.now
        if self._last_now is not None and now < self._last_now:
            raise ValueError(f"observation time went backwards: {now!r} < {self._last_now!r}")
        concurrency = obs.in_flight + obs.queued
        self._stable.add(now, concurrency)
        self._panic.add(now, concurrency)
        return self._decide(obs, now, concurrency)

    def decide_ticks(self, obs: ScaleObservation, first_tick: int, last_tick: int, tick_s: float) -> ScaleDecision:
        """Exactly what `decide` returns on the last of the ticks first_tick..last_tick (times k * tick_s) when the
        observation's counts hold on every one of them; ``obs.now`` must be ``last_tick * tick_s``. Costs O(1) per
        tick at which the decision changes (see `next_change`), not per tick."""
        if not (tick_s > 0 and first_tick <= last_tick and obs.now == last_tick * tick_s):
            raise ValueError(
                f"need tick_s > 0, first_tick <= last_tick and obs.now == last_tick * tick_s; got tick_s={tick_s!r}, "
                f"ticks {first_tick}..{last_tick}, now={obs.now!r}"
            )
        now = first_tick * tick_s
        if self._last_now is not None and now < self._last_now:
            raise ValueError(f"observation time went backwards: {now!r} < {self._last_now!r}")
        conc = obs.in_flight + obs.queued
        current = obs.ready + obs.starting
        k = first_tick - 1  # the last tick decided
        key = (self._decisions, k, conc, obs.ready, obs.starting, tick_s)
        cached = self._change
        # Right after next_change on the tick before, with the same counts, its answer still holds: no need to ask.
        h = cached[1] if cached is not None and cached[0] == key else first_tick
        while True:
            j = last_tick if h is None else min(h, last_tick)
            if j > k + 1:  # ticks k+1..j-1 decide as tick k did: record their samples and state in one step
                t_end = (j - 1) * tick_s
                self._stable.add_run(k + 1, j - 1 - k, tick_s, conc, t_end)
                self._panic.add_run(k + 1, j - 1 - k, tick_s, conc, t_end)
                self._last_now = t_end
                if conc > 0:
                    self._last_busy = t_end
                if self._panic_cond:
                    self._panic_since = t_end
            k = j
            d = self._at(obs, k, tick_s, conc)
            if k == last_tick:
                return d
            h = self._next_change(conc, current, k, tick_s)

    def next_change(self, obs: ScaleObservation, tick: int, tick_s: float) -> int | None:
        """After `decide_ticks` (or `decide`) saw `obs` at tick `tick`: the first later tick at which the decision
        could differ if the observation's counts stay as they are, or None if it never would. Every tick before the
        answer gives the same decision (desired and panic), so a caller may skip them and catch up with
        `decide_ticks`; the answer is the exact first tick on the simulator's grid, and never later than it."""
        if self._last_now is None or obs.now != self._last_now or obs.now != tick * tick_s:
            raise ValueError("next_change must follow a decision at obs.now == tick * tick_s")
        conc = obs.in_flight + obs.queued
        h = self._next_change(conc, obs.ready + obs.starting, tick, tick_s)
        self._change = ((self._decisions, tick, conc, obs.ready, obs.starting, tick_s), h)
        return h

    # -- internals --------------------------------------------------------------------------------------------------
    def _at(self, obs: ScaleObservation, k: int, tick_s: float, conc: int) -> ScaleDecision:
        now = k * tick_s
        self._stable.add_run(k, 1, tick_s, conc, now)
        self._panic.add_run(k, 1, tick_s, conc, now)
        return self._decide(obs, now, conc)

    def _next_change(self, conc: int, current: int, k: int, tick_s: float) -> int | None:
        cfg = self.config
        target = cfg.target_concurrency
        best: int | None = None
        for h in (
            self._stable.first_change(k, tick_s, conc, target),
            self._panic.first_change(k, tick_s, conc, target),
        ):
            if h is not None and (best is None or h < best):
                best = h
        hold = cfg.stable_window_s - _EPS
        since = self._panic_since
        if since is not None and not self._panic_cond:  # panic ends a stable window after its condition last held

            def over(j: int, since: float = since) -> bool:
                return j * tick_s - since >= hold

            h = _first_tick(over, _guess(since + hold, tick_s), k + 1)
            best = h if best is None else min(best, h)
        busy = self._last_busy
        if conc == 0 and current > 0 and busy is not None and k * tick_s - busy < hold:
            # The hold at 1 ends a stable window after the last load.

            def idle(j: int, busy: float = busy) -> bool:
                return j * tick_s - busy >= hold

            h = _first_tick(idle, _guess(busy + hold, tick_s), k + 1)
            best = h if best is None else min(best, h)
        return best

    def _decide(self, obs: ScaleObservation, now: float, concurrency: int) -> ScaleDecision:
        cfg = self.config
        self._last_now = now
        self._decisions += 1
        if concurrency > 0 or self._last_busy is None:
            self._last_busy = now

        stable_avg, panic_avg = self._stable.average(), self._panic.average()
        want_stable = _ceil(stable_avg / cfg.target_concurrency)
        want_panic = _ceil(panic_avg / cfg.target_concurrency)
        # Knative treats zero ready instances as one for the rate limits and the panic ratio, so a burst that
        # arrives while scaled to zero can panic too.
        ready = max(1, obs.ready)
        up_limit = math.ceil(cfg.max_scale_up_rate * ready - _EPS)
        down_limit = math.floor(ready / cfg.max_scale_down_rate + _EPS)
        desired_stable = min(max(want_stable, down_limit), up_limit)
        desired_panic = min(max(want_panic, down_limit), up_limit)

        self._panic_cond = want_panic / ready >= cfg.panic_threshold
        if self._panic_cond:
            self._panic_since = now
        elif self._panic_since is not None and now - self._panic_since >= cfg.stable_window_s - _EPS:
            # The burst has had a whole stable window to show up in the stable average: trust it again.
            self._panic_since = None
            self._max_panic_desired = 0

        current = obs.ready + obs.starting
        if self._panic_since is not None:
            # Panic only scales up: never below what exists, nor below the most panic has asked for (Knative).
            desired = max(desired_stable, desired_panic)
            self._max_panic_desired = max(self._max_panic_desired, desired)
            desired = max(desired, self._max_panic_desired, current)
            reason = f"panic: avg concurrency {panic_avg:.3g} over {cfg.panic_window_s:g}s / target "
            reason += f"{cfg.target_concurrency:g} -> {want_panic}"
            wanted = want_panic
        else:
            desired = desired_stable
            reason = f"stable: avg concurrency {stable_avg:.3g} / target {cfg.target_concurrency:g} -> {want_stable}"
            wanted = want_stable
        if not down_limit <= wanted <= up_limit:
            reason += f"; rate-limited to [{down_limit}, {up_limit}] from {obs.ready} ready"

        if current == 0 and concurrency > 0 and desired < 1:
            desired = 1  # the activator case: a request is waiting and nothing runs; do not wait for a window
            reason += "; scale from zero"
        if desired < 1 and current > 0 and now - self._last_busy < cfg.stable_window_s - _EPS:
            desired = 1  # scale to zero only after a whole stable window without traffic
            reason += "; held at 1 until a stable window is idle"

        clamped = min(max(desired, cfg.min_instances), cfg.max_instances)
        if clamped != desired:
            reason += f"; clamped to [{cfg.min_instances}, {cfg.max_instances}]"
        return ScaleDecision(desired=clamped, panic=self._panic_since is not None, reason=f"{reason} => {clamped}")
