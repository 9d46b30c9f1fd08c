"""The KPA autoscaler, driven with explicit times: each test feeds observations and asserts the exact decisions."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.policy import AutoscalerConfig, KpaAutoscaler, ScaleDecision, ScaleObservation


def feed(
    scaler: KpaAutoscaler, start: int, stop: int, *, in_flight: int = 0, queued: int = 0, ready: int, starting: int = 0
) -> list[ScaleDecision]:
    """One observation a second for t in [start, stop], all with the same counts."""
    return [scaler.decide(ScaleObservation(t, in_flight, queued, ready, starting)) for t in range(start, stop + 1)]


def at(scaler: KpaAutoscaler, t: float, *, in_flight: int = 0, queued: int = 0, ready: int, starting: int = 0) -> int:
    return scaler.decide(ScaleObservation(t, in_flight, queued, ready, starting)).desired


def test_steady_load_gives_ceil_of_average_over_target() -> None:
    """Five requests in flight all the time with a target of 2 per instance need ceil(5 / 2) = 3 instances."""
    scaler = KpaAutoscaler(AutoscalerConfig(target_concurrency=2))
    decisions = feed(scaler, 0, 60, in_flight=4, queued=1, ready=3)
    assert decisions[-1] == ScaleDecision(3, False, "stable: avg concurrency 5 / target 2 -> 3 => 3")
    assert {d.desired for d in decisions} == {3}


def test_stable_average_is_over_the_window() -> None:
    """Concurrency alternating 2 and 3 averages 2.5, so 3 instances at a target of 1; samples older than the
    stable window no longer count, so after a minute at 1 the scaler asks for 1 (no rate limit from 3 ready: 3/2)."""
    scaler = KpaAutoscaler(AutoscalerConfig(target_concurrency=1))
    for t in range(60):
        at(scaler, t, in_flight=2 + t % 2, ready=3)
    assert at(scaler, 60, in_flight=2, ready=3) == 3
    feed(scaler, 61, 119, in_flight=1, ready=3)
    assert at(scaler, 120, in_flight=1, ready=3) == 1


def test_float_noise_does_not_add_an_instance() -> None:
    """21 / 0.7 is 30.000000000000004 in floats; it must mean 30 instances, not 31."""
    scaler = KpaAutoscaler(AutoscalerConfig(target_concurrency=0.7, max_instances=64))
    assert feed(scaler, 0, 60, in_flight=21, ready=30)[-1].desired == 30


def test_burst_panics_and_panic_never_scales_down() -> None:
    """A minute of steady load 2 on 2 instances, then a burst of 20 at t=60. The panic window (t in (54, 60]) holds
    five samples of 2 and one of 20, avg 5: 5 / 2 ready >= 2, so panic and 5 instances, where the stable window
    (avg 138 / 60 = 2.3) would only ask for 3. After the burst the load drops to 0, yet while panicking the scaler
    never asks for fewer than the 5 it has."""
    scaler = KpaAutoscaler(AutoscalerConfig(target_concurrency=1))
    assert {d.desired for d in feed(scaler, 0, 59, in_flight=2, ready=2)} == {2}
    burst = scaler.decide(ScaleObservation(60, in_flight=2, queued=18, ready=2, starting=0))
    assert burst == ScaleDecision(5, True, "panic: avg concurrency 5 over 6s / target 1 -> 5 => 5")
    after = feed(scaler, 61, 119, ready=5)
    assert {(d.desired, d.panic) for d in after} == {(5, True)}


def test_panic_ends_a_stable_window_after_the_condition_last_held() -> None:
    """Continuing the burst: the panic condition last held at t=60, so panic ends at t=120. By then the stable
    window is empty of traffic and the scaler scales down, but by at most half the ready instances per decision
    (max_scale_down_rate 2): 5 -> 2 -> 1 -> 0."""
    scaler = KpaAutoscaler(AutoscalerConfig(target_concurrency=1))
    feed(scaler, 0, 59, in_flight=2, ready=2)
    at(scaler, 60, in_flight=20, ready=2)
    feed(scaler, 61, 119, ready=5)
    calm = scaler.decide(ScaleObservation(120, 0, 0, ready=5, starting=0))
    assert (calm.desired, calm.panic) == (2, False)
    assert "rate-limited to [2, 5000] from 5 ready" in calm.reason
    assert at(scaler, 121, ready=2) == 1
    assert at(scaler, 122, ready=1) == 0


def test_panic_can_start_from_zero() -> None:
    """As in Knative, zero ready instances count as one for the panic ratio: a burst of 12 queued requests while
    scaled to zero puts 12 / 6 samples = 2 >= 2 in the panic window, so the scaler panics straight away."""
    scaler = KpaAutoscaler(AutoscalerConfig(target_concurrency=1))
    feed(scaler, 0, 100, ready=0)
    decision = scaler.decide(ScaleObservation(101, in_flight=0, queued=12, ready=0, starting=0))
    assert (decision.desired, decision.panic) == (2, True)


def test_scale_from_zero_is_immediate() -> None:
    """After 100 s scaled to zero, a single queued request asks for one instance on the very next decision."""
    scaler = KpaAutoscaler(AutoscalerConfig(target_concurrency=10))
    assert {d.desired for d in feed(scaler, 0, 100, ready=0)} == {0}
    assert at(scaler, 101, queued=1, ready=0) == 1


def test_scale_to_zero_only_after_a_full_idle_stable_window() -> None:
    """Traffic until t=10, then none. At t=69 the busy sample of t=10 is still in the 60 s window, so 1 instance
    stays; at t=70 the whole window is idle and the scaler lets it go."""
    scaler = KpaAutoscaler(AutoscalerConfig(target_concurrency=1))
    feed(scaler, 0, 10, in_flight=1, ready=1)
    assert {d.desired for d in feed(scaler, 11, 69, ready=1)} == {1}
    assert at(scaler, 70, ready=1) == 0


def test_new_scaler_waits_a_stable_window_before_zero() -> None:
    """A scaler created over a running instance (say after a plan switch) has seen no traffic yet but also no idle
    minute: it holds one instance until a full stable window since its first observation."""
    scaler = KpaAutoscaler(AutoscalerConfig(target_concurrency=1))
    held = scaler.decide(ScaleObservation(100, 0, 0, ready=1, starting=0))
    assert held.desired == 1
    assert held.reason.endswith("held at 1 until a stable window is idle => 1")
    assert at(scaler, 159, ready=1) == 1
    assert at(scaler, 160, ready=1) == 0


def test_min_instances_keeps_instances_without_traffic() -> None:
    """With min_instances 2 an idle function keeps 2 instances, even after a long idle window."""
    scaler = KpaAutoscaler(AutoscalerConfig(target_concurrency=1, min_instances=2))
    decisions = feed(scaler, 0, 200, ready=2)
    assert {d.desired for d in decisions} == {2}
    assert decisions[-1].reason.endswith("clamped to [2, 8] => 2")


def test_max_instances_caps_the_decision() -> None:
    """Steady load of 20 at a target of 1 wants 20, but max_instances is 8."""
    scaler = KpaAutoscaler(AutoscalerConfig(target_concurrency=1, max_instances=8))
    assert feed(scaler, 0, 60, in_flight=20, ready=8)[-1].desired == 8


def test_scale_up_rate_limits_growth_per_decision() -> None:
    """With max_scale_up_rate 2, 2 ready instances may become at most ceil(2 * 2) = 4, however high the load."""
    config = AutoscalerConfig(target_concurrency=1, max_scale_up_rate=2, panic_threshold=100)
    scaler = KpaAutoscaler(config)
    assert feed(scaler, 0, 60, in_flight=10, ready=2)[-1].desired == 4
    assert at(scaler, 61, in_flight=10, ready=4) == 8


@pytest.mark.parametrize(("rate", "expected"), [(2.0, 4), (4.0, 2), (1.5, 5)])
def test_scale_down_rate_limits_shrinking_per_decision(rate: float, expected: int) -> None:
    """8 ready instances with no traffic for a minute may shrink to no fewer than floor(8 / rate)."""
    scaler = KpaAutoscaler(AutoscalerConfig(target_concurrency=1, max_scale_down_rate=rate))
    at(scaler, 0, in_flight=8, ready=8)
    feed(scaler, 1, 59, ready=8)
    assert at(scaler, 60, ready=8) == expected


def test_time_must_not_go_backwards() -> None:
    scaler = KpaAutoscaler(AutoscalerConfig(target_concurrency=1))
    at(scaler, 10, ready=0)
    with pytest.raises(ValueError, match="backwards"):
        at(scaler, 9, ready=0)


def test_observation_rejects_negative_counts() -> None:
    with pytest.raises(ValueError, match="queued"):
        ScaleObservation(0, in_flight=0, queued=-1, ready=0, starting=0)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"target_concurrency": 0}, "target_concurrency"),
        ({"target_concurrency": float("nan")}, "target_concurrency"),
        ({"min_instances": -1}, "min_instances"),
        ({"max_instances": 0}, "max_instances"),
        ({"min_instances": 3, "max_instances": 2}, "max_instances"),
        ({"stable_window_s": 0}, "stable_window_s"),
        ({"panic_window_s": 0}, "panic_window_s"),
        ({"panic_window_s": 61}, "panic_window_s"),
        ({"panic_threshold": 1.0}, "panic_threshold"),
        ({"max_scale_up_rate": 1.0}, "max_scale_up_rate"),
        ({"max_scale_down_rate": 0.5}, "max_scale_down_rate"),
    ],
)
def test_config_validation_names_the_field(kwargs: dict[str, float], field: str) -> None:
    args: dict[str, float] = {"target_concurrency": 1, **kwargs}
    with pytest.raises(ValueError, match=field):
        AutoscalerConfig(**args)  # type: ignore[arg-type]


configs = st.builds(
    lambda target, lo, extra: AutoscalerConfig(target_concurrency=target, min_instances=lo, max_instances=lo + extra),
    st.floats(0.1, 10),
    st.integers(0, 3),
    st.integers(1, 10),
)
observations = st.lists(
    st.tuples(
        st.sampled_from([0.0, 0.25, 1.0, 5.0, 90.0]),  # time step
        st.integers(0, 40),  # in_flight
        st.integers(0, 40),  # queued
        st.integers(0, 12),  # ready
        st.integers(0, 4),  # starting
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=200)
@given(config=configs, steps=observations)
def test_desired_is_bounded_deterministic_and_nonzero_under_load(
    config: AutoscalerConfig, steps: list[tuple[float, int, int, int, int]]
) -> None:
    """Whatever the load: desired stays in [min, max], is never 0 while requests are waiting or running, and two
    scalers fed the same observations decide the same."""
    first, second = KpaAutoscaler(config), KpaAutoscaler(config)
    now = 0.0
    for dt, in_flight, queued, ready, starting in steps:
        now += dt
        obs = ScaleObservation(now, in_flight, queued, ready, starting)
        decision = first.decide(obs)
        assert decision == second.decide(obs)
        assert config.min_instances <= decision.desired <= config.max_instances
        if in_flight + queued > 0:
            assert decision.desired >= 1
