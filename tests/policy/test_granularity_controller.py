"""The granularity controller: best plan at a load, whether a switch pays, and hysteresis."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.policy.granularity import (
    Candidate,
    ControllerConfig,
    GranularityController,
    GranularityDecision,
    Horizon,
    RecentCandidates,
    best_candidate,
    checks_per_window,
    emergency_span_s,
    horizon_windows,
    mixed,
    observe_load,
    window_record,
)

FINE = "fine"
COARSE = "coarse"


def cands(fine=(0.995, 2.0), coarse=(0.995, 1.0), switch_cost=0.0):
    return [Candidate(FINE, *fine, switch_cost=switch_cost), Candidate(COARSE, *coarse, switch_cost=switch_cost)]


def test_best_is_the_cheapest_plan_that_meets_the_target_else_the_highest_slo_hit():
    assert best_candidate(cands(), 0.99).plan == COARSE
    assert best_candidate(cands(coarse=(0.95, 1.0)), 0.99).plan == FINE
    assert best_candidate(cands(fine=(0.9, 2.0), coarse=(0.95, 1.0)), 0.99).plan == COARSE
    assert best_candidate(cands(fine=(0.9, 2.0), coarse=(0.9, 1.0)), 0.99).plan == COARSE  # tie: cheaper
    with pytest.raises(ValueError, match="no candidate"):
        best_candidate([], 0.99)


def test_a_cheaper_plan_is_adopted_only_after_it_stays_best_for_the_confirm_windows():
    ctl = GranularityController(ControllerConfig(confirm_windows=3, min_dwell_s=0))
    assert ctl.decide(0, FINE, cands()).switch_to is None
    assert ctl.decide(10, FINE, cands()).switch_to is None
    d = ctl.decide(20, FINE, cands())
    assert d.switch_to == COARSE and "cheaper" in d.reason


def test_a_streak_broken_by_one_window_starts_again():
    ctl = GranularityController(ControllerConfig(confirm_windows=2, min_dwell_s=0))
    assert ctl.decide(0, FINE, cands()).switch_to is None
    assert ctl.decide(10, FINE, cands(coarse=(0.995, 1.95))).switch_to is None  # saving too small: streak broken
    assert ctl.decide(20, FINE, cands()).switch_to is None
    assert ctl.decide(30, FINE, cands()).switch_to == COARSE


def test_no_switch_within_the_dwell_time_unless_the_slo_is_in_danger():
    ctl = GranularityController(ControllerConfig(confirm_windows=1, min_dwell_s=60))
    assert ctl.decide(0, FINE, cands()).switch_to == COARSE
    # back on coarse, fine becomes cheaper: not before 60 s have passed
    cheaper_fine = cands(fine=(0.995, 0.5))
    assert "too recent" in ctl.decide(30, COARSE, cheaper_fine).reason
    assert ctl.decide(61, COARSE, cheaper_fine).switch_to == FINE
    # an SLO emergency does not wait for the dwell time, nor for confirmation
    emergency = cands(fine=(0.80, 0.5), coarse=(0.995, 1.0))
    d = ctl.decide(65, FINE, emergency)
    assert d.switch_to == COARSE and "urgent" in d.reason


def test_a_saving_that_does_not_pay_for_the_switch_is_not_taken():
    ctl = GranularityController(ControllerConfig(confirm_windows=1, min_dwell_s=60))
    # saves 1 USD/s: over the 60-s dwell that is 60 USD, less than the 100 USD the switch costs
    d = ctl.decide(0, FINE, cands(switch_cost=100.0))
    assert d.switch_to is None and d.best == COARSE and "not by enough" in d.reason
    assert ctl.decide(10, FINE, cands(switch_cost=50.0)).switch_to == COARSE


def test_a_plan_that_meets_the_target_replaces_one_that_does_not():
    ctl = GranularityController(ControllerConfig(confirm_windows=2, min_dwell_s=0, urgent_slo_gap=0.5))
    slow_coarse = cands(coarse=(0.97, 1.0))
    assert ctl.decide(0, COARSE, slow_coarse).switch_to is None
    d = ctl.decide(10, COARSE, slow_coarse)
    assert d.switch_to == FINE and "meets the SLO target" in d.reason


def test_when_no_plan_meets_the_target_one_as_good_and_cheaper_is_adopted():
    """Under bursts every plan misses 0.99: coarse (0.975) does as well as fine (0.97) at half the cost: switch; a
    saving below min_cost_saving, or one that does not pay for the switch, is not taken."""
    ctl = GranularityController(ControllerConfig(confirm_windows=1, min_dwell_s=0))
    d = ctl.decide(0, FINE, cands(fine=(0.97, 2.0), coarse=(0.975, 1.0)))
    assert d.switch_to == COARSE and "no plan meets the target" in d.reason
    assert ctl.decide(10, FINE, cands(fine=(0.97, 2.0), coarse=(0.975, 1.9))).switch_to is None
    assert ctl.decide(20, FINE, cands(fine=(0.97, 2.0), coarse=(0.975, 1.0), switch_cost=1e3)).switch_to is None
    # and a cheaper plan predicted to do worse is not "as good": the best plan stays the current one
    assert ctl.decide(30, FINE, cands(fine=(0.97, 2.0), coarse=(0.96, 1.0))).best == FINE


def test_a_current_plan_predicted_within_the_tolerance_of_the_target_is_kept():
    """Prediction noise (0.985 against 0.99) is not a reason to move to a dearer plan; a real miss (0.97) is."""
    ctl = GranularityController(ControllerConfig(confirm_windows=1, min_dwell_s=0, slo_tolerance=0.01))
    noisy = cands(coarse=(0.985, 1.0))
    d = ctl.decide(0, COARSE, noisy)
    assert d.switch_to is None and d.best == FINE and "not by enough" in d.reason
    assert ctl.decide(10, COARSE, cands(coarse=(0.97, 1.0))).switch_to == FINE
    # with no tolerance the same noise moves it
    strict = GranularityController(ControllerConfig(confirm_windows=1, min_dwell_s=0, slo_tolerance=0.0))
    assert strict.decide(0, COARSE, noisy).switch_to == FINE
    # and a plan that meets the target only within the tolerance still gives way to a cheaper one that meets it
    assert ctl.decide(20, FINE, cands(fine=(0.985, 2.0))).switch_to == COARSE


def test_bad_input_is_refused():
    ctl = GranularityController()
    with pytest.raises(ValueError, match="not among the candidates"):
        ctl.decide(0, "a+b,c", cands())
    ctl.decide(10, FINE, cands())
    with pytest.raises(ValueError, match="backwards"):
        ctl.decide(5, FINE, cands())
    with pytest.raises(ValueError, match="slo_hit"):
        Candidate("x", 1.5, 1.0)
    with pytest.raises(ValueError, match="cost_per_s"):
        Candidate("x", 0.5, float("nan"))
    with pytest.raises(ValueError, match="confirm_windows"):
        ControllerConfig(confirm_windows=0)


@given(
    st.lists(
        st.tuples(st.floats(0.5, 1.0), st.floats(0.1, 10), st.floats(0.5, 1.0), st.floats(0.1, 10)),
        min_size=1,
        max_size=40,
    )
)
def test_switches_are_never_closer_than_the_dwell_time_unless_urgent(windows):
    cfg = ControllerConfig(confirm_windows=2, min_dwell_s=60)
    ctl = GranularityController(cfg)
    current, last = FINE, None
    for k, (fs, fc, cs, cc) in enumerate(windows):
        now = 10.0 * k
        cs_ = cands(fine=(fs, fc), coarse=(cs, cc))
        d = ctl.decide(now, current, cs_)
        if d.switch_to is not None:
            here = {c.plan: c for c in cs_}[current]
            urgent = here.slo_hit < cfg.slo_target - cfg.urgent_slo_gap
            assert last is None or now - last >= cfg.min_dwell_s or urgent
            assert d.switch_to != current
            current, last = d.switch_to, now


def test_mixed_weights_slo_hit_by_requests_and_averages_cost():
    quiet = [Candidate(FINE, 1.0, 2.0), Candidate(COARSE, 1.0, 1.0), Candidate("only-quiet", 1.0, 0.1)]
    burst = [Candidate(FINE, 0.99, 4.0, switch_cost=8.0), Candidate(COARSE, 0.5, 2.0)]
    (fine, coarse) = mixed([(100, quiet), (300, burst)])
    assert (fine.plan, coarse.plan) == (FINE, COARSE)  # only plans scored in every window, in the last one's order
    assert fine.slo_hit == pytest.approx((100 * 1.0 + 300 * 0.99) / 400) and fine.cost_per_s == 3.0
    assert coarse.slo_hit == pytest.approx((100 + 150) / 400) and coarse.cost_per_s == 1.5
    assert fine.switch_cost == 8.0  # what a switch costs now: the last window's
    assert mixed([(0, quiet), (0, burst)])[1].slo_hit == pytest.approx(0.75)  # no requests: equal weights
    with pytest.raises(ValueError, match="no windows"):
        mixed([])
    with pytest.raises(ValueError, match="weights"):
        mixed([(-1, quiet)])


def test_with_recent_loads_the_plan_best_over_the_mix_is_weighed():
    """This window is quiet (coarse is cheapest), but over the recent bursts coarse misses: the mix keeps fine."""
    ctl = GranularityController(ControllerConfig(confirm_windows=1, min_dwell_s=0))
    recent = cands(coarse=(0.9, 1.0))
    d = ctl.decide(0, FINE, cands(), recent)
    assert d.switch_to is None and d.best == FINE and "over the recent loads" in d.reason
    assert ctl.decide(10, FINE, cands()).switch_to == COARSE  # without the mix it would have switched


def test_an_slo_emergency_at_this_load_overrides_the_mix():
    """On coarse in a burst (0.8 against 0.99): switch now, though coarse looks fine over the recent mix."""
    ctl = GranularityController(ControllerConfig(confirm_windows=2, min_dwell_s=60))
    d = ctl.decide(0, COARSE, cands(coarse=(0.8, 1.0)), recent=cands())
    assert d.switch_to == FINE and "urgent" in d.reason


def test_recent_without_the_current_plan_falls_back_to_this_window():
    ctl = GranularityController(ControllerConfig(confirm_windows=1, min_dwell_s=0))
    d = ctl.decide(0, FINE, cands(), recent=[Candidate(COARSE, 0.5, 1.0)])
    assert d.switch_to == COARSE and "over the recent loads" not in d.reason


def test_recent_candidates_mix_the_last_windows_only():
    recent = RecentCandidates(2)
    assert recent.add(10, cands()) is None  # one window: nothing to mix yet
    assert recent.add(10, cands(coarse=(0.9, 1.0)))[1].slo_hit == pytest.approx((0.995 + 0.9) / 2)
    assert recent.add(10, cands(coarse=(0.9, 1.0)))[1].slo_hit == pytest.approx(0.9)  # the first has left
    assert horizon_windows(None, 10.0) == 1 and horizon_windows(60.0, 10.0) == 6
    with pytest.raises(ValueError, match="horizon_s"):
        horizon_windows(5.0, 10.0)
    with pytest.raises(ValueError, match="windows"):
        RecentCandidates(0)


def test_a_horizon_in_load_mode_observes_the_horizons_arrivals_as_one_load():
    """Bursts of 1 s at 40 req/s every 4 s over 2 req/s: the horizon's load has their mean rate and an SCV far
    above 1, while the quiet window's SCV is about 1."""
    import numpy as np

    rng = np.random.default_rng(0)
    times = np.sort(np.concatenate([rng.uniform(0, 40, 80)] + [k + rng.uniform(0, 1, 40) for k in range(0, 40, 4)]))
    h = Horizon(20.0, 2.0, "load")
    assert h.load(times + 4.0, 2.0) is None and h.load(times + 4.0, 4.0) is None  # no traffic yet: no horizon
    assert h.load(times + 4.0, 6.0) is None  # traffic in one window so far: nothing beyond it
    early = h.load(times + 4.0, 10.0)  # three windows of traffic: the horizon is the time since the first began
    assert early is not None and early.window_s == pytest.approx(6.0)
    h = Horizon(20.0, 2.0, "load")
    assert h.load(times, 2.0) is None
    over = h.load(times, 40.0)
    assert over.window_s == 20.0 and over.rate == pytest.approx(((times > 20) & (times <= 40)).sum() / 20.0)
    assert over.scv > 3
    quiet = observe_load(times, 40.0, 2.0)
    assert h.window(quiet).scv == 1.0 and Horizon(20.0, 2.0).window(quiet) == quiet  # burstiness is the horizon's
    here = cands()
    assert h.recent(over, here, None) is None and h.recent(over, here, cands(coarse=(0.9, 1.0)))[1].slo_hit == 0.9


