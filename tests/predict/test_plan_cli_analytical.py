"""``shoal plan --profile``: the analytical predictor scores every grouping of an app from its profile."""

import json
from pathlib import Path

from predict_profiles_for_tests import make_profile
from typer.testing import CliRunner

from shoal.app.loader import load_app
from shoal.cli import cli
from shoal.predict import write_profile

PACED = str(Path(__file__).parents[1] / "runtime" / "apps_for_tests.py") + ":paced"


def test_plan_with_a_profile_weighs_every_grouping_and_chooses(tmp_path):
    app = load_app(PACED)
    profile = make_profile(app, {"p_src": 4.0, "p_left": 4.0, "p_right": 4.0, "p_merge": 0.1})
    path = tmp_path / "paced.json"
    write_profile(profile, path)
    args = ["plan", PACED, "--rate", "20", "--profile", str(path), "--output", "json"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    plans = [c["plan"] for c in doc["candidates"]]
    assert "fine" in plans and "coarse" in plans and len(plans) >= 5  # the diamond's valid groupings
    assert doc["chosen"] == plans[0] and doc["candidates"][0]["predictor"] == "analytical"
    costs = {c["plan"]: c["cost_usd_per_h"] for c in doc["candidates"]}
    assert costs["coarse"] < costs["fine"]  # one warm 0.25-vCPU instance against four


def test_plan_needs_exactly_one_predictor(tmp_path):
    r = CliRunner().invoke(cli, ["plan", PACED, "--rate", "20"])
    assert r.exit_code != 0 and "give one predictor" in r.output
    r = CliRunner().invoke(cli, ["plan", PACED, "--profile", str(tmp_path / "none.json")])
    assert r.exit_code != 0 and "cannot read profile" in r.output
