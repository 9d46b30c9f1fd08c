"""Synthetic arrival processes: seeded, sorted, and at the rates asked for."""

import numpy as np
import pytest

from shoal.workload import generators as g


def test_poisson_rate_and_determinism():
    t = g.poisson(100.0, 100.0, seed=1)
    assert abs(len(t) - 10_000) < 4 * 100  # 4 sigma
    assert np.array_equal(t, g.poisson(100.0, 100.0, seed=1))
    assert np.all(np.diff(t) >= 0) and t.min() >= 0 and t.max() < 100.0
    gaps = np.diff(t)
    assert np.std(gaps) / np.mean(gaps) == pytest.approx(1.0, abs=0.05)  # exponential gaps


def test_mmpp_is_burstier_than_poisson():
    t = g.mmpp([5.0, 200.0], [20.0, 2.0], 2000.0, seed=2)
    counts = np.histogram(t, bins=np.arange(0, 2001, 1.0))[0]
    assert counts.var() / counts.mean() > 5  # index of dispersion well above Poisson's 1


@pytest.mark.parametrize(
    ("peak", "share", "scv"),
    [(4.0, 1 / 3, 2.0), (1.0, 1 / 3, 1.0), (8.0, 1 / 3, 2 * 17 * 10 / 72 - 1), (8.0, 0.4, 2 * 3.8 * 0.65 - 1)],
)
def test_bursts_have_the_mean_rate_and_the_gap_scv_of_their_shape(peak, share, scv):
    t = g.bursts(20.0, 40_000.0, cycle_s=60.0, peak=peak, seed=5, share=share)
    assert len(t) / 40_000.0 == pytest.approx(20.0, rel=0.03)
    gaps = np.diff(t)
    assert gaps.var() / gaps.mean() ** 2 == pytest.approx(scv, rel=0.08)
    assert g.bursts_scv(peak, share) == pytest.approx(scv)
    with pytest.raises(ValueError, match="peak"):
        g.bursts(20.0, 10.0, cycle_s=6.0, peak=0.5)
    with pytest.raises(ValueError, match="share"):
        g.bursts(20.0, 10.0, cycle_s=6.0, share=1.0)
    with pytest.raises(ValueError, match="cycle_s"):
        g.bursts(20.0, 10.0, cycle_s=0.0)


def test_diurnal_peaks_where_asked():
    t = g.diurnal(10.0, 86_400.0, amplitude=0.8, peak_at_s=43_200.0, seed=3)
    per_hour = np.histogram(t, bins=24, range=(0, 86_400))[0]
    assert int(np.argmax(per_hour)) in (11, 12)
    assert per_hour.sum() == pytest.approx(864_000, rel=0.02)


def test_ramp_grows():
    t = g.ramp(0.0, 100.0, 100.0, seed=4)
    first, second = (t < 50).sum(), (t >= 50).sum()
    assert second > 2.5 * first


def test_refuses_bad_rates():
    with pytest.raises(ValueError, match="rate"):
        g.poisson(-1.0, 10.0)
    with pytest.raises(ValueError, match="amplitude"):
        g.diurnal(1.0, 10.0, amplitude=2.0)


def test_the_burst_index_of_bursts_is_rate_free_and_matches_long_samples():
    """``bursts_index`` is the process's (policy.arrivals): the same at every mean rate, 0 without bursts, and what
    a long sample gives."""
    from shoal.policy.arrivals import burst_index

    assert g.bursts_index(4.0, 180.0, 10.0) == pytest.approx(0.0694, abs=1e-4)
    assert g.bursts_index(1.0, 180.0, 10.0) == 0.0
    assert g.bursts_index(8.0, 180.0, 10.0) > g.bursts_index(4.0, 180.0, 10.0) > g.bursts_index(4.0, 600.0, 10.0)
    for rate in (5.0, 200.0):
        t = g.bursts(rate, 180.0 * 300, 180.0, seed=7)
        assert burst_index(t, t[-1], 180.0 * 299, 10.0) == pytest.approx(g.bursts_index(), rel=0.15)
    t = g.bursts(20.0, 25.0 * 2000, 25.0, peak=8.0, seed=7, share=0.4)
    assert burst_index(t, t[-1], 25.0 * 1999, 10.0) == pytest.approx(g.bursts_index(8.0, 25.0, 10.0, 0.4), rel=0.15)
    with pytest.raises(ValueError, match="two-state"):
        g.mmpp_burst_index([1.0, 2.0, 3.0], [1.0, 1.0, 1.0], 10.0)
    with pytest.raises(ValueError, match="no arrivals"):
        g.mmpp_burst_index([0.0, 0.0], [1.0, 1.0], 10.0)
    with pytest.raises(ValueError, match="cycle_s"):
        g.bursts_index(4.0, 0.0)


def test_fit_bursts_recovers_peak_cycle_and_share_from_an_hour_of_traffic():
    """An hour of traffic pins a burst shape's peak, cycle and share (over seeds 5-7: within 15 % of the peak, 25 %
    of the cycle and 0.06 of the share), with a misfit near 1, including the shape that the index curve alone had
    read as 4.7x in 20-s cycles (bursts 40 % of 25-s cycles at 8x: BENCHMARKS.md §12i); traffic silent between
    bursts has the sharpest peak reported; a load that never bursts gives nothing to fit."""
    from shoal.policy.arrivals import burst_curve

    def fit(t, seconds):
        return g.fit_bursts(t, seconds, ((x.scale_s, x.index, x.noise, x.bins) for x in burst_curve(t, seconds)))

    for peak, cycle, share, rate in ((8.0, 25.0, 0.4, 6.0), (3.0, 60.0, 1 / 3, 40.0), (6.0, 40.0, 0.1, 10.0)):
        for seed in (5, 6, 7):
            shape = fit(g.bursts(rate, 3600.0, cycle, peak=peak, seed=seed, share=share), 3600.0)
            assert shape is not None and shape.misfit < 2.0
            assert shape.peak == pytest.approx(peak, rel=0.15) and shape.cycle_s == pytest.approx(cycle, rel=0.25)
            assert shape.share == pytest.approx(share, abs=0.06)
    on_off = fit(g.mmpp([0.0, 20.0], [20.0, 10.0], 3600.0, seed=5), 3600.0)
    assert on_off is not None and on_off.peak == g.MAX_PEAK and on_off.share == pytest.approx(1 / 3, abs=0.05)
    assert fit(g.poisson(10.0, 1800.0, seed=5), 1800.0) is None
    with pytest.raises(ValueError, match="noise"):
        g.fit_bursts([], 10.0, [(10.0, 0.1, 0.0, 100)])
    with pytest.raises(ValueError, match="seconds"):
        g.fit_bursts([], 0.0, [(10.0, 0.1, 0.01, 100)])