def test_a_horizon_in_load_mode_carries_its_burst_index_and_windows_are_scored_as_steady():
    """The same bursts, burst index at a 1-s scale: well above 0 over the horizon; a window is scored at index 0 (its
    burstiness is the horizon's), with the horizon's scale so that a table at that scale reads it."""
    import numpy as np

    rng = np.random.default_rng(0)
    times = np.sort(np.concatenate([rng.uniform(0, 40, 80)] + [k + rng.uniform(0, 1, 40) for k in range(0, 40, 4)]))
    h = Horizon(20.0, 2.0, "load", burst_scale_s=1.0)
    h.load(times, 2.0)
    over = h.load(times, 40.0)
    assert over.burst_scale_s == 1.0 and over.burst > 1.0
    window = h.window(observe_load(times, 40.0, 2.0))
    assert (window.scv, window.burst, window.burst_scale_s) == (1.0, 0.0, 1.0)
    stay = GranularityDecision(None, COARSE, "stay")
    entry = window_record(40.0, over, COARSE, stay, over)
    assert entry["horizon_load"]["burst"] == over.burst and entry["horizon_load"]["burst_scale_s"] == 1.0
    assert "burst" not in window_record(40.0, observe_load(times, 40.0, 2.0), COARSE, stay)["load"]
    with pytest.raises(ValueError, match="burst_scale_s"):
        Horizon(20.0, 2.0, "load", burst_scale_s=0.0)


