"""``shoal measure`` then ``shoal plan``: measured on the real runtime, then the cheapest plan meeting the SLO."""

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from shoal.cli import cli
from shoal.cli.planning import spread_notes
from shoal.policy.arrivals import BURST_SCALE_S, observe_load
from shoal.predict.measured import MeasuredPredictor, Measurement
from shoal.workload.generators import bursts, bursts_index, bursts_scv, poisson

PACED = str(Path(__file__).parent / "runtime" / "apps_for_tests.py") + ":paced"
runner = CliRunner()


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("measured") / "paced.json"
    args = ["measure", PACED, "--plan", "fine", "--plan", "coarse", "--rates", "5,20", "--seconds", "2"]
    r = runner.invoke(cli, [*args, "--slo", "p99:1s", "--out", str(out)])
    assert r.exit_code == 0, r.output
    return out


def test_measure_writes_one_row_per_plan_and_rate(table):
    m = MeasuredPredictor.load(table)
    assert m.slo == "p99:1000ms"
    # 2-s Poisson runs at 5 and 20 req/s: the measured rates are near those
    assert sorted((r.plan, r.rate > 12) for r in m.rows) == [
        ("coarse", False),
        ("coarse", True),
        ("fine", False),
        ("fine", True),
    ]
    assert all(r.slo_hit == 1.0 and r.cost_per_s > 0 for r in m.rows)
    fine = {r.rate > 12: r.cost_per_s for r in m.rows if r.plan == "fine"}
    coarse = {r.rate > 12: r.cost_per_s for r in m.rows if r.plan == "coarse"}
    assert fine[False] > coarse[False]  # four warm functions cost more than one


def test_plan_chooses_the_cheapest_plan_that_meets_the_target_and_says_why(table):
    r = runner.invoke(
        cli, ["plan", PACED, "--rate", "10", "--slo", "p99:1s", "--measured", str(table), "--output", "json"]
    )
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["chosen"] == "coarse" and "cheapest" in doc["why"]
    assert [c["plan"] for c in doc["candidates"]] == ["coarse", "fine"]
    assert len(doc["not_scored"]) > 0  # the paced app has more groupings than the two measured
    text = runner.invoke(cli, ["plan", PACED, "--rate", "10", "--slo", "p99:1s", "--measured", str(table)])
    assert text.exit_code == 0 and "chosen: coarse" in text.output


def test_plan_picks_the_highest_hit_rate_when_nothing_meets_the_target(tmp_path):
    rows = [Measurement("fine", 10, 1, 0.9, 2.0, 900), Measurement("coarse", 10, 1, 0.5, 1.0, 3000)]
    path = MeasuredPredictor(rows, slo="p99:1000ms").save(tmp_path / "t.json")
    r = runner.invoke(
        cli, ["plan", PACED, "--rate", "10", "--slo", "p99:1s", "--measured", str(path), "--output", "json"]
    )
    doc = json.loads(r.output)
    assert doc["chosen"] == "fine" and "no plan is predicted to meet" in doc["why"]


