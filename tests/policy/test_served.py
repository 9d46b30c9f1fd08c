"""ServedCosts: the loop's meter against the table, corrections, and trials of close calls (policy/served.py)."""

import pytest

from shoal.policy.granularity import Candidate
from shoal.policy.served import ServedCosts, Trial

# text at 12 req/s (BENCHMARKS.md §12l): the table's prices and what the plans cost when served, USD per second
COARSE_TABLE, MIDDLE_TABLE = 0.1376 / 3600, 0.1390 / 3600
COARSE_METERED, MIDDLE_METERED = 0.1430 / 3600, 0.1280 / 3600


def cands(coarse=COARSE_TABLE, middle=MIDDLE_TABLE, fine=0.20 / 3600, middle_hit=1.0):
    return [Candidate("coarse", 1.0, coarse), Candidate("middle", middle_hit, middle), Candidate("fine", 1.0, fine)]


def serve(costs, plan, windows, rate=12.0, predicted=COARSE_TABLE, metered=COARSE_METERED):
    for _ in range(windows):
        costs.observe(plan, rate, predicted, metered)


def test_a_plan_is_corrected_once_metered_for_enough_windows_near_the_rate():
    costs = ServedCosts(min_windows=3)
    serve(costs, "coarse", 2)
    assert costs.ratio("coarse", 12.0) is None  # two windows are not enough
    costs.observe("coarse", 11.0, 2 * COARSE_TABLE, 2 * COARSE_METERED)  # a busier window weighs more
    assert costs.ratio("coarse", 12.0) == pytest.approx(COARSE_METERED / COARSE_TABLE)
    adjusted = {c.plan: c for c in costs.adjust(cands(), 12.0)}
    assert adjusted["coarse"].cost_per_s == pytest.approx(COARSE_METERED)
    # never served: the table's price, off as much as the table is for the plans metered (coarse's ratio alone)
    assert adjusted["middle"].cost_per_s == pytest.approx(MIDDLE_TABLE * COARSE_METERED / COARSE_TABLE)
    assert costs.adjust(cands(), 12.0)[2].cost_per_s == pytest.approx(0.20 / 3600 * COARSE_METERED / COARSE_TABLE)


def test_windows_near_the_rate_count_and_all_of_the_plans_where_too_few_lie_near():
    costs = ServedCosts(min_windows=3)
    serve(costs, "coarse", 3, rate=12.0, predicted=1.0, metered=1.1)
    serve(costs, "coarse", 2, rate=30.0, predicted=1.0, metered=2.0)
    assert costs.ratio("coarse", 12.0) == pytest.approx(1.1)  # three near 12 req/s: those alone
    assert costs.ratio("coarse", 30.0) == pytest.approx((3 * 1.1 + 2 * 2.0) / 5)  # two near 30: all five
    assert ServedCosts(min_windows=6).ratio("coarse", 12.0) is None


def test_ratio_is_metered_over_predicted_in_sums_not_a_mean_of_ratios():
    costs = ServedCosts(min_windows=2)
    costs.observe("p", 10.0, 1.0, 3.0)
    costs.observe("p", 10.0, 3.0, 3.0)
    assert costs.ratio("p", 10.0) == pytest.approx(6.0 / 4.0)  # a mean of ratios would say 2.0


def test_a_close_call_is_tried_where_the_load_held_and_concluded_by_the_meter():
    """Coarse metered 4 % over the table, the middle plan priced 3 % under coarse's metered cost: not enough for
    the controller (10 %), so it is tried; metered at 0.128 it stays; tried once per rate band."""
    costs = ServedCosts(min_windows=4)
    serve(costs, "coarse", 4)
    weighed = costs.adjust(cands(), 12.0)
    pick = costs.trial("coarse", [weighed], 12.0, 0.99)
    assert pick is not None and pick.plan == "middle"
    assert costs.on_trial == Trial("coarse", "middle", 12.0)
    assert costs.record("middle", 12.0) == {"ratio": None, "windows": 0, "trial": {"from": "coarse", "to": "middle"}}
    assert costs.trial("middle", [weighed], 12.0, 0.99) is None  # one trial at a time
    assert costs.conclude("middle", weighed, 12.0, 0.99) is None  # the middle plan not metered yet
    assert costs.on_trial is not None
    serve(costs, "middle", 4, predicted=MIDDLE_TABLE, metered=MIDDLE_METERED)
    assert costs.conclude("middle", costs.adjust(cands(), 12.0), 12.0, 0.99) is None  # cheaper by the meter: stay
    assert costs.on_trial is None
    assert costs.trial("middle", [costs.adjust(cands(), 12.0)], 12.0, 0.99) is None  # both metered: nothing to try


