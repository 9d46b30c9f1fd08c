"""The empirical application predictor over measured (plan, load) -> outcome rows."""

from __future__ import annotations

import dataclasses
import json
import math
from types import SimpleNamespace

import pytest

from shoal.predict.measured import MeasuredError, MeasuredPredictor, Measurement, credible_scv


def rows():
    return [
        Measurement("fine", 10, 1.0, 0.999, 2.0, 50),
        Measurement("fine", 40, 1.0, 0.995, 3.0, 80),
        Measurement("coarse", 10, 1.0, 1.0, 1.0, 40),
        Measurement("coarse", 40, 1.0, 0.90, 1.6, 300),
        Measurement("coarse", 40, 1.0, 0.80, 1.8, 500),  # a repeat: averaged
        Measurement("coarse", 40, 4.0, 0.60, 1.9, 900),  # bursty load
    ]


def load(rate, scv=1.0):
    return SimpleNamespace(rate=rate, scv=scv)


def test_measured_points_come_back_and_between_them_it_is_linear_in_rate():
    p = MeasuredPredictor(rows())
    assert p.predict("fine", load(10)).slo_hit == 0.999
    s = p.predict("coarse", load(40))
    assert s.slo_hit == pytest.approx(0.85) and s.cost_per_s == pytest.approx(1.7)
    mid = p.predict("coarse", load(25))
    assert mid.slo_hit == pytest.approx((1.0 + 0.85) / 2) and mid.cost_per_s == pytest.approx((1.0 + 1.7) / 2)
    assert not mid.details["extrapolated"]


def test_outside_the_measured_rates_it_clamps_below_and_extrapolates_above():
    p = MeasuredPredictor(rows())
    assert p.predict("coarse", load(2)).cost_per_s == 1.0
    far = p.predict("coarse", load(400))
    assert far.details["extrapolated"] and far.slo_hit == 0.0  # the trend, clamped
    assert far.cost_per_s > 1.7


def test_between_burstiness_classes_it_is_linear_in_log_scv_and_beyond_them_the_nearest():
    p = MeasuredPredictor(rows())
    assert p.predict("coarse", load(40, scv=5.0)).slo_hit == pytest.approx(0.60)
    assert p.predict("coarse", load(40, scv=0.5)).slo_hit == pytest.approx(0.85)
    assert p.predict("coarse", load(40, scv=1.0)).slo_hit == pytest.approx(0.85)
    between = p.predict("coarse", load(40, scv=2.0))  # halfway from 1 to 4 in log SCV
    assert between.slo_hit == pytest.approx((0.85 + 0.60) / 2) and between.cost_per_s == pytest.approx((1.7 + 1.9) / 2)
    assert between.details["scv_used"] == [1.0, 4.0] and between.details["scv_weight"] == pytest.approx(0.5)
    # fine has Poisson rows only: every load is answered from them
    assert p.predict("fine", load(40, scv=8.0)).slo_hit == pytest.approx(0.995)
    assert p.predict("coarse", load(40, scv=float("nan"))).details["scv_used"] == 1.0


def test_a_class_sits_at_its_rows_measured_scv():
    """Bursty rows measured at SCV 3 and 5 (one class, 4) sit at their geometric mean, 3.87: a load of that SCV
    gets their figures, not a blend with the Poisson rows."""
    rows = [
        Measurement("p", 10, 1.0, 1.0, 1.0, 40),
        Measurement("p", 10, 3.0, 0.9, 2.0, 90),
        Measurement("p", 10, 5.0, 0.9, 2.0, 90),
    ]
    p = MeasuredPredictor(rows)
    assert p.predict("p", load(10, scv=15**0.5)).slo_hit == pytest.approx(0.9)
    assert p.predict("p", load(10, scv=1.5)).slo_hit == pytest.approx(1.0 - 0.1 * math.log(1.5) / math.log(15**0.5))


def test_an_unmeasured_plan_is_refused_with_what_to_do():
    with pytest.raises(MeasuredError, match=r"no measurement of plan 'a\+b,c'.*Measure it"):
        MeasuredPredictor(rows()).predict("a+b,c", load(10))


