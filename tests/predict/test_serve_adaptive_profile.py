"""``shoal serve --adaptive-profile``: the live loop scores every grouping of the app with the analytical predictor
from its profile (no measured table), and switches to the one it predicts cheapest, over HTTP."""

import threading
import time
from pathlib import Path

import httpx
from predict_profiles_for_tests import make_profile
from typer.testing import CliRunner

from shoal.app.loader import load_app
from shoal.cli import cli
from shoal.predict import write_profile
from shoal.testing import ServerProcess, wait_until

APPS = Path(__file__).parents[1] / "runtime" / "apps_for_tests.py"
PACED = f"{APPS}:paced"
runner = CliRunner()


def paced_profile(tmp_path: Path) -> Path:
    profile = make_profile(load_app(PACED), {"p_src": 4.0, "p_left": 4.0, "p_right": 4.0, "p_merge": 0.1})
    return write_profile(profile, tmp_path / "paced-profile.json")


def test_serve_adapts_from_a_profile_to_a_plan_no_table_measured(tmp_path):
    args = ["--adaptive-profile", str(paced_profile(tmp_path)), "--adaptive-window", "0.3", "--adaptive-dwell", "0"]
    args += ["--adaptive-input-mix", "small=1,medium=2,large=1"]
    with ServerProcess(PACED, "fine", *args) as srv:
        done = threading.Event()
        codes: list[int] = []

        def steady() -> None:
            with httpx.Client(base_url=srv.url, timeout=10) as client:
                while not done.is_set():
                    codes.append(client.post("/apps/paced/invoke", json=[1]).status_code)
                    time.sleep(0.01)

        def switched() -> list:
            history = srv.client.get("/status").json()["apps"][0]["adaptive"]
            return [e for e in history if e.get("switch_to")]

        sender = threading.Thread(target=steady)
        sender.start()
        try:
            made = wait_until(switched, timeout=20, message="a switch chosen from the profile's predictions")
        finally:
            done.set()
            sender.join()
        assert codes and set(codes) == {200}
        # four functions of 0.25 vCPU, each kept warm, against fewer: at this light load a grouped plan is cheaper
        assert made[0]["plan"] == "fine" and made[0]["switch_to"] != "fine"
        assert "cheaper" in made[0]["reason"] or "meets the SLO target" in made[0]["reason"]
        assert len(made[0]["switch_to"].split(",")) < 4
        history = srv.client.get("/status").json()["apps"][0]["adaptive"]
        assert not [e for e in history if "error" in e]
        served = srv.client.get("/apps").json()["paced"]["plan"]
        assert served == made[-1]["switch_to"]
        assert httpx.post(f"{srv.url}/apps/paced/invoke", json=[2], timeout=10).json()["output"] == [18.0]


def test_serve_adaptive_profile_refuses_what_it_cannot_use(tmp_path):
    profile = str(paced_profile(tmp_path))
    serve = ["serve", PACED, "--plan", "fine"]
    r = runner.invoke(cli, [*serve, "--adaptive-profile", profile, "--adaptive", profile])
    assert r.exit_code != 0 and "give one of --adaptive TABLE.json" in r.output
    r = runner.invoke(cli, [*serve, "--adaptive-learned", profile])
    assert r.exit_code != 0 and "--adaptive-learned corrects the analytical predictor" in r.output
    r = runner.invoke(cli, [*serve, "--adaptive-profile", str(tmp_path / "none.json")])
    assert r.exit_code != 0 and "cannot read profile" in r.output
    other = str(APPS) + ":diamond"
    r = runner.invoke(cli, ["serve", other, "--plan", "fine", "--adaptive-profile", profile])
    assert r.exit_code != 0 and "is a profile of 'paced', not of" in r.output
    r = runner.invoke(cli, [*serve, "--adaptive-input-mix", "small=1"])
    assert r.exit_code != 0 and "--adaptive-input-mix is for --adaptive-profile" in r.output
    r = runner.invoke(cli, [*serve, "--adaptive-profile", profile, "--adaptive-input-mix", "small"])
    assert r.exit_code != 0 and "--adaptive-input-mix takes SIZE=FRACTION pairs" in r.output
    r = runner.invoke(cli, [*serve, "--adaptive-profile", profile, "--adaptive-input-mix", "huge=1"])
    assert r.exit_code != 0 and "--adaptive-input-mix: input size 'huge' was not profiled" in r.output
    assert "serving" not in r.output  # refused before it says it serves
    horizon = ["--adaptive-horizon", "30", "--adaptive-horizon-as", "load", "--adaptive-expect-burst", "0.2"]
    r = runner.invoke(cli, [*serve, "--adaptive-profile", profile, *horizon])
    assert r.exit_code != 0 and "prices burstiness by the SCV" in r.output