def test_a_trial_goes_back_when_the_plan_tried_costs_more_by_the_meter():
    costs = ServedCosts(min_windows=2)
    serve(costs, "coarse", 2)
    assert costs.trial("coarse", [costs.adjust(cands(), 12.0)], 12.0, 0.99).plan == "middle"
    serve(costs, "middle", 2, predicted=MIDDLE_TABLE, metered=0.150 / 3600)
    assert costs.conclude("middle", costs.adjust(cands(), 12.0), 12.0, 0.99) == "coarse"
    assert costs.on_trial is None
    # back on coarse: middle is metered now, at 0.150 against coarse's 0.143: never tried again here
    assert costs.trial("coarse", [costs.adjust(cands(), 12.0)], 12.0, 0.99) is None


def test_a_trial_ends_when_the_load_leaves_its_band_or_another_switch_moves_off_it():
    costs = ServedCosts(min_windows=2)
    serve(costs, "coarse", 2)
    assert costs.trial("coarse", [costs.adjust(cands(), 12.0)], 12.0, 0.99) is not None
    assert costs.conclude("middle", cands(), 20.0, 0.99) is None and costs.on_trial is None  # a burst began
    assert costs.trial("coarse", [costs.adjust(cands(), 12.0)], 12.0, 0.99) is None  # tried here once already
    other = ServedCosts(min_windows=2)
    serve(other, "coarse", 2)
    assert other.trial("coarse", [other.adjust(cands(), 12.0)], 12.0, 0.99) is not None
    assert other.conclude("fine", cands(), 12.0, 0.99) is None and other.on_trial is None  # an emergency moved it


@pytest.mark.parametrize(
    ("why", "setup", "kwargs"),
    [
        ("the current plan not metered long enough", 3, {}),
        ("the middle plan misses the target", 4, {"middle_hit": 0.98}),
        ("the middle plan priced beyond the margin", 4, {"middle": COARSE_METERED * 1.06}),
    ],
)
def test_no_trial_without_a_close_call_that_meets_the_target(why, setup, kwargs):
    costs = ServedCosts(min_windows=4)
    serve(costs, "coarse", setup)
    assert costs.trial("coarse", [costs.adjust(cands(**kwargs), 12.0)], 12.0, 0.99) is None, why


def test_no_trial_while_the_load_moves_or_where_the_horizon_disagrees():
    costs = ServedCosts(min_windows=4)
    serve(costs, "coarse", 4)
    costs.observe("coarse", 20.0, COARSE_TABLE, COARSE_METERED)  # the last window was busier: the load moved
    assert not costs.holding("coarse", 12.0)
    assert costs.trial("coarse", [costs.adjust(cands(), 12.0)], 12.0, 0.99) is None
    held = ServedCosts(min_windows=2)
    serve(held, "coarse", 2)
    assert held.holding("coarse", 12.0)
    burst_priced = cands(middle=0.3 / 3600)  # the horizon's bursts make the middle plan dear
    assert held.trial("coarse", [held.adjust(cands(), 12.0), held.adjust(burst_priced, 12.0)], 12.0, 0.99) is None


def test_bad_settings_and_observations_are_refused():
    with pytest.raises(ValueError, match="min_windows"):
        ServedCosts(min_windows=0)
    with pytest.raises(ValueError, match="band"):
        ServedCosts(band=1.0)
    with pytest.raises(ValueError, match="margin"):
        ServedCosts(margin=-0.1)
    with pytest.raises(ValueError, match="keep"):
        ServedCosts(min_windows=6, keep=5)
    with pytest.raises(ValueError, match="metered must be"):
        ServedCosts().observe("coarse", 12.0, 1.0, float("nan"))


def test_meter_observes_a_window_the_plan_served_whole_a_window_after_its_switch():
    costs = ServedCosts(min_windows=1, settle_s=0.0)  # a window after the start or a switch (the least settling)
    table = cands()
    costs.meter(10.0, "coarse", 12.0, 1.0, table, moved_at=8.0, window_s=5.0)  # the first call: nothing before
    costs.meter(15.0, "coarse", 12.0, 1.5, table, moved_at=8.0, window_s=5.0)  # window [10, 15) began 2 s after
    assert costs.ratio("coarse", 12.0) is None
    costs.meter(20.0, "coarse", 12.0, 2.0, table, moved_at=8.0, window_s=5.0)  # [15, 20): 7 s after the move
    assert costs.ratio("coarse", 12.0) == pytest.approx((0.5 / 5.0) / COARSE_TABLE)
    costs.meter(25.0, "middle", 12.0, 0.2, table, moved_at=24.0, window_s=5.0)  # another plan's meter: no window
    costs.meter(30.0, "middle", 12.0, 0.4, table, moved_at=24.0, window_s=5.0)  # [25, 30) began 1 s after
    assert costs.ratio("middle", 12.0) is None
    costs.meter(35.0, "middle", 12.0, 0.6, table, moved_at=24.0, window_s=5.0)
    assert costs.ratio("middle", 12.0) == pytest.approx((0.2 / 5.0) / MIDDLE_TABLE)
    costs.meter(40.0, "gone", 12.0, 0.9, table, moved_at=24.0, window_s=5.0)  # not among the candidates
    costs.meter(45.0, "gone", 12.0, 1.0, table, moved_at=24.0, window_s=5.0)
    assert costs.ratio("gone", 12.0) is None


