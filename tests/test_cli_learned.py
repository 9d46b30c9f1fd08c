"""The learned application predictor from the command line: profile -> measure --runs-out -> predict fit-app ->
plan --learned, on real runs of a tiny application on the embedded runtime, and the errors of each step."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shoal.cli import cli
from shoal.predict.app_learned import LearnedPredictor
from shoal.predict.run_files import read_run_files

APPS = Path(__file__).parent / "runtime" / "apps_for_tests.py"
PACED = f"{APPS}:paced"
runner = CliRunner()


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> dict[str, Path]:
    """A quick profile of the paced diamond and two short measured runs (fine, coarse), kept as run files."""
    d = tmp_path_factory.mktemp("learned")
    profile, runs = d / "profile.json", d / "runs"
    r = runner.invoke(cli, ["profile", PACED, "--quick", "--no-hops", "--out", str(profile)])
    assert r.exit_code == 0, r.output
    args = ["measure", PACED, "--plan", "fine", "--plan", "coarse", "--rates", "20", "--seconds", "2"]
    r = runner.invoke(cli, [*args, "--slo", "p99:1s", "--out", str(d / "table.json"), "--runs-out", str(runs)])
    assert r.exit_code == 0, r.output
    return {"dir": d, "profile": profile, "runs": runs}


def fit_app(*args: str):
    return runner.invoke(cli, ["predict", "fit-app", *args])


def test_measure_keeps_each_run_as_a_run_file(chain):
    files = read_run_files([chain["runs"]])
    assert sorted((f.plan, f.rate) for f in files) == [("coarse", 20), ("fine", 20)]
    for f in files:
        assert f.ref == PACED and f.app_name == "paced" and f.slo == "p99:1000ms" and f.seconds == 2
        assert f.kind == "measure"
        assert f.function_config().keep_alive_s == 10  # measure's default keep-alive, not FunctionConfig's
        assert len(f.run["arrival_s"]) == len(f.run["status"]) > 0 and f.run["samples"]


def test_fit_app_then_plan_with_the_learned_predictor(chain):
    out = chain["dir"] / "learned.json"
    r = fit_app("--profile", str(chain["profile"]), "--runs", str(chain["runs"]), "--window", "1", "--out", str(out))
    assert r.exit_code == 0, r.output
    assert "fitted on 2 runs and 4 windows of 1 s of paced" in r.output
    assert "p99" in r.output and "analytical" in r.output and "learned" in r.output
    learned = LearnedPredictor.load(out)
    assert learned.meta["runs"] == 6 and learned.meta["apps"] == ["paced"]
    assert learned.meta["plans"] == ["paced:coarse", "paced:fine"]

    args = ["plan", PACED, "--rate", "10", "--slo", "p99:1s", "--profile", str(chain["profile"])]
    mix = "small=1,medium=1,large=1"  # what measure sent: the runs' mix
    r = runner.invoke(cli, [*args, "--learned", str(out), "--input-mix", mix, "--output", "json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["load"]["input_mix"] == mix
    plans = [c["plan"] for c in doc["candidates"]]
    assert "fine" in plans and "coarse" in plans and len(plans) >= 5  # every grouping, measured or not
    assert {c["predictor"] for c in doc["candidates"]} == {"learned"}
    assert doc["chosen"] == plans[0]
    text = runner.invoke(cli, [*args, "--learned", str(out)])
    assert text.exit_code == 0 and "chosen:" in text.output


def test_fit_app_refuses_no_runs_and_files_that_are_not_runs(chain, tmp_path):
    prof = str(chain["profile"])
    r = fit_app("--profile", prof, "--runs", str(tmp_path))
    assert r.exit_code != 0 and "no run files" in r.output and "--runs-out" in r.output
    (tmp_path / "x.json").write_text(json.dumps({"plan": "fine"}))
    r = fit_app("--profile", prof, "--runs", str(tmp_path / "x.json"))
    assert r.exit_code != 0 and "not a run file" in r.output
    r = fit_app("--profile", prof, "--runs", str(tmp_path / "missing.json"))
    assert r.exit_code != 0 and "no such file or folder" in r.output
    r = fit_app("--profile", str(tmp_path / "none.json"), "--runs", str(chain["runs"]))
    assert r.exit_code != 0 and "cannot read profile" in r.output
    r = fit_app("--profile", prof, "--runs", str(chain["runs"]), "--window", "0")
    assert r.exit_code != 0 and "--window must be > 0" in r.output
    r = fit_app("--profile", prof, "--runs", str(chain["runs"]), "--window", "1", "--features", "+bogus")
    assert r.exit_code != 0 and "unknown features ['bogus']: choose among" in r.output


def test_fit_app_adds_features_to_the_defaults_with_a_plus(chain):
    out = chain["dir"] / "scv.json"
    r = fit_app(
        "--profile",
        str(chain["profile"]),
        "--runs",
        str(chain["runs"]),
        "--window",
        "1",
        "--features",
        "+scv",
        "--out",
        str(out),
    )
    assert r.exit_code == 0, r.output
    names = LearnedPredictor.load(out).feature_names
    assert names[-1] == "scv" and "busy_cores" in names


def test_fit_app_refuses_runs_of_another_app_and_says_which(chain, tmp_path):
    src = sorted(chain["runs"].glob("*.json"))[0]
    doc = json.loads(src.read_text())
    (tmp_path / "other.json").write_text(json.dumps(doc | {"app_name": "diamond"}))  # same stage shape, another app
    r = fit_app("--profile", str(chain["profile"]), "--runs", str(chain["runs"]), "--runs", str(tmp_path))
    assert r.exit_code != 0
    assert "is a run of application 'diamond', the profile is of 'paced': give its profile too" in r.output
    r = fit_app("--profile", str(chain["profile"]), "--runs", str(tmp_path), "--app", str(tmp_path / "gone.py"))
    assert r.exit_code != 0 and "cannot load --app" in r.output
    r = fit_app("--profile", str(chain["profile"]), "--runs", str(tmp_path), "--app", PACED, "--out", "/dev/null")
    assert r.exit_code != 0 and "at least 3 observed runs, got 1" in r.output  # --app loads it; one run is too few


def test_fit_app_imports_nothing_a_run_file_points_at(chain, tmp_path):
    """The graph comes from the profile: a run file whose ref names code that would run on import is fitted
    without importing it; a run file without the app's name (older ones) is the one profile's app."""
    marker = tmp_path / "imported"
    trap = tmp_path / "trap.py"
    trap.write_text(f"open({str(marker)!r}, 'w').close()\n")
    (tmp_path / "runs").mkdir()
    for src in sorted(chain["runs"].glob("*.json")):
        doc = json.loads(src.read_text())
        doc["ref"] = str(trap)
        if src.name.startswith("measure-poisson-20-0-fine"):
            del doc["app_name"]
        (tmp_path / "runs" / src.name).write_text(json.dumps(doc))
    args = ["--runs", str(tmp_path / "runs"), "--window", "1", "--out", str(tmp_path / "learned.json")]
    r = fit_app("--profile", str(chain["profile"]), *args)
    assert r.exit_code == 0, r.output
    assert "fitted on 2 runs and 4 windows of 1 s of paced" in r.output and not marker.exists()


def test_fit_app_refuses_a_profile_without_a_plans_stages(chain, tmp_path):
    doc = json.loads(chain["profile"].read_text())
    doc["stages"] = [s for s in doc["stages"] if s["stage"] != "p_merge"]
    doc["functions"] = []
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps(doc))
    r = fit_app("--profile", str(partial), "--runs", str(chain["runs"]), "--window", "1")
    assert r.exit_code != 0 and "p_merge" in r.output and "measure-poisson" in r.output  # the stage and the run


def test_plan_refuses_learned_without_a_profile_and_unreadable_files(chain, tmp_path):
    args = ["plan", PACED, "--rate", "10"]
    r = runner.invoke(cli, [*args, "--measured", str(tmp_path / "t.json"), "--learned", str(tmp_path / "l.json")])
    assert r.exit_code != 0 and "give the application's --profile" in r.output
    r = runner.invoke(cli, [*args, "--profile", str(chain["profile"]), "--learned", str(tmp_path / "l.json")])
    assert r.exit_code != 0 and "cannot read learned predictor" in r.output
    (tmp_path / "l.json").write_text(json.dumps({"schema": "shoal.learned-app/0"}))
    r = runner.invoke(cli, [*args, "--profile", str(chain["profile"]), "--learned", str(tmp_path / "l.json")])
    assert r.exit_code != 0 and "refit it" in r.output


def test_plan_refuses_an_input_mix_it_cannot_use(chain):
    args = ["plan", PACED, "--rate", "10", "--profile", str(chain["profile"])]
    r = runner.invoke(cli, [*args, "--input-mix", "huge=1"])
    assert r.exit_code != 0 and "'huge' was not profiled; the profile has small, medium, large" in r.output
    r = runner.invoke(cli, [*args, "--input-mix", "small"])
    assert r.exit_code != 0 and "SIZE=FRACTION" in r.output
    r = runner.invoke(cli, ["plan", PACED, "--measured", "t.json", "--input-mix", "small=1"])
    assert r.exit_code != 0 and "--input-mix is for --profile" in r.output


def test_fit_app_says_when_runs_record_no_function_settings(chain, tmp_path):
    """Runs kept by benchmarks/granularity.py record no 'config': the fit says their plans took the defaults."""
    for src in sorted(chain["runs"].glob("*.json")):
        doc = json.loads(src.read_text())
        del doc["config"]
        (tmp_path / src.name).write_text(json.dumps(doc))
    r = fit_app("--profile", str(chain["profile"]), "--runs", str(tmp_path), "--out", str(tmp_path / "l.json"))
    assert r.exit_code != 0 and "at least 3 observed runs, got 2" in r.output and "--window SECONDS" in r.output
    r = fit_app("--profile", str(chain["profile"]), "--runs", str(tmp_path), "--window", "1", "--out", "/dev/null")
    assert r.exit_code == 0, r.output
    assert "note: 2 runs record no function settings" in r.output


def test_fit_app_fits_runs_of_several_apps_each_with_its_own_profile(chain, tmp_path):
    """Runs of the diamond (the paced runs relabelled: the fit reads figures, not which code made them) and of the
    paced diamond, each predicted from its own application's profile."""
    diamond = tmp_path / "diamond.json"
    r = runner.invoke(cli, ["profile", f"{APPS}:diamond", "--quick", "--no-hops", "--out", str(diamond)])
    assert r.exit_code == 0, r.output
    (tmp_path / "runs").mkdir()
    for src in sorted(chain["runs"].glob("*.json")):
        doc = json.loads(src.read_text())
        (tmp_path / "runs" / src.name).write_text(json.dumps(doc | {"app_name": "diamond"}))
    out = tmp_path / "both.json"
    args = ["--profile", str(chain["profile"]), "--profile", str(diamond), "--window", "1", "--out", str(out)]
    r = fit_app(*args, "--runs", str(chain["runs"]), "--runs", str(tmp_path / "runs"))
    assert r.exit_code == 0, r.output
    assert "fitted on 4 runs and 8 windows of 1 s of diamond, paced" in r.output
    assert LearnedPredictor.load(out).meta["apps"] == ["diamond", "paced"]
    r = fit_app("--profile", str(diamond), "--profile", str(diamond), "--runs", str(tmp_path / "runs"))
    assert r.exit_code != 0 and "two profiles of application 'diamond'" in r.output
    for f in (tmp_path / "runs").iterdir():  # run files from before stop 11 name no application
        f.write_text(json.dumps({k: v for k, v in json.loads(f.read_text()).items() if k != "app_name"}))
    r = fit_app(*args, "--runs", str(tmp_path / "runs"))
    assert r.exit_code != 0 and "does not record its application's name" in r.output


