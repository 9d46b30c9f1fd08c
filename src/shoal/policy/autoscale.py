"""A Knative-KPA-style autoscaler as a pure policy: an observation with its time goes in, a decision comes out.

The runtime calls `KpaAutoscaler.decide` on every tick (about 0.25 s) and the simulator does the same on its own
clock, so the policy reads no clock, does no I/O and costs amortised O(1) per call. Follows Knative's KPA
(https://knative.dev/docs/serving/autoscaling/kpa-specific/): a stable and a panic window average of concurrency,
panic mode that only scales up, scale-up / scale-down rate limits relative to the ready count.

The window averages are sample averages over the samples inside the window, kept as exact integer running sums (no
float drift over long runs). Callers should therefore call `decide` at a regular period, as Knative scrapes its
metric at a regular period; the runtime's tick and the simulator's tick both do.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

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


class _Window:
    """Samples younger than `length_s`, with an exact integer running sum: amortised O(1) per sample."""

    def __init__(self, length_s: float) -> None:
        self.length_s = length_s
        self._samples: deque[tuple[float, int]] = deque()
        self._total = 0

    def add(self, now: float, value: int) -> None:
        self._samples.append((now, value))
        self._total += value
        cutoff = now - self.length_s + _EPS
        while len(self._samples) > 1 and self._samples[0][0] <= cutoff:  # the newest sample always counts
            self._total -= self._samples.popleft()[1]

    def average(self) -> float:
        return self._total / len(self._samples) if self._samples else 0.0


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
        self._max_panic_desired = 0

    def decide(self, obs: ScaleObservation) -> ScaleDecision:
        """Record the sample, then decide. Times must not go backwards: the windows assume a monotonic clock."""
        cfg = self.config
        now = obs.now
        if self._last_now is not None and now < self._last_now:
            raise ValueError(f"observation time went backwards: {now!r} < {self._last_now!r}")
        self._last_now = now
        concurrency = obs.in_flight + obs.queued
        self._stable.add(now, concurrency)
        self._panic.add(now, concurrency)
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

        if want_panic / ready >= cfg.panic_threshold:
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
