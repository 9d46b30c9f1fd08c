"""``shoal load``: open-loop load from a generator or a trace against a real server."""

import json
from pathlib import Path

from typer.testing import CliRunner

from shoal.cli import cli
from shoal.testing import ServerProcess

ECHO = str(Path(__file__).parent / "runtime" / "apps_for_tests.py") + ":echo"
runner = CliRunner()


def test_load_from_a_generator_scores_every_request_and_plots(tmp_path):
    with ServerProcess(ECHO, "coarse") as srv:
        png = tmp_path / "load.png"
        args = ["load", "echo", "--trace", "poisson:40:2", "--data", "[1, 2]", "--url", srv.url, "--slo", "p99:1s"]
        r = runner.invoke(cli, [*args, "--plot", str(png), "--output", "json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["requests"] > 40 and doc["ok"] == doc["requests"] and doc["statuses"] == {"200": doc["requests"]}
    assert doc["slo"] == "p99:1000ms" and 0.0 <= doc["slo_hit"] <= 1.0
    assert png.stat().st_size > 10_000


def test_load_from_a_2019_trace_written_here_with_compression(tmp_path):
    """A two-function Azure Functions 2019 per-minute file: the busiest function's 30 + 10 calls, compressed 60x."""
    header = "HashOwner,HashApp,HashFunction,Trigger," + ",".join(str(i) for i in range(1, 1441))
    busy = ["o", "a", "busy", "http", "30", "10"] + ["0"] * 1438
    idle = ["o", "a", "idle", "http", "1", "0"] + ["0"] * 1438
    csv = tmp_path / "invocations_per_function_md.anon.d01.csv"
    csv.write_text("\n".join([header, ",".join(busy), ",".join(idle)]) + "\n")
    with ServerProcess(ECHO, "coarse") as srv:
        args = ["load", "echo", "--trace", str(csv), "--compress", "60", "--minutes", "0.04", "--url", srv.url]
        r = runner.invoke(cli, [*args, "--output", "json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["requests"] == 40 and doc["ok"] == 40


def test_load_says_what_to_do_on_bad_input():
    r = runner.invoke(cli, ["load", "echo", "--trace", "poisson:oops", "--url", "http://127.0.0.1:9"])
    assert r.exit_code != 0 and "poisson:RATE:SECONDS" in r.output
    r = runner.invoke(cli, ["load", "echo", "--data", "{bad", "--url", "http://127.0.0.1:9"])
    assert r.exit_code != 0 and "not JSON" in r.output
    r = runner.invoke(cli, ["load", "echo", "--url", "http://127.0.0.1:9"])
    assert r.exit_code != 0 and "Is `shoal serve` running" in r.output
