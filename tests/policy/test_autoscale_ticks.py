"""The autoscaler's tick-run path (`decide_ticks`, `next_change`) against its per-sample path (`decide`): random
observation sequences on a tick grid must give identical decisions, and no tick before `next_change` may decide
differently from the tick it was asked on."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.policy import AutoscalerConfig, KpaAutoscaler, ScaleDecision, ScaleObservation
from shoal.policy.keepalive import first_expiry_tick

counts = st.tuples(st.integers(0, 12), st.integers(0, 6), st.integers(0, 8), st.integers(0, 3))
runs = st.lists(st.tuples(st.integers(1, 120), counts), min_size=1, max_size=25)
configs = st.builds(
    lambda target, stable, panic_frac, min_i: AutoscalerConfig(
        target_concurrency=target,
        stable_window_s=stable,
        panic_window_s=max(0.05, stable * panic_frac),
        min_instances=min_i,
        max_instances=max(1, min_i) + 10,
    ),
    st.sampled_from([0.7, 1.0, 2.0, 3.5]),
    st.sampled_from([1.0, 6.0, 10.0, 7.3]),
    st.sampled_from([0.1, 0.25, 1.0, 0.37]),
    st.integers(0, 2),
)
ticks = st.sampled_from([0.1, 0.25, 1.0, 0.3])


def reference(cfg: AutoscalerConfig, seq: list[tuple[int, tuple[int, int, int, int]]], tick_s: float):
    scaler = KpaAutoscaler(cfg)
    out: list[ScaleDecision] = []
    k = 0
    for n, c in seq:
        for _ in range(n):
            out.append(scaler.decide(ScaleObservation(k * tick_s, *c)))
            k += 1
    return out


@settings(max_examples=300, deadline=None)
@given(configs, runs, ticks, st.randoms(use_true_random=False))
def test_decide_ticks_and_next_change_agree_with_deciding_every_tick(cfg, seq, tick_s, rnd) -> None:
    ref = reference(cfg, seq, tick_s)
    scaler = KpaAutoscaler(cfg)
    k = 0
    for n, c in seq:
        first, last = k, k + n - 1
        # Split the run at random ticks; each piece must end on the decision the per-tick path made there.
        a = first
        while a <= last:
            b = rnd.randint(a, last)
            d = scaler.decide_ticks(ScaleObservation(b * tick_s, *c), a, b, tick_s)
            assert d == ref[b]
            h = scaler.next_change(ScaleObservation(b * tick_s, *c), b, tick_s)
            assert h is None or h > b
            # Every later tick of this run before h decides as tick b did.
            for j in range(b + 1, min(last + 1, h if h is not None else last + 1)):
                assert (ref[j].desired, ref[j].panic) == (d.desired, d.panic)
            a = b + 1
        k = last + 1


@settings(max_examples=200, deadline=None)
@given(configs, runs, ticks)
def test_next_change_is_the_first_tick_the_decision_changes_on_a_full_grid(cfg, seq, tick_s) -> None:
    """Where the observation holds, next_change names the tick of the change itself (it is exact on the grid, not
    only safe), so a pool that sleeps until then wakes no more often than its decisions change."""
    ref = reference(cfg, seq, tick_s)
    scaler = KpaAutoscaler(cfg)
    k = 0
    for n, c in seq:
        for j in range(k, k + n):
            d = scaler.decide_ticks(ScaleObservation(j * tick_s, *c), j, j, tick_s)
            assert d == ref[j]
            h = scaler.next_change(ScaleObservation(j * tick_s, *c), j, tick_s)
            if h is not None and h < k + n:
                # The change it announces is real, or only the panic/hold timers' ticks (decided equal by chance).
                later = [(ref[i].desired, ref[i].panic) for i in range(j + 1, h + 1)]
                assert all(x == (d.desired, d.panic) for x in later[:-1])
        k += n


def test_a_long_constant_run_is_added_in_one_step() -> None:
    """A day of 0.1 s ticks at one observation: one run in each window, and the decision of the per-tick path."""
    cfg = AutoscalerConfig(target_concurrency=1.0)
    scaler = KpaAutoscaler(cfg)
    obs = ScaleObservation(864_000 * 0.1, 3, 0, 3, 0)
    d = scaler.decide_ticks(obs, 0, 864_000, 0.1)
    assert d.desired == 3 and not d.panic
    assert len(scaler._stable._runs) == 1 and scaler._stable._count == 600
    assert scaler.next_change(obs, 864_000, 0.1) is None


def test_decide_ticks_rejects_a_time_off_its_grid() -> None:
    scaler = KpaAutoscaler(AutoscalerConfig(target_concurrency=1.0))
    with pytest.raises(ValueError, match="last_tick"):
        scaler.decide_ticks(ScaleObservation(1.0, 0, 0, 0, 0), 0, 5, 0.1)


@given(st.floats(0, 1000), st.floats(0, 100), st.integers(0, 20000), ticks)
def test_first_expiry_tick_is_where_the_keep_alive_comparison_turns(idle_since, keep_alive, after, tick_s) -> None:
    m = first_expiry_tick(idle_since, keep_alive, after, tick_s)
    assert m >= after
    assert m * tick_s - idle_since >= keep_alive - 1e-9
    assert m == after or not (m - 1) * tick_s - idle_since >= keep_alive - 1e-9


@settings(max_examples=200, deadline=None)
@given(configs, runs, ticks, st.lists(st.booleans(), min_size=25, max_size=25), st.integers(0, 3))
def test_mixing_decide_and_decide_ticks_stays_exact(cfg, seq, tick_s, per_sample, gap) -> None:
    """Runs the scaler saw tick by tick through `decide` (samples at arbitrary float times, stored off the grid) and
    runs it took through `decide_ticks` share its windows; ticks left out entirely (a gap) are left out of both."""
    ref_scaler, scaler = KpaAutoscaler(cfg), KpaAutoscaler(cfg)
    k = 0
    for (n, c), one_by_one in zip(seq, per_sample, strict=False):
        k += gap if one_by_one else 0  # a gap in the grid before some runs
        want = [ref_scaler.decide(ScaleObservation(j * tick_s, *c)) for j in range(k, k + n)]
        if one_by_one:
            got = [scaler.decide(ScaleObservation(j * tick_s, *c)) for j in range(k, k + n)]
            assert got == want
        else:
            d = scaler.decide_ticks(ScaleObservation((k + n - 1) * tick_s, *c), k, k + n - 1, tick_s)
            assert d == want[-1]
            h = scaler.next_change(ScaleObservation((k + n - 1) * tick_s, *c), k + n - 1, tick_s)
            assert h is None or h > k + n - 1
        k += n