def test_tables_round_trip_as_json_and_bad_files_are_refused(tmp_path):
    p = MeasuredPredictor(rows())
    path = p.save(tmp_path / "m.json")
    q = MeasuredPredictor.load(path)
    assert q.predict("coarse", load(25)) == p.predict("coarse", load(25))
    (tmp_path / "bad.json").write_text(json.dumps({"schema": "other"}))
    with pytest.raises(MeasuredError, match=r"not a shoal\.measured/1"):
        MeasuredPredictor.load(tmp_path / "bad.json")
    (tmp_path / "bad2.json").write_text(json.dumps({"schema": "shoal.measured/1", "rows": [{"plan": "x"}]}))
    with pytest.raises(MeasuredError, match="malformed"):
        MeasuredPredictor.load(tmp_path / "bad2.json")
    with pytest.raises(MeasuredError, match="slo_hit"):
        Measurement("x", 1, 1, 1.5, 1, 1)


def test_poisson_rows_whose_measured_scv_scatters_are_one_group():
    """SCVs measured over short Poisson runs (1.16, 0.89, 0.82) are all Poisson: interpolate in rate across them."""
    rows = [
        Measurement("coarse", 2, 1.161, 1.0, 1.0, 40),
        Measurement("coarse", 8, 0.889, 1.0, 1.0, 70),
        Measurement("coarse", 16, 0.824, 0.96, 1.6, 230),
    ]
    p = MeasuredPredictor(rows)
    assert p.predict("coarse", load(7.0, scv=0.82)).slo_hit == 1.0
    assert p.predict("coarse", load(12.0, scv=1.3)).slo_hit == pytest.approx(0.98)


def test_an_observed_scv_is_discounted_by_its_sampling_noise():
    """A steady window's SCV of 1.1 over 1,200 gaps is noise (two standard errors: 0.16): priced as Poisson; a
    horizon's 2.9 over 15,000 is burstiness; a load stated without a count is taken as given."""
    p = MeasuredPredictor(rows())
    assert p.predict("coarse", SimpleNamespace(rate=40, scv=1.1, count=1200)).slo_hit == pytest.approx(0.85)
    assert p.predict("coarse", SimpleNamespace(rate=40, scv=1.1)).slo_hit < 0.85
    assert credible_scv(1.1, 1200) == 1.0 and credible_scv(0.9, 1200) == 1.0
    assert credible_scv(2.9, 15_000) == pytest.approx(2.9 - 2 * (8 / 15_000) ** 0.5)
    assert credible_scv(0.5, 1000) == pytest.approx(0.5 + 2 * (8 / 1000) ** 0.5) and credible_scv(0.5, 100) == 1.0
    assert credible_scv(3.0, None) == 3.0


def burst_rows():
    """Poisson rows (index 0) and bursty rows (index 0.07, SCV 2) of one plan, at two rates."""
    return [
        Measurement("p", 10, 1.0, 1.00, 1.0, 40, burst=0.0),
        Measurement("p", 40, 1.0, 0.99, 2.0, 80, burst=0.0),
        Measurement("p", 10, 2.0, 0.90, 1.5, 90, burst=0.07),
        Measurement("p", 40, 2.0, 0.70, 3.0, 400, burst=0.07),
    ]


def test_with_burst_indices_it_is_linear_in_the_index_and_the_scv_is_not_used():
    """A load with a burst index at the table's scale is priced by it: between classes linearly, beyond the bursty
    class that class's figures; a drifting load (SCV 1.3, index 0) is Poisson, which by SCV it was not."""
    p = MeasuredPredictor(burst_rows(), burst_scale_s=10.0)
    at = dict(rate=40, burst_scale_s=10.0)
    assert p.predict("p", SimpleNamespace(**at, scv=1.3, burst=0.0)).slo_hit == pytest.approx(0.99)
    half = p.predict("p", SimpleNamespace(**at, scv=1.0, burst=0.035))
    assert half.slo_hit == pytest.approx(0.845) and half.cost_per_s == pytest.approx(2.5)
    assert half.details["burst_used"] == [0.0, 0.0625] and half.details["burst_weight"] == pytest.approx(0.5)
    assert p.predict("p", SimpleNamespace(**at, scv=1.0, burst=0.5)).slo_hit == pytest.approx(0.70)
    by_scv = p.predict("p", SimpleNamespace(rate=40, scv=1.3))  # no index: by SCV, as before
    assert by_scv.slo_hit < 0.99 and "scv_used" in by_scv.details
    other_scale = p.predict("p", SimpleNamespace(rate=40, scv=1.0, burst=0.5, burst_scale_s=30.0))
    assert other_scale.slo_hit == pytest.approx(0.99) and "scv_used" in other_scale.details


