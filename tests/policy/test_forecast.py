import math

import numpy as np
import pytest

from shoal.policy.arrivals import BURST_SCALE_S, credible_burst, observe_load
from shoal.policy.forecast import RISE, Lookahead, fit_periodic
from shoal.policy.granularity import Candidate, ControllerConfig, GranularityController
from shoal.workload import generators


def periodic(seed: int = 0, seconds: float = 3600.0) -> np.ndarray:
    """40 req/s, bursts of 220 req/s for 40 s every 120 s from 17 s on, onsets jittered by up to 3 s."""
    return generators.periodic_bursts(40.0, 220.0, 120.0, 40.0, seconds, first_at_s=17.0, jitter_s=3.0, seed=seed)


@pytest.mark.parametrize("seed", range(4))
def test_a_repeating_burst_is_found_with_its_period_and_phase(seed):
    f = fit_periodic(periodic(seed), now=1000.0, lookback_s=480.0)
    assert f is not None
    assert f.period_s == pytest.approx(120.0, abs=2.0)
    assert f.strength > 0.8 and f.periods == pytest.approx(4.0, abs=0.1)
    # bursts at 977-1017 and 1097-1137: in one now, quiet between, in the next one a minute and a half on
    assert f.rate_between(1000.0, 1004.0) > 180.0
    assert f.rate_between(1030.0, 1080.0) < 60.0
    assert f.rate_between(1080.0, 1105.0) > 180.0
    assert 2.0 < f.peak < 3.0


@pytest.mark.parametrize("seed", range(4))
def test_a_span_not_observed_is_left_out_of_the_fit(seed):
    """A restart's 40 s down, over one of the look-back's four bursts: read as quiet, it takes the period away (the
    loop would plan blind until three more periods had passed); with the span unseen, the period and the rate
    forecast for the next burst are the whole traffic's, fitted over the time observed."""
    t = periodic(seed)
    holed = t[(t < 737.0) | (t >= 777.0)]  # the burst at about 737-777 not seen
    whole = fit_periodic(t, now=1000.0, lookback_s=480.0)
    told = fit_periodic(holed, now=1000.0, lookback_s=480.0, unseen=[(737.0, 777.0)])
    assert fit_periodic(holed, now=1000.0, lookback_s=480.0) is None
    assert whole is not None and told is not None
    assert told.period_s == pytest.approx(whole.period_s, abs=3.0)
    assert told.periods == pytest.approx(whole.periods * (480 - 40) / 480, abs=0.1)
    assert told.rate_between(1000.0, 1004.0) == pytest.approx(whole.rate_between(1000.0, 1004.0), rel=0.1)
    assert told.rate_between(1030.0, 1080.0) < 60.0


@pytest.mark.parametrize("seed", range(10))
def test_memoryless_bursts_and_poisson_have_no_period(seed):
    """An MMPP's bursts are as long and as high as the periodic ones, but their onsets do not repeat: no forecast,
    so the loop falls back to what it does without one."""
    mmpp = generators.mmpp([40.0, 220.0], [180.0, 90.0], 3600.0, seed=seed)
    assert fit_periodic(mmpp, now=3600.0, lookback_s=900.0) is None
    assert fit_periodic(generators.poisson(100.0, 1000.0, seed=seed), now=1000.0, lookback_s=900.0) is None


def test_too_little_history_or_traffic_gives_no_forecast():
    t = periodic()
    assert fit_periodic(t, now=1000.0, lookback_s=300.0) is None  # 2.5 periods: fewer than min_periods
    assert fit_periodic(t[:5], now=1000.0, lookback_s=480.0) is None
    assert fit_periodic([], now=10.0, lookback_s=480.0) is None


