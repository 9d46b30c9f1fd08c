"""The learned application predictor: the analytical model corrected by trees fitted on observed runs.

The runs come from the simulator (``shoal.sim``), driven by the same hand-written profile the analytical model reads,
on a node whose two cores the instances share (``cpu_contention``): there, calls slow each other down once the load
keeps more than a core or so busy, which the analytical model does not model (docs/predictors.md, "Assumptions").
So the analytical predictor has a real, systematic error on these runs, which the learned one must correct on new
runs of the same kind (other seeds of the arrivals and of the simulator).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from predict_profiles_for_tests import chain, make_profile

from shoal.app import FunctionConfig, Plan
from shoal.predict.analytical import AnalyticalPredictor
from shoal.predict.app_learned import (
    SCHEMA,
    LearnedPredictor,
    ObservedRun,
    features_of,
    observed_run,
    observed_runs,
    run_features,
)
from shoal.predict.app_model import Load, PredictError
from shoal.predict.gpu_trees import tree_sum
from shoal.predict.run_files import EVEN_MIX, read_run_files, run_file_doc
from shoal.runtime.replay import ReplayResult
from shoal.sim import ClusterSpec, Deployment, NodeSpec, SimConfig, Simulator, calibrate
from shoal.workload import generators

APP = chain(2, slo="p99:100ms")
PROFILE = make_profile(APP, {"s0": 20.0, "s1": 20.0}, cv=0.3)
CONFIG = FunctionConfig(keep_alive_s=10.0, max_instances=4)
PLANS = (Plan.fine(APP, default=CONFIG), Plan.coarse(APP, default=CONFIG))
RATES = tuple(range(4, 37, 4))  # req/s: from about 0.15 to 1.4 cores of work on a 2-core node
SECONDS = 60.0


def simulated(plan: Plan, rate: float, seed: int) -> ReplayResult:
    """One run of ``plan`` under Poisson ``rate`` in the simulator, as the runtime's ``ReplayResult`` records it."""
    cal = calibrate(PROFILE)
    cfg = SimConfig(
        tick_s=0.1,
        stable_window_s=10.0,
        panic_window_s=2.0,
        sample_s=1.0,
        seed=seed,
        dispatch_s=cal.dispatch_s,
        cold_start_s=cal.cold_start_s,
    )
    node = NodeSpec(cpus=16, cpu_contention=True, shared_cores=2)
    sim = Simulator(ClusterSpec.uniform(1, node), [Deployment(APP, plan, cal.stages)], cfg)
    r = sim.run(generators.poisson(rate, SECONDS, seed=seed), until=SECONDS + 5)
    arrival = np.asarray(r.t_arrival)
    order = np.argsort(arrival, kind="stable")
    samples = [{"t": t, "cost_usd": c} for t, c in zip(r.series["t"], r.series["cost_usd"], strict=True)]
    status = np.asarray(r.status, dtype=np.int64)[order]
    return ReplayResult(arrival[order], np.asarray(r.latency)[order], status, [plan.label] * len(order), samples)


def runs(first_seed: int) -> list[ObservedRun]:
    out = []
    for i, plan in enumerate(PLANS):
        for j, rate in enumerate(RATES):
            seed = first_seed + 50 * i + j
            res = simulated(plan, rate, seed)
            out.append(observed_run(res, PROFILE, plan, end=SECONDS, source=f"{plan.label}@{rate}/{seed}"))
    return out


@pytest.fixture(scope="module")
def data() -> tuple[list[ObservedRun], list[ObservedRun], LearnedPredictor]:
    train, test = runs(1000), runs(2000)
    return train, test, LearnedPredictor.fit(train, AnalyticalPredictor(samples=5000))


def mean_errors(predictor: object, runs: list[ObservedRun]) -> dict[str, float]:
    """Mean |log(predicted / measured)| of p99 and cost per second, mean |difference| of the SLO hit rate."""
    errs: dict[str, list[float]] = {"p99": [], "cost": [], "slo_hit": []}
    for r in runs:
        p = predictor.predict(r.profile, r.plan, r.load, r.slo)  # type: ignore[attr-defined]
        errs["p99"].append(abs(math.log(p.p99_s / r.p99_s)))
        errs["cost"].append(abs(math.log(p.cost_per_s / r.cost_per_s)))
        errs["slo_hit"].append(abs(p.slo_hit_rate - r.slo_hit))
    return {k: float(np.mean(v)) for k, v in errs.items()}


def test_run_features_come_from_an_analytical_prediction() -> None:
    app = chain(2)
    prof = make_profile(app, {"s0": 1.0, "s1": 1.0})
    f = run_features(AnalyticalPredictor(samples=1000).predict(prof, Plan.fine(app), Load(100)))
    assert f["functions"] == 2 and 0 < f["max_utilisation"] < 1 and f["analytical_p99_s"] > 0