def test_an_observed_burst_index_is_discounted_by_its_sampling_noise():
    """Observed over 600 s at 2 req/s (20 per 10-s bin), an index of 0.02 is within Poisson noise (3 standard errors:
    0.039): priced as Poisson; the same index over 10,000 arrivals per bin is a burst."""
    from shoal.policy.arrivals import ObservedLoad

    p = MeasuredPredictor(burst_rows(), burst_scale_s=10.0)
    quiet = ObservedLoad(2.0, 1.0, 1200, 600.0, burst=0.02, burst_scale_s=10.0)
    assert p.predict("p", quiet).slo_hit == pytest.approx(1.0)
    busy = ObservedLoad(1000.0, 1.0, 600_000, 600.0, burst=0.02, burst_scale_s=10.0)
    assert p.predict("p", busy).details["burst_weight"] == pytest.approx((0.02 - 3 * 2 / 59**0.5 / 10_000) / 0.07)


def test_an_expected_burst_index_is_priced_where_too_little_has_been_seen_to_read_one():
    """A horizon of one 10-s bin has no index of its own (NaN); with an expectation of 0.07 at weight 0.95 it is
    priced at 0.0665, near the bursty class; without one, by SCV."""
    from shoal.policy.arrivals import ObservedLoad

    p = MeasuredPredictor(burst_rows(), burst_scale_s=10.0)
    unread = ObservedLoad(40.0, 1.0, 400, 10.0, burst=math.nan, burst_scale_s=10.0)
    assert "scv_used" in p.predict("p", unread).details
    expected = dataclasses.replace(unread, expected_burst=0.07, expected_weight=0.95)
    assert p.predict("p", expected).details["burst_weight"] == pytest.approx(0.0665 / 0.07)


def test_tables_with_burst_indices_round_trip_and_need_their_scale(tmp_path):
    p = MeasuredPredictor(burst_rows(), slo="p99:100ms", burst_scale_s=10.0)
    doc = json.loads(p.save(tmp_path / "b.json").read_text())
    assert doc["burst_scale_s"] == 10.0 and doc["rows"][2]["burst"] == 0.07
    q = MeasuredPredictor.load(tmp_path / "b.json")
    load = SimpleNamespace(rate=25, scv=1.0, burst=0.02, burst_scale_s=10.0)
    assert q.burst_scale_s == 10.0 and q.predict("p", load) == p.predict("p", load)
    plain = json.loads(MeasuredPredictor(rows()).save(tmp_path / "plain.json").read_text())
    assert "burst_scale_s" not in plain and all("burst" not in r for r in plain["rows"])  # as before indices
    with pytest.raises(MeasuredError, match="burst_scale_s"):
        MeasuredPredictor(burst_rows())
    with pytest.raises(MeasuredError, match="burst must be"):
        Measurement("x", 1, 1, 1, 1, 1, burst=-0.1)


def test_a_plan_whose_rows_lack_burst_indices_is_priced_by_scv():
    """Mixed tables (old rows of one plan, new of another): each plan by what its rows have."""
    mixed = [*burst_rows(), Measurement("q", 40, 1.0, 0.99, 2.0, 80), Measurement("q", 40, 4.0, 0.5, 3.0, 900)]
    p = MeasuredPredictor(mixed, burst_scale_s=10.0)
    load = SimpleNamespace(rate=40, scv=4.0, burst=0.0, burst_scale_s=10.0)
    assert p.predict("p", load).slo_hit == pytest.approx(0.99) and p.predict("q", load).slo_hit == pytest.approx(0.5)