def test_the_profile_burst_index_matches_the_bursts():
    """The periodic bursts' index at the table's scale is of the order of the bursty workload's; a flat profile has
    none."""
    f = fit_periodic(periodic(1), now=2000.0, lookback_s=960.0)
    assert f is not None
    assert 0.05 < f.burst_index(BURST_SCALE_S) < 0.3
    flat = fit_periodic(generators.diurnal(100.0, 4000.0, period_s=400.0, amplitude=0.05, seed=2), 4000.0, 3000.0)
    assert flat is None or flat.burst_index(BURST_SCALE_S) < 0.01


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="lookback_s"):
        fit_periodic([], 0.0, 0.0)
    with pytest.raises(ValueError, match="bin_s"):
        fit_periodic([], 0.0, 10.0, bin_s=2.0)
    with pytest.raises(ValueError, match="min_periods"):
        fit_periodic([], 0.0, 600.0, min_periods=1.0)
    with pytest.raises(ValueError, match="min_strength"):
        Lookahead(600.0, min_strength=0.0)
    f = fit_periodic(periodic(), now=1000.0, lookback_s=480.0)
    assert f is not None
    with pytest.raises(ValueError, match="t0 <= t1"):
        f.rate_between(5.0, 4.0)
    with pytest.raises(ValueError, match="scale_s"):
        f.burst_index(math.inf)


def test_lookahead_raises_the_load_before_an_onset_and_prices_the_rise():
    t = periodic(2)
    look = Lookahead(480.0)
    assert look.ahead(observe_load(t, 1080.0, 10.0), 1080.0, 12.0) == observe_load(t, 1080.0, 10.0)  # not fitted
    assert look.refit(t, 1080.0) is not None and look.active
    quiet = observe_load(t, 1080.0, 10.0)
    assert quiet.rate < 60.0
    # 12 s ahead of 1080 s: quiet; 20 s ahead: the burst at ~1097 s, a rise priced by the profile's burst index
    assert look.ahead(quiet, 1070.0, 12.0).rate == pytest.approx(quiet.rate, rel=0.5)
    up = look.ahead(quiet, 1080.0, 20.0)
    assert up.rate > RISE * quiet.rate
    assert credible_burst(up) == pytest.approx(look.forecast.burst_index(BURST_SCALE_S))
    # in the burst, the load seen is the burst: no rise to price (the rate at most the profile's noise higher)
    inside = observe_load(t, 1110.0, 10.0)
    held = look.ahead(inside, 1110.0, 20.0)
    assert held.expected_weight == 0.0 and held.rate == pytest.approx(inside.rate, rel=0.1)
    assert look.record()["period_s"] == pytest.approx(120.0, abs=2.0)


def test_a_forecast_schedule_warms_the_burst_plan_ahead_and_leaves_it_after():
    """Over the forecast windows, quiet suits a cheap plan and bursts need a dear one: the loop switches to the dear
    one in the window before an onset (a warm-up ahead), back to the cheap one once the burst is over, and the
    controller notes each switch (its dwell counts from it)."""
    t = periodic(3)
    look = Lookahead(480.0)
    controller = GranularityController(ControllerConfig(slo_target=0.99))

    def candidates(load) -> list[Candidate]:
        burst = credible_burst(load) if load.burst_scale_s else math.nan
        cheap_ok = load.rate < 100.0 and not (burst > 0)
        return [Candidate("cheap", 1.0 if cheap_ok else 0.5, 1.0), Candidate("dear", 1.0, 3.0)]

    plan, moves = "cheap", []
    for now in np.arange(1000.0, 1250.0, 10.0):
        look.refit(t, now)
        seen = observe_load(t, now, 10.0)
        windows = [candidates(w) for w in look.windows(seen, now, 2.0, 10.0)]
        assert len(windows) in (12, 13)  # one period (120 s, as fitted) of 10-s windows
        decision = look.decide(controller, now, plan, windows, 10.0, 2.0)
        if decision.switch_to:
            moves.append((float(now), decision.switch_to))
            plan = decision.switch_to
    # onsets at ~1097 and ~1217 (jittered by 3 s): "dear" is ready before each, "cheap" comes back after the first
    dear = [m for m, p in moves if p == "dear"]
    cheap = [m for m, p in moves if p == "cheap"]
    assert [m for m in dear if 1070.0 <= m <= 1095.0] and [m for m in dear if 1190.0 <= m <= 1215.0]
    assert [m for m in cheap if 1130.0 <= m <= 1160.0]
    assert controller._last_switch == moves[-1][0]