def test_an_expected_burst_index_prices_the_horizon_until_a_whole_horizon_has_been_seen():
    """Steady traffic, a horizon told to expect bursts of index 0.3: at the first window the horizon's load is
    priced almost wholly as expected, halfway through half as expected, and after a whole horizon as seen (0)."""
    from shoal.policy.arrivals import credible_burst
    from shoal.workload.generators import poisson

    times = poisson(20.0, 400.0, seed=4)
    h = Horizon(200.0, 10.0, "load", burst_scale_s=10.0, expected_burst=0.3)
    first = h.load(times, 10.0)
    assert first is not None and first.window_s == 10.0 and math.isnan(first.burst)  # one bin: nothing to read
    assert first.expected_weight == pytest.approx(0.95) and credible_burst(first) == pytest.approx(0.285)
    half = h.load(times, 100.0)
    assert half.expected_weight == pytest.approx(0.5) and credible_burst(half) == pytest.approx(0.15, abs=0.01)
    seen = h.load(times, 300.0)
    assert seen.expected_weight == 0.0 and credible_burst(seen) == pytest.approx(0.0, abs=0.01)
    entry = window_record(100.0, half, COARSE, GranularityDecision(None, COARSE, "stay"), half)
    assert entry["horizon_load"]["expected_weight"] == pytest.approx(0.5)
    assert "expected_burst" in entry["horizon_load"] and first.rate == pytest.approx(first.count / 10.0)  # rate seen
    with pytest.raises(ValueError, match="horizon priced as one load"):
        Horizon(200.0, 10.0, "mix", expected_burst=0.3)
    with pytest.raises(ValueError, match="expected_burst must be"):
        Horizon(200.0, 10.0, "load", expected_burst=-0.1)
    with pytest.raises(ValueError, match="expected_rate must be"):
        Horizon(200.0, 10.0, "load", expected_rate=math.inf)