def test_plans_not_metered_are_scaled_by_the_metered_plans_ratios_together():
    """A table 20 % under every plan: metering one plan must not make the others look cheaper than it."""
    costs = ServedCosts(min_windows=2)
    serve(costs, "coarse", 2, predicted=1.0, metered=1.2)
    serve(costs, "middle", 2, predicted=1.0, metered=1.5)
    adjusted = {c.plan: c.cost_per_s for c in costs.adjust(cands(coarse=1.0, middle=1.0, fine=2.0), 12.0)}
    assert adjusted["coarse"] == pytest.approx(1.2) and adjusted["middle"] == pytest.approx(1.5)
    assert adjusted["fine"] == pytest.approx(2.0 * (1.2 * 1.5) ** 0.5)  # the geometric mean of the two ratios


def test_meter_waits_settle_s_after_the_start_and_after_a_switch():
    costs = ServedCosts(min_windows=1, settle_s=20.0)
    for t in range(0, 45, 5):  # the loop starts at 0: windows from 20 s on are metered
        costs.meter(float(t), "coarse", 12.0, t / 100.0, cands(), moved_at=float("-inf"), window_s=5.0)
    assert costs.windows("coarse") == 4  # [20, 25), [25, 30), [30, 35), [35, 40)
    for t in range(45, 95, 5):  # moved to middle at 47: windows from 67 on
        costs.meter(float(t), "middle", 12.0, t / 100.0, cands(), moved_at=47.0, window_s=5.0)
    assert costs.windows("middle") == 4  # [70, 75) ... [85, 90)
    with pytest.raises(ValueError, match="settle_s"):
        ServedCosts(settle_s=-1.0)


@pytest.mark.parametrize(("middle", "why"), [(0.97, "within the table's error"), (0.70, "not yet metered")])
def test_a_trial_says_whether_it_is_a_close_call_or_a_plan_the_controller_held_back(middle, why):
    from shoal.policy.granularity import ControllerConfig, GranularityController
    from shoal.policy.served import served_decision

    costs = ServedCosts(min_windows=2)
    serve(costs, "coarse", 2, predicted=1.0, metered=1.0)
    weighed = cands(coarse=1.0, middle=middle, fine=2.0)
    controller = GranularityController(ControllerConfig(min_dwell_s=0.0))
    decision = served_decision(costs, controller, 10.0, "coarse", 12.0, weighed)
    assert decision is not None and decision.switch_to == "middle"
    assert f"priced {middle - 1:+.0%} against what coarse costs by the meter, {why}" in decision.reason


def test_a_plan_metered_only_at_another_rate_is_still_tried_and_its_trial_waits_for_windows_near_this_one():
    """The middle plan served 4 windows at 30 req/s: its ratio answers at 12 req/s from them, but whether it is
    cheaper than coarse *here* is what a trial is for, and the trial ends only on windows metered here."""
    costs = ServedCosts(min_windows=4)
    serve(costs, "middle", 4, rate=30.0, predicted=MIDDLE_TABLE, metered=MIDDLE_TABLE)  # as the table said, there
    serve(costs, "coarse", 4)
    assert costs.ratio("middle", 12.0) == pytest.approx(1.0)
    pick = costs.trial("coarse", [costs.adjust(cands(), 12.0)], 12.0, 0.99)
    assert pick is not None and pick.plan == "middle"
    assert costs.conclude("middle", costs.adjust(cands(), 12.0), 12.0, 0.99) is None
    assert costs.on_trial is not None  # still on trial: nothing metered near 12 req/s yet
    serve(costs, "middle", 4, predicted=MIDDLE_TABLE, metered=0.150 / 3600)
    assert costs.conclude("middle", costs.adjust(cands(), 12.0), 12.0, 0.99) == "coarse"
