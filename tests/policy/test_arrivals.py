"""What adaptive loops observe of arrivals: the burst index tells bursts from Poisson noise and from slow drift."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shoal.policy.arrivals import (
    BURST_SCALE_S,
    ObservedLoad,
    burst_index,
    burst_index_of_counts,
    credible_burst,
    merged_unseen,
    observe_load,
)
from shoal.workload import generators as g


def test_poisson_arrivals_have_no_credible_burst_index():
    """Across seeds and rates the estimate scatters around 0, within the noise ``credible_burst`` takes off: fewer
    than 2 % of samples keep a credible index, and what they keep is under a third of a burst's (0.07)."""
    for rate in (2.0, 40.0):
        loads = [observe_load(g.poisson(rate, 600.0, seed=seed), 600.0, 600.0, BURST_SCALE_S) for seed in range(200)]
        assert abs(np.mean([x.burst for x in loads])) < 0.002
        credible = np.array([credible_burst(x) for x in loads])
        assert (credible > 0).mean() < 0.02 and credible.max() < 0.025


@pytest.mark.parametrize(("rates", "dwell"), [([40.0, 220.0], [180.0, 90.0]), ([5.0, 20.0], [120.0, 60.0])])
def test_an_mmpp_sample_comes_out_at_its_process_index(rates, dwell):
    seconds = 200 * sum(dwell)
    t = g.mmpp(rates, dwell, seconds, seed=3)
    assert burst_index(t, seconds, seconds, 10.0) == pytest.approx(g.mmpp_burst_index(rates, dwell, 10.0), rel=0.15)


def test_a_slow_drift_is_not_a_burst_though_its_scv_says_so():
    """A rate that swings by half over an hour: the gaps' SCV over 10 minutes is credibly above 1 (what mispriced
    the GPU experiment's trace load, BENCHMARKS.md §13c); the burst index is credibly 0."""
    t = g.diurnal(100.0, 3600.0, period_s=3600.0, amplitude=0.9, peak_at_s=900.0, seed=4)
    load = observe_load(t, 2100.0, 1200.0, BURST_SCALE_S)  # 20 minutes of the steepest fall
    noise = 2 * math.sqrt(8 / load.count)  # credible_scv's discount
    assert load.scv - noise > 1.0
    assert credible_burst(load) == 0.0
    sharp = g.bursts(100.0, 600.0, 180.0, seed=4)  # bursts of the same mean rate
    assert credible_burst(observe_load(sharp, 600.0, 600.0, BURST_SCALE_S)) > 0.02


def test_too_few_bins_or_no_arrivals_have_no_index_and_bad_scales_are_refused():
    t = g.poisson(10.0, 60.0, seed=1)
    assert math.isnan(observe_load(t, 60.0, 25.0, BURST_SCALE_S).burst)  # two whole bins
    assert math.isnan(observe_load([], 60.0, 60.0, BURST_SCALE_S).burst)
    plain = observe_load(t, 60.0, 60.0)
    assert math.isnan(plain.burst) and plain.burst_scale_s is None and math.isnan(credible_burst(plain))
    with pytest.raises(ValueError, match="burst scale"):
        burst_index(t, 60.0, 60.0, 0.0)
    assert math.isnan(credible_burst(ObservedLoad(1.0, 1.0, 0, 60.0, 0.5, 10.0)))


def test_bins_are_counted_back_from_now():
    """Whole bins ending at ``now``: arrivals in a partial bin at the window's start are left out, not half-counted."""
    t = np.concatenate([np.full(50, 0.5), np.arange(50, 350) / 10])  # a clump in (0, 5], then 10 per second
    assert burst_index(t, 35.0, 35.0, 10.0) == pytest.approx((0 - 100) / 100**2, abs=1e-12)


def test_a_rise_is_a_burst_and_a_fall_is_not():
    """A rate that jumps from 10 to 50 req/s has an index; the same jump down, or a load that stops, has none: a
    falling rate is no danger to an SLO (the end of a run's trace read as a burst, BENCHMARKS.md §13d)."""
    up = np.concatenate([g.poisson(10.0, 300.0, seed=1), 300.0 + g.poisson(50.0, 300.0, seed=2)])
    down = np.concatenate([g.poisson(50.0, 300.0, seed=1), 300.0 + g.poisson(10.0, 300.0, seed=2)])
    stops = g.poisson(50.0, 300.0, seed=1)
    assert credible_burst(observe_load(up, 600.0, 600.0, BURST_SCALE_S)) > 0.02
    assert credible_burst(observe_load(down, 600.0, 600.0, BURST_SCALE_S)) == 0.0
    assert credible_burst(observe_load(stops, 600.0, 600.0, BURST_SCALE_S)) == 0.0