def test_an_overshoot_metered_inside_a_burst_moves_the_schedule_to_the_plan_the_table_prices_alike():
    """Inside a burst the table prices fine and middle alike (steady state); fine, which took the onset, runs more
    instances than that. Metered at what its instances cost now, staying on fine is dear and the schedule moves to
    middle for the rest of the burst; metered within OVERSHOOT of the table, or not metered, it stays."""
    t = periodic(3)
    look = Lookahead(480.0)
    now = 1110.0  # inside the burst of ~1097-1137
    look.refit(t, now)
    seen = observe_load(t, now, 10.0)
    ahead = look.windows(seen, now, 2.0, 10.0)

    def candidates(load) -> list[Candidate]:
        burst = load.rate >= 100.0
        rising = credible_burst(load) > 0 if load.burst_scale_s else False
        return [
            Candidate("cheap", 0.5 if burst else 1.0, 1.0),
            Candidate("fine", 1.0, 3.0 if burst else 2.0),
            Candidate("middle", 0.5 if rising else 1.0, 3.0 if burst else 2.0),
        ]

    windows = [candidates(w) for w in ahead]
    held = Lookahead.held(seen, ahead)
    assert 2 <= held <= 4  # the burst's windows left, then the quiet: the load no longer holds
    assert all(w.rate >= seen.rate / RISE for w in ahead[:held]) and ahead[held].rate < seen.rate / RISE

    def first(metered):
        controller = GranularityController(ControllerConfig(slo_target=0.99))
        return look.decide(controller, now, "fine", windows, 10.0, 2.0, metered_cost_per_s=metered, held=held)

    assert first(None).switch_to is None
    assert first(1.15 * 3.0).switch_to is None  # within OVERSHOOT of the table: the table's price stands
    moved = first(5.0)
    assert moved.switch_to == "middle" and "middle -> cheap" in moved.reason
    with pytest.raises(ValueError, match="metered_cost_per_s"):
        first(-1.0)
    assert Lookahead.held(seen, []) == 0


def test_a_metered_move_is_not_a_detour_back_to_the_plan_nor_to_a_plan_worse_on_slo():
    """As above, but the window after the burst needs fine again (the others miss there): leaving fine for the rest
    of the burst would mean coming back to it at its end, two switches under load to shed what the autoscaler sheds
    itself; and seen from the quiet (the load holds over the whole period), middle misses where fine meets the
    target. Either way the table decides, and the loop stays. Where middle is as good everywhere, it moves."""
    t = periodic(3)
    look = Lookahead(480.0)
    now = 1110.0
    look.refit(t, now)
    seen = observe_load(t, now, 10.0)
    ahead = look.windows(seen, now, 2.0, 10.0)
    held = Lookahead.held(seen, ahead)

    def candidates(k: int, load, middle_misses: bool) -> list[Candidate]:
        burst = load.rate >= 100.0
        after = k == held  # the first window after the burst
        return [
            Candidate("cheap", 0.5 if burst or after else 1.0, 1.0),
            Candidate("fine", 1.0, 3.0 if burst else 2.0),
            Candidate("middle", 0.5 if after and middle_misses else 1.0, 3.0 if burst else 2.0),
        ]

    def first(middle_misses: bool, held: int):
        windows = [candidates(k, w, middle_misses) for k, w in enumerate(ahead)]
        controller = GranularityController(ControllerConfig(slo_target=0.99))
        return look.decide(controller, now, "fine", windows, 10.0, 2.0, metered_cost_per_s=5.0, held=held).switch_to

    assert first(middle_misses=True, held=held) is None  # a detour
    assert first(middle_misses=True, held=len(ahead)) is None  # worse on SLO hit in a window the load holds
    assert first(middle_misses=False, held=held) == "middle"