def test_an_expected_rate_is_the_horizons_rate_at_first_and_fades_to_the_rate_seen():
    """Quiet traffic at 20 req/s, 40 expected (a bursty service's mean): the horizon is priced at 39 req/s at the
    first window, 30 halfway, 20 once a horizon has been seen; no burst expectation, so the index is as seen."""
    from shoal.policy.arrivals import credible_burst
    from shoal.workload.generators import poisson

    times = poisson(20.0, 400.0, seed=4)
    h = Horizon(200.0, 10.0, "load", burst_scale_s=10.0, expected_rate=40.0)
    seen = [h.load(times, t) for t in (10.0, 100.0, 300.0)]
    for load, w in zip(seen, (0.95, 0.5, 0.0), strict=True):
        assert load.rate == pytest.approx(w * 40.0 + (1 - w) * load.count / load.window_s)
    assert seen[2].rate == pytest.approx(20.0, rel=0.1)
    assert math.isnan(seen[0].expected_burst) and math.isnan(credible_burst(seen[0]))  # one bin: nothing read
    assert credible_burst(seen[2]) == pytest.approx(0.0, abs=0.01)


def test_a_resumed_horizon_reads_the_traffic_before_a_restart_at_once_and_not_its_downtime():
    """A loop restarted after 10 s down with 110 s of logged Poisson traffic at 12 req/s: resumed, its first
    window's horizon is a whole one at that rate and no burst; not resumed, it has no horizon until two windows
    have passed; with an expectation, a horizon seen but for the downtime leaves the expectation a ninth."""
    import numpy as np

    from shoal.policy.arrivals import credible_burst
    from shoal.workload.generators import poisson

    times = np.concatenate([poisson(12.0, 110.0, seed=5) - 120.0, poisson(12.0, 20.0, seed=6)])
    down = [(-10.0, 0.0)]
    h = Horizon(90.0, 10.0, "load", burst_scale_s=10.0)
    h.resume(-120.0)
    first = h.load(times, 10.0, down)
    assert first.window_s == 90.0 and first.unseen_s == 10.0 and first.rate == pytest.approx(12.0, rel=0.1)
    assert credible_burst(first) == 0.0
    assert Horizon(90.0, 10.0, "load").load(times, 10.0, down) is None
    expecting = Horizon(90.0, 10.0, "load", burst_scale_s=10.0, expected_rate=30.0)
    expecting.resume(-120.0)
    assert expecting.load(times, 10.0, down).expected_weight == pytest.approx(1 / 9)
    with pytest.raises(ValueError, match="since must be a finite time"):
        h.resume(math.nan)