def test_the_burst_curve_reads_each_scale_it_can_and_peaks_near_a_bursts_length():
    """Scales with fewer than ten bins or under one arrival per bin are left out; a bursty load's index rises with
    the scale up to about its bursts' length and falls beyond, a Poisson load's stays within its noise of 0."""
    from shoal.policy.arrivals import burst_curve

    seconds = 1800.0
    bursty = burst_curve(g.bursts(10.0, seconds, 60.0, peak=6.0, seed=1), seconds)
    assert [x.scale_s for x in bursty] == [1.0, 2.0, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0]  # 320 s: 5 bins
    assert all(x.bins == int(seconds // x.scale_s) for x in bursty)
    top = max(bursty, key=lambda x: x.index)
    assert 10.0 <= top.scale_s <= 40.0 and bursty[0].index < top.index / 2 and bursty[-1].index < top.index / 2
    steady = burst_curve(g.poisson(10.0, seconds, seed=1), seconds)
    assert all(abs(x.index) < 3 * x.noise for x in steady)
    assert burst_curve(g.poisson(0.5, seconds, seed=1), seconds)[0].scale_s == 2.0  # 1-s bins: 0.5 arrivals each
    with pytest.raises(ValueError, match="seconds"):
        burst_curve([1.0], 0.0)


def restarted(down_s: float, seed: int) -> np.ndarray:
    """Poisson at 12 req/s over 120 s, with nothing seen from 60 s for ``down_s`` (a server down, then up again)."""
    t = g.poisson(12.0, 120.0, seed=seed)
    return t[(t <= 60.0) | (t > 60.0 + down_s)]


def test_time_not_observed_is_neither_quiet_nor_a_rise():
    """A restart's 10 s down, read as time without arrivals, gives Poisson a burst index near bursty traffic's
    (docs/granularity.md: 0.14 over a 90-s horizon) and a rate a ninth low; with the span unseen, neither."""
    blind = [observe_load(restarted(10.0, seed), 120.0, 90.0, BURST_SCALE_S) for seed in range(100)]
    told = [observe_load(restarted(10.0, seed), 120.0, 90.0, BURST_SCALE_S, [(60.0, 70.0)]) for seed in range(100)]
    assert np.mean([credible_burst(x) for x in blind]) > 0.08
    assert np.mean([credible_burst(x) for x in told]) < 0.01
    assert np.mean([x.rate for x in blind]) == pytest.approx(12.0 * 8 / 9, rel=0.03)
    assert np.mean([x.rate for x in told]) == pytest.approx(12.0, rel=0.03)
    assert told[0].unseen_s == 10.0 and told[0].window_s == 90.0 and blind[0].unseen_s == 0.0
    assert np.mean([x.scv for x in told]) == pytest.approx(1.0, abs=0.05)  # the hole is no gap between arrivals
    assert np.mean([x.scv for x in blind]) > 1.3


def test_rises_are_read_within_runs_of_neighbouring_bins_only():
    assert burst_index_of_counts([[1, 1, 5, 5]]) == pytest.approx((16 / 3 - 3) / 9)
    assert burst_index_of_counts([[1, 1], [5, 5]]) == pytest.approx(-3 / 9)  # no rise within either run
    assert math.isnan(burst_index_of_counts([[1], [5], [5]]))  # no two neighbours
    assert math.isnan(burst_index_of_counts([[0, 0, 0]])) and math.isnan(burst_index_of_counts([]))
    # a bin that a hole overlaps is left out; with every bin unseen there is nothing to read
    t = np.arange(0.0, 60.0, 0.1)
    assert burst_index(t, 60.0, 60.0, 10.0, [(25.0, 26.0)]) == pytest.approx(-0.01, abs=1e-9)
    assert math.isnan(burst_index(t, 60.0, 60.0, 10.0, [(0.0, 60.0)]))


def test_unseen_spans_are_clipped_merged_and_checked():
    assert merged_unseen([(5.0, 8.0), (-3.0, 1.0), (7.0, 9.0), (20.0, 30.0), (4.0, 4.0)], 0.0, 25.0) == [
        (0.0, 1.0),
        (5.0, 9.0),
        (20.0, 25.0),
    ]
    for bad in [(2.0, 1.0), (math.nan, 1.0), (0.0, math.inf)]:
        with pytest.raises(ValueError, match="unseen span"):
            observe_load([1.0], 10.0, 10.0, unseen=[bad])
    whole = observe_load([1.0, 2.0], 10.0, 10.0, unseen=[(0.0, 10.0)])
    assert whole.rate == 0.0 and whole.unseen_s == 10.0