def test_observed_run_reads_what_the_empirical_table_reads() -> None:
    res = simulated(PLANS[0], 12.0, seed=7)
    run = observed_run(res, PROFILE, PLANS[0], end=SECONDS)
    m = res.measurement(APP.slo.latency_s, 0.0, SECONDS)
    assert (run.load.rate_rps, run.load.scv, run.slo_hit, run.cost_per_s) == (m.rate, m.scv, m.slo_hit, m.cost_per_s)
    assert run.p99_s == pytest.approx(m.p99_ms / 1e3)
    assert run.p50_s is not None and run.p95_s is not None and 0 < run.p50_s <= run.p95_s <= run.p99_s
    window = observed_run(res, PROFILE, PLANS[0], start=10.0, end=20.0)
    assert window.load.rate_rps == np.count_nonzero((res.arrival_s >= 10) & (res.arrival_s < 20)) / 10.0


def test_the_analytical_model_is_wrong_on_these_runs_and_the_learned_one_corrects_it(data) -> None:
    """On held-out runs like its training runs (same plans and rates, other seeds), the corrected predictor is more
    accurate than the analytical one it corrects, on every figure, by a wide margin on p99 and cost."""
    _, test, learned = data
    analytical = mean_errors(learned.analytical, test)
    corrected = mean_errors(learned, test)
    assert analytical["p99"] > 0.3 and analytical["cost"] > 0.2  # contention: the analytical model is far off
    assert corrected["p99"] < 0.8 * analytical["p99"]
    assert corrected["cost"] < 0.5 * analytical["cost"]
    assert corrected["slo_hit"] <= analytical["slo_hit"]


def test_predictions_are_a_prediction_with_ordered_percentiles(data) -> None:
    _, test, learned = data
    for r in test:
        p = learned.predict(r.profile, r.plan, r.load, r.slo)
        assert p.predictor == "learned" and 0.0 <= p.slo_hit_rate <= 1.0 and p.cost_per_s > 0
        assert 0 < p.latency_s[50] <= p.latency_s[95] <= p.latency_s[99] < math.inf
        assert p.cost_per_request == pytest.approx(p.cost_per_s / r.load.rate_rps)


def test_a_json_round_trip_predicts_the_same(data, tmp_path) -> None:
    _, test, learned = data
    again = LearnedPredictor.load(learned.save(tmp_path / "learned.json"))
    assert json.loads((tmp_path / "learned.json").read_text())["schema"] == SCHEMA
    assert again.to_dict() == learned.to_dict()
    for r in test:
        a = learned.predict(r.profile, r.plan, r.load, r.slo)
        b = again.predict(r.profile, r.plan, r.load, r.slo)
        assert a.to_dict() == b.to_dict()


def test_the_python_walk_of_the_trees_sums_what_numpy_sums(data) -> None:
    """``corrections`` walks the trees in plain Python (one row at a time is the planner's case); it must give what
    ``gpu_trees.tree_sum``, checked against scikit-learn in test_gpu_predictors.py, gives on the same rows."""
    _, test, learned = data
    for r in test:
        row = features_of(r.plan, learned.analytical.predict(r.profile, r.plan, r.load, r.slo))
        x = np.array([[row[n] for n in learned.feature_names]])
        for target, model in learned.models.items():
            assert model.value(x[0].tolist()) == tree_sum(model.trees, model.baseline, x)[0], target


def test_percentiles_the_runs_lack_take_the_p99_correction(data) -> None:
    train, test, _ = data
    bare = [
        ObservedRun(r.profile, r.plan, r.load, r.slo, r.p99_s, r.slo_hit, r.cost_per_s, source=r.source) for r in train
    ]
    learned = LearnedPredictor.fit(bare, AnalyticalPredictor(samples=2000))
    assert set(learned.models) == {"p99", "cost", "slo_hit"}
    c = learned.corrections(test[0].plan, learned.analytical.predict(PROFILE, test[0].plan, test[0].load))
    assert c["p50"] == c["p95"] == c["p99"]


def test_fitting_refuses_too_few_or_wrong_rows(data) -> None:
    train, _, _ = data
    with pytest.raises(PredictError, match="at least 3 observed runs, got 0"):
        LearnedPredictor.fit([])
    with pytest.raises(PredictError, match="takes ObservedRun rows"):
        LearnedPredictor.fit([*train[:3], {"p99_s": 0.1}])  # type: ignore[list-item]
    with pytest.raises(PredictError, match="unknown features \\['nope'\\]"):
        LearnedPredictor.fit(train[:5], features=["busy_cores", "nope"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"p99_s": math.nan}, "p99_s must be a latency"),
        ({"p99_s": None}, "p99_s must be a latency"),
        ({"p50_s": -1.0}, "p50_s must be a latency"),
        ({"slo_hit": 1.5}, "slo_hit must be a fraction"),
        ({"cost_per_s": math.inf}, "cost_per_s must be a finite number"),
    ],
)
def test_an_observed_run_without_its_figures_is_refused(change, message) -> None:
    figures = {"p99_s": 0.1, "slo_hit": 0.99, "cost_per_s": 1e-5} | change
    with pytest.raises(PredictError, match=f"run x: {message}"):
        ObservedRun(PROFILE, PLANS[0], Load(5.0), APP.slo, source="run x", **figures)