def test_a_horizon_in_mix_mode_mixes_windows_and_scores_no_load():
    h = Horizon(20.0, 10.0)
    assert h.load([1.0, 2.0], 10.0) is None and h.load([1.0, 2.0], 30.0) is None
    load = Horizon(None, 10.0, "load")
    assert load.load([1.0, 2.0], 30.0) is None  # no horizon, nothing to look back on
    from shoal.policy.granularity import ObservedLoad

    w = ObservedLoad(1.0, 1.0, 10, 10.0)
    assert h.recent(w, cands()) is None and h.recent(w, cands(coarse=(0.9, 1.0)))[1].slo_hit == pytest.approx(0.9475)
    with pytest.raises(ValueError, match="horizon mode must be one of mix, load"):
        Horizon(20.0, 10.0, "both")


def test_between_windows_only_an_slo_emergency_switches_and_no_streak_is_counted():
    ctl = GranularityController(ControllerConfig(confirm_windows=2, min_dwell_s=60))
    calm = ctl.emergency(1.0, COARSE, cands(fine=(0.999, 2.0), coarse=(0.999, 1.0)))
    assert calm.switch_to is None and "no SLO emergency" in calm.reason
    mild = ctl.emergency(2.0, COARSE, cands(fine=(0.999, 2.0), coarse=(0.97, 1.0)))  # misses, but by < 0.05
    assert mild.switch_to is None
    d = ctl.emergency(3.0, COARSE, cands(fine=(0.999, 2.0), coarse=(0.5, 1.0)))
    assert d.switch_to == FINE and "between windows" in d.reason
    # the window after it: the emergency switch counts for the dwell time like any other
    assert ctl.decide(10.0, FINE, cands(fine=(0.999, 2.0), coarse=(0.999, 1.0))).switch_to is None
    assert ctl.decide(20.0, FINE, cands(fine=(0.999, 2.0), coarse=(0.999, 1.0))).switch_to is None
    with pytest.raises(ValueError, match="time went backwards"):
        ctl.emergency(5.0, FINE, cands())
    with pytest.raises(ValueError, match="not among the candidates"):
        ctl.emergency(30.0, "a+b", cands())
    assert (
        checks_per_window(10.0, None) == 1 and checks_per_window(10.0, 2.0) == 5 and checks_per_window(10.0, 3.0) == 3
    )
    with pytest.raises(ValueError, match="emergency_s"):
        checks_per_window(10.0, 20.0)


def test_an_emergency_needs_a_plan_that_meets_the_target_or_gains_enough():
    """Every plan misses under a burst: moving for 0.001 of predicted SLO hit is not an emergency (chain, §13d);
    for min_slo_gain (0.02) or to a plan that meets the target, it is, between windows and in a window."""
    ctl = GranularityController(ControllerConfig(min_slo_gain=0.02))
    tiny = ctl.emergency(1.0, FINE, cands(fine=(0.742, 2.0), coarse=(0.743, 2.1)))
    assert tiny.switch_to is None and "no SLO emergency" in tiny.reason
    assert ctl.emergency(2.0, FINE, cands(fine=(0.742, 2.0), coarse=(0.77, 2.1))).switch_to == COARSE
    ctl = GranularityController(ControllerConfig(confirm_windows=3))
    assert ctl.decide(10.0, FINE, cands(fine=(0.742, 2.0), coarse=(0.75, 2.1))).switch_to is None  # not urgent
    ctl = GranularityController(ControllerConfig(confirm_windows=3))
    assert ctl.decide(10.0, FINE, cands(fine=(0.742, 2.0), coarse=(0.995, 2.1))).switch_to == COARSE  # urgent


def test_an_emergency_check_looks_at_three_of_its_intervals_at_most_a_window():
    assert emergency_span_s(10.0, 5) == pytest.approx(6.0)  # Knative's panic window: 6 s, every 2 s
    assert emergency_span_s(10.0, 2) == 10.0 and emergency_span_s(10.0, 1) == 10.0
    with pytest.raises(ValueError, match="checks"):
        emergency_span_s(10.0, 0)