def test_serve_adapts_live_with_the_learned_predictor(chain):
    """`serve --adaptive-profile P --adaptive-learned L`: every window is scored by the learned predictor (the
    analytical one corrected by the trees fitted on the measured runs), with no error, and requests all succeed."""
    import threading
    import time

    import httpx

    from shoal.testing import ServerProcess, wait_until

    out = chain["dir"] / "learned-serve.json"
    r = fit_app("--profile", str(chain["profile"]), "--runs", str(chain["runs"]), "--window", "1", "--out", str(out))
    assert r.exit_code == 0, r.output
    args = ["--adaptive-profile", str(chain["profile"]), "--adaptive-learned", str(out), "--adaptive-window", "0.3"]
    with ServerProcess(PACED, "fine", *args) as srv:
        codes: list[int] = []
        done = threading.Event()

        def steady() -> None:
            with httpx.Client(base_url=srv.url, timeout=10) as client:
                while not done.is_set():
                    codes.append(client.post("/apps/paced/invoke", json=[1]).status_code)
                    time.sleep(0.02)

        def scored() -> list:  # windows with traffic in them, scored
            history = srv.client.get("/status").json()["apps"][0]["adaptive"]
            return [e for e in history if "best" in e and e["load"]["rate"] > 0]

        sender = threading.Thread(target=steady)
        sender.start()
        try:
            wait_until(lambda: len(scored()) >= 3, timeout=20, message="three windows with traffic, scored")
        finally:
            done.set()
            sender.join()
        assert codes and set(codes) == {200}
        history = srv.client.get("/status").json()["apps"][0]["adaptive"]
        assert not [e for e in history if "error" in e]
