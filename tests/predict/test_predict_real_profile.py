"""The analytical predictor on a profile that ``shoal profile`` measured here: examples/image_pipeline.py, quick."""

from __future__ import annotations

from pathlib import Path

import pytest

from shoal.app import Plan
from shoal.predict import Profile, read_profile, write_profile
from shoal.predict.analytical import AnalyticalPredictor
from shoal.predict.app_model import Load
from shoal.runtime.profiler import ProfileOptions, load_target, profile_app

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "image_pipeline.py"


@pytest.fixture(scope="session")
def measured(tmp_path_factory: pytest.TempPathFactory) -> tuple[Profile, object]:
    """Profile the example for real (3 repeats, batch 1 and 4, one vCPU share, one hop size), and read it back."""
    target = load_target(str(EXAMPLE))
    opts = ProfileOptions(hop_bytes=(1 << 10,), settle_s=0.05).quick()
    prof = profile_app(target.app, target.inputs, opts, gpu_models=target.gpu_models, source=str(EXAMPLE))
    path = write_profile(prof, tmp_path_factory.mktemp("prof") / "image.json")
    return read_profile(path), target.app


def test_each_plan_gets_a_prediction_per_function_and_end_to_end(measured: tuple[Profile, object]) -> None:
    prof, app = measured
    pred = AnalyticalPredictor(samples=5000)
    for plan in (Plan.fine(app), Plan.coarse(app), Plan.parse(app, "preprocess+backbone,head")):  # type: ignore[arg-type]
        p = pred.predict(prof, plan, Load(50.0, scv=2.0, input_mix={"small": 1, "large": 1}))
        assert [f.name for f in p.functions] == [f.name for f in plan.functions]
        assert 0 < p.latency_s[50] <= p.latency_s[95] <= p.latency_s[99] < 1.0
        assert 0.0 <= p.slo_hit_rate <= 1.0 and p.instances >= len(plan.functions)
        assert p.cost_per_s > 0 and p.cost_per_request == pytest.approx(p.cost_per_s / 50.0)
        doc = p.to_dict()
        assert doc["plan"] == plan.label and set(doc["latency_ms"]) == {"p50", "p95", "p99"}


def test_at_light_load_the_coarse_plan_takes_what_its_function_measured(measured: tuple[Profile, object]) -> None:
    """The coarse function was measured as such; alone and unloaded, its predicted median is its measured one."""
    prof, app = measured
    p = AnalyticalPredictor(samples=5000).predict(prof, Plan.coarse(app), Load(0.5))  # type: ignore[arg-type]
    row = next(r for r in prof.functions if r.batch == 1 and r.input_size == "medium")
    assert p.latency_s[50] * 1e3 == pytest.approx(row.latency_ms.median, rel=0.25)