def test_plan_burst_prices_the_load_by_the_tables_bursty_rows(tmp_path):
    """Coarse is cheaper under Poisson load, but misses under bursts (index 0.2): stated with --burst, fine is
    chosen; a table without bursty rows, or no table, is refused with what to do."""
    rows = [
        Measurement("fine", 10, 1.0, 1.0, 2.0, 100, burst=0.0),
        Measurement("coarse", 10, 1.0, 1.0, 1.0, 100, burst=0.0),
        Measurement("fine", 10, 3.0, 0.995, 2.2, 300, burst=0.2),
        Measurement("coarse", 10, 3.0, 0.9, 1.3, 3000, burst=0.2),
    ]
    path = MeasuredPredictor(rows, slo="p99:1000ms", burst_scale_s=10.0).save(tmp_path / "b.json")
    args = ["plan", PACED, "--rate", "10", "--slo", "p99:1s", "--measured", str(path)]
    steady = json.loads(runner.invoke(cli, [*args, "--output", "json"]).output)
    assert steady["chosen"] == "coarse"
    r = runner.invoke(cli, [*args, "--burst", "0.2", "--output", "json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["chosen"] == "fine" and doc["load"]["burst"] == 0.2
    assert [c.get("burst_used") for c in doc["candidates"]] == [0.25, 0.25]
    text = runner.invoke(cli, [*args, "--burst", "0.2"])
    assert text.exit_code == 0 and "burst index 0.2" in text.output
    poisson = MeasuredPredictor(rows[:2], slo="p99:1000ms", burst_scale_s=10.0).save(tmp_path / "p.json")
    r = runner.invoke(cli, [*args[:-1], str(poisson), "--burst", "0.2"])
    assert r.exit_code != 0 and "has none: measure with `shoal measure --bursty-like" in r.output
    r = runner.invoke(cli, [*args, "--burst", "-1"])
    assert r.exit_code != 0 and "--burst takes a burst index >= 0" in r.output
    r = runner.invoke(cli, ["plan", PACED, "--rate", "10", "--profile", "p.json", "--burst", "0.2"])
    assert r.exit_code != 0 and "give --measured TABLE.json" in r.output


def test_plan_refuses_a_table_scored_against_another_slo_and_says_what_to_do(table):
    r = runner.invoke(cli, ["plan", PACED, "--rate", "10", "--slo", "p99:50ms", "--measured", str(table)])
    assert r.exit_code != 0 and "measure again with --slo p99:50ms" in r.output
    r = runner.invoke(cli, ["plan", PACED, "--rate", "10"])
    assert r.exit_code != 0 and "--measured" in r.output
    r = runner.invoke(cli, ["measure", PACED, "--rates", "5,x"])
    assert r.exit_code != 0 and "comma-separated numbers" in r.output


def test_serve_adaptive_refuses_a_table_without_the_served_plan(tmp_path):
    rows = [Measurement("coarse", 10, 1, 1.0, 1.0, 10)]
    path = MeasuredPredictor(rows, slo="p99:200ms").save(tmp_path / "t.json")
    r = runner.invoke(cli, ["serve", PACED, "--plan", "fine", "--adaptive", str(path)])
    assert r.exit_code != 0 and "no measurement of the served plan 'fine'" in r.output
    r = runner.invoke(cli, ["serve", PACED, "--adaptive", str(tmp_path / "missing.json")])
    assert r.exit_code != 0 and "cannot read measured table" in r.output
    rows.append(Measurement("fine", 10, 1, 1.0, 2.0, 10))
    path = MeasuredPredictor(rows, slo="p99:200ms").save(tmp_path / "both.json")
    r = runner.invoke(cli, ["serve", PACED, "--plan", "fine", "--adaptive", str(path), "--adaptive-horizon", "5"])
    assert r.exit_code != 0 and "--adaptive-horizon must be 0 (off) or at least --adaptive-window" in r.output
    r = runner.invoke(cli, ["serve", PACED, "--plan", "fine", "--adaptive", str(path), "--adaptive-emergency", "11"])
    assert r.exit_code != 0 and "--adaptive-emergency must be 0 (off) or in (0, --adaptive-window" in r.output
    r = runner.invoke(cli, ["serve", PACED, "--plan", "fine", "--adaptive", str(path), "--adaptive-forecast", "20"])
    assert r.exit_code != 0 and "--adaptive-forecast must be 0 (off) or at least 16 s and 3 windows (30 s)" in r.output
    r = runner.invoke(cli, ["serve", PACED, "--plan", "fine", "--adaptive", str(path), "--adaptive-horizon-as", "x"])
    assert r.exit_code != 0 and "--adaptive-horizon-as takes mix or load" in r.output
    r = runner.invoke(cli, ["serve", PACED, "--plan", "fine", "--adaptive", str(path), "--adaptive-horizon-as", "load"])
    assert r.exit_code != 0 and "needs a horizon: add --adaptive-horizon" in r.output
    r = runner.invoke(
        cli, ["serve", PACED, "--plan", "fine", "--adaptive", str(path), "--adaptive-expect-burst", "0.2"]
    )
    assert r.exit_code != 0 and "--adaptive-expect-burst takes a number >= 0 and a horizon priced" in r.output
    r = runner.invoke(cli, ["serve", PACED, "--plan", "fine", "--adaptive", str(path), "--adaptive-expect-rate", "-1"])
    assert r.exit_code != 0 and "--adaptive-expect-rate takes a number >= 0" in r.output
    serve = ["serve", PACED, "--plan", "fine"]
    r = runner.invoke(cli, [*serve, "--adaptive-history", str(tmp_path / "a.npy")])
    assert r.exit_code != 0 and "add --adaptive TABLE.json or --adaptive-profile" in r.output
    r = runner.invoke(cli, [*serve, "--adaptive", str(path), "--adaptive-history", str(tmp_path / "a.npy")])
    assert r.exit_code != 0 and "with neither, the loop reads one window only" in r.output
    r = runner.invoke(
        cli, [*serve, "--adaptive", str(path), "--adaptive-forecast", "60", "--adaptive-history", "/nope/a"]
    )
    assert r.exit_code != 0 and "no folder /nope for the arrival log" in r.output
    r = runner.invoke(cli, [*serve, "--adaptive-meter"])
    assert r.exit_code != 0 and "--adaptive-meter prices the adaptive loop's plans: add --adaptive" in r.output
    r = runner.invoke(cli, [*serve, "--adaptive-explore"])
    assert r.exit_code != 0 and "--adaptive-explore prices the adaptive loop's plans: add --adaptive" in r.output


def test_measure_bursty_cycle_adds_a_bursty_row_per_plan_and_rate(tmp_path):
    """Each rate also under bursty load; the row's burstiness is its process's (SCV 2), the run file its own."""
    out, runs = tmp_path / "t.json", tmp_path / "runs"
    args = ["measure", PACED, "--plan", "coarse", "--rates", "20", "--seconds", "6", "--bursty-cycle", "3"]
    r = runner.invoke(cli, [*args, "--slo", "p99:1s", "--out", str(out), "--runs-out", str(runs)])
    assert r.exit_code == 0, r.output
    table = MeasuredPredictor.load(out)
    rows = sorted((m.scv, m.burst) for m in table.rows)
    assert rows[0] == (1.0, 0.0) and rows[1] == pytest.approx((2.0, bursts_index(cycle_s=3.0)))
    assert table.burst_scale_s == BURST_SCALE_S
    kept = {p.name.split("-")[1]: json.loads(p.read_text()) for p in runs.iterdir()}
    assert sorted(kept) == ["bursty", "poisson"] and kept["bursty"]["load"] == "bursty"
    arrived = np.asarray(kept["bursty"]["run"]["arrival_s"])
    np.testing.assert_allclose(arrived, bursts(20, 6, 3.0, seed=0), atol=0.25)  # the bursts were sent as drawn
    r = runner.invoke(cli, [*args[:-2], "--bursty-cycle", "-1"])
    assert r.exit_code != 0 and "--bursty-cycle must be 0 (off)" in r.output
    r = runner.invoke(cli, [*args, "--bursty-peak", "0.5"])
    assert r.exit_code != 0 and "--bursty-peak must be a number >= 1" in r.output


def test_measure_bursty_peak_and_share_set_the_bursts_shape(tmp_path):
    """Sharper, longer bursts, as the user sees them: sent as drawn with that peak and share, the row at that
    shape's SCV and index; a share outside (0, 1) is refused."""
    out, runs = tmp_path / "t.json", tmp_path / "runs"
    args = ["measure", PACED, "--plan", "coarse", "--rates", "20", "--seconds", "6", "--bursty-cycle", "3"]
    shape = ["--bursty-peak", "8", "--bursty-share", "0.4"]
    r = runner.invoke(cli, [*args, *shape, "--slo", "p99:1s", "--out", str(out), "--runs-out", str(runs)])
    assert r.exit_code == 0, r.output
    bursty = [m for m in MeasuredPredictor.load(out).rows if m.scv != 1.0]
    assert [(m.scv, m.burst) for m in bursty] == [(bursts_scv(8.0, 0.4), bursts_index(8.0, 3.0, share=0.4))]
    assert bursts_scv(8.0, 0.4) != bursts_scv(8.0)
    kept = next(json.loads(p.read_text()) for p in runs.iterdir() if "bursty" in p.name)
    drawn = bursts(20, 6, 3.0, peak=8.0, seed=0, share=0.4)
    np.testing.assert_allclose(kept["run"]["arrival_s"], drawn, atol=0.25)
    r = runner.invoke(cli, [*args, "--bursty-share", "1"])
    assert r.exit_code != 0 and "--bursty-share must be between 0 and 1" in r.output


def test_measure_bursty_like_fits_the_bursts_of_the_users_traffic(tmp_path):
    """Bursts shaped like a trace the user has (Azure LLM 2023 format: half an hour of 6x bursts, 40 % of 25-s
    cycles):
    the shape is fitted, said, and measured; traffic without bursts, or too little of it, is refused with what to do."""
    from datetime import datetime, timedelta

    from shoal.policy.arrivals import burst_curve, credible_burst, observe_load
    from shoal.workload.generators import fit_bursts

    times = bursts(10.0, 1800.0, 25.0, peak=6.0, seed=5, share=0.4)
    start = datetime(2023, 11, 16, 18, 0, 0)
    lines = [f"{(start + timedelta(seconds=float(t))).isoformat(sep=' ')},100,10" for t in times]
    trace = tmp_path / "yesterday.csv"
    trace.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n" + "\n".join(lines) + "\n", encoding="utf-8")
    rebased, span = times - times[0], times[-1] - times[0]  # the reader re-bases the trace to its first arrival
    curve = burst_curve(rebased, span)
    shape = fit_bursts(rebased, span, ((x.scale_s, x.index, x.noise, x.bins) for x in curve))
    assert shape is not None and 4.5 < shape.peak < 7.5 and 18.0 < shape.cycle_s < 32.0 and 0.3 < shape.share < 0.55
    out = tmp_path / "t.json"
    args = ["measure", PACED, "--plan", "coarse", "--rates", "20", "--seconds", "6", "--slo", "p99:1s"]
    r = runner.invoke(cli, [*args, "--bursty-like", str(trace), "--out", str(out)])
    assert r.exit_code == 0, r.output
    said = f"bursts in {trace}: {shape.peak:.2f}x the quiet rate, {shape.share:.0%} of {shape.cycle_s:.1f}-s cycles"
    assert said in r.output
    said = r.output.split("own mean rate and burst index at 10 s: ")[1]
    assert float(said.split(" req/s, ")[0]) == pytest.approx(len(times) / span, rel=0.01)
    own = credible_burst(observe_load(rebased, span, span, BURST_SCALE_S))  # this sample's, less Poisson noise
    assert float(said.split(" req/s, ")[1][:5]) == pytest.approx(own, abs=0.001) and own > 0.1
    bursty = [m for m in MeasuredPredictor.load(out).rows if m.scv != 1.0]
    process = (bursts_scv(shape.peak, shape.share), bursts_index(shape.peak, shape.cycle_s, share=shape.share))
    assert [(m.scv, m.burst) for m in bursty] == [process]
    r = runner.invoke(cli, [*args, "--bursty-like", "poisson:10:1800"])
    assert r.exit_code != 0 and "no bursts in this traffic" in r.output and "measure Poisson load only" in r.output
    r = runner.invoke(cli, [*args, "--bursty-like", "poisson:0.1:20"])
    assert r.exit_code != 0 and "too few to read bursts from" in r.output
    r = runner.invoke(cli, [*args, "--bursty-like", str(trace), "--bursty-cycle", "3"])
    assert r.exit_code != 0 and "not both" in r.output
    r = runner.invoke(cli, [*args, "--bursty-like", str(tmp_path / "missing.csv")])
    assert r.exit_code != 0 and "--bursty-like: cannot read load" in r.output


def test_measure_repeats_on_other_seeds_and_settles_before_measuring(tmp_path):
    """Two repeats on seeds 3 and 4, each run 2 s of settling then 3 s measured: one row per repeat (the table
    averages them), each run sent as its seed's arrivals over the 5 s, and each row's rate the measured window's
    alone (the settling seconds left out)."""
    out, runs = tmp_path / "t.json", tmp_path / "runs"
    args = ["measure", PACED, "--plan", "coarse", "--rates", "20", "--seconds", "3", "--slo", "p99:1s"]
    more = ["--settle", "2", "--repeats", "2", "--seed", "3", "--out", str(out), "--runs-out", str(runs)]
    r = runner.invoke(cli, [*args, *more])
    assert r.exit_code == 0, r.output
    assert "wrote" in r.output and "(2 runs" in r.output
    rows = MeasuredPredictor.load(out).rows
    assert len(rows) == 2 and all(m.plan == "coarse" for m in rows)
    kept = {int(p.name.split("-")[3]): json.loads(p.read_text()) for p in runs.iterdir()}
    assert sorted(kept) == [3, 4]
    rates = []
    for seed in (3, 4):
        sent = np.asarray(kept[seed]["run"]["arrival_s"])
        np.testing.assert_allclose(sent, poisson(20, 5.0, seed=seed), atol=0.25)  # each repeat its seed's arrivals
        after, first = observe_load(sent, 5.0, 3.0).rate, observe_load(sent, 3.0, 3.0).rate
        assert after != first  # the settled window and the first 3 s tell apart
        rates.append(after)
    assert sorted(m.rate for m in rows) == pytest.approx(sorted(rates))
    r = runner.invoke(cli, [*args, "--repeats", "0"])
    assert r.exit_code != 0 and "--repeats must be 1 or more" in r.output
    r = runner.invoke(cli, [*args, "--settle", "-1"])
    assert r.exit_code != 0 and "--settle must be 0 or a number of seconds" in r.output


def test_spread_notes_say_where_repeats_disagree_and_what_to_do():
    costs = {
        ("coarse", "poisson", 12.0): [0.101 / 3600, 0.147 / 3600],  # one instance in one run, two in the other
        ("fine", "poisson", 12.0): [0.200 / 3600, 0.205 / 3600],  # within 10 %: nothing to say
    }
    notes = spread_notes(costs)
    assert len(notes) == 2
    assert notes[0] == (
        "coarse at 12 req/s (poisson): cost 0.1010-0.1470 USD/h over 2 repeats (+46%); the table holds their mean"
    )
    assert "more --repeats or longer --seconds" in notes[1]
    assert spread_notes({("fine", "poisson", 12.0): [0.2, 0.2]}) == []