def test_observed_runs_cut_a_run_into_its_full_windows_and_skip_empty_ones() -> None:
    arrivals = np.array([0.5, 1.5, 2.5, 7.5, 8.5, 9.9, 10.5])  # nothing in [3, 6); 10.5 is past the last full window
    cost = [{"t": 0.0, "cost_usd": 0.0}, {"t": 11.0, "cost_usd": 1.1}]
    res = ReplayResult(arrivals, np.full(7, 0.05), np.full(7, 200), ["fine"] * 7, cost)
    whole = observed_runs(res, PROFILE, PLANS[0], 11.0, source="r")
    assert [w.source for w in whole] == ["r"] and whole[0].load.rate_rps == pytest.approx(7 / 11)
    windows = observed_runs(res, PROFILE, PLANS[0], 11.0, window_s=3.0, source="r")
    assert [w.source for w in windows] == ["r@0s", "r@6s"]  # [3, 6) is empty, [9, 11) is not a full window
    assert [w.load.rate_rps for w in windows] == [1.0, 2 / 3]
    with pytest.raises(PredictError, match="window must be > 0"):
        observed_runs(res, PROFILE, PLANS[0], 11.0, window_s=0.0)


def test_a_run_file_reads_back_what_was_written_and_bad_files_are_named(tmp_path) -> None:
    res = simulated(PLANS[0], 8.0, seed=3)
    doc = run_file_doc("app.py", "fine", "p99:100ms", SECONDS, res.to_dict(), rate=8.0, config=CONFIG)
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "a.json").write_text(json.dumps(doc))
    (f,) = read_run_files([tmp_path / "runs"])
    assert (f.ref, f.plan, f.slo, f.seconds, f.kind, f.rate, f.input_mix) == (
        "app.py",
        "fine",
        "p99:100ms",
        SECONDS,
        "measure",
        8.0,
        EVEN_MIX,
    )
    assert f.function_config() == CONFIG
    back = ReplayResult.from_dict(f.run)
    assert np.array_equal(back.arrival_s, res.arrival_s) and back.samples == res.samples
    (tmp_path / "bad.json").write_text(json.dumps(doc | {"seconds": -1}))
    with pytest.raises(PredictError, match=r"bad\.json: 'seconds' must be > 0"):
        read_run_files([tmp_path / "bad.json"])
    (tmp_path / "cfg.json").write_text(json.dumps(doc | {"config": {"max_instances": 0}}))
    (g,) = read_run_files([tmp_path / "cfg.json"])
    with pytest.raises(PredictError, match=r"cfg\.json: bad 'config'"):
        g.function_config()
    (tmp_path / "junk.json").write_text("{")
    with pytest.raises(PredictError, match=r"junk\.json: not JSON"):
        read_run_files([tmp_path / "junk.json"])


def test_a_window_where_nothing_arrived_is_refused() -> None:
    res = ReplayResult(np.array([1.0, 2.0]), np.array([0.05, 0.05]), np.array([200, 200]), ["fine"] * 2)
    with pytest.raises(PredictError, match=r"no request arrived in \[5, 10\) s"):
        observed_run(res, PROFILE, PLANS[0], start=5.0, end=10.0)


def test_files_of_another_schema_or_none_are_refused_with_what_to_do(data, tmp_path) -> None:
    _, _, learned = data
    with pytest.raises(PredictError, match="cannot read learned predictor"):
        LearnedPredictor.load(tmp_path / "missing.json")
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(PredictError, match="is not JSON"):
        LearnedPredictor.load(tmp_path / "junk.json")
    doc = learned.to_dict()
    for bad, message in (
        ({**doc, "schema": "shoal.learned-app/0"}, "schema 'shoal.learned-app/0', this version reads"),
        ({k: v for k, v in doc.items() if k != "schema"}, "no 'schema' key"),
        ({**doc, "models": {"p99": {"trees": []}}}, "malformed"),
        ({**doc, "features": doc["features"][:1]}, "splits on a feature the file does not name"),
    ):
        (tmp_path / "bad.json").write_text(json.dumps(bad))
        with pytest.raises(PredictError, match=message) as e:
            LearnedPredictor.load(tmp_path / "bad.json")
        assert "refit it" in str(e.value)
