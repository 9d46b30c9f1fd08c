"""`shoal sim`: a JSON summary and the plots, and clear refusals."""

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shoal.cli import cli
from shoal.sim.gpu import default_table_path

ROOT = Path(__file__).resolve().parents[2]
IMAGE = str(ROOT / "examples" / "image_pipeline.py")
runner = CliRunner()


def test_sim_writes_a_json_summary_and_plots(tmp_path):
    cluster = tmp_path / "cluster.toml"
    cluster.write_text("[network]\nlatency_ms = 1.0\n\n[[nodes]]\ncount = 2\ncpus = 8\nmemory_gb = 32\n")
    stages = tmp_path / "stages.toml"
    stages.write_text('[stages.backbone]\nkind = "cpu"\nmean_ms = 20\ncv = 0.5\noutput_kb = 64\n')
    args = ["sim", IMAGE, "--trace", "poisson:20:60", "--plan", "fine", "--cluster", str(cluster)]
    r = runner.invoke(cli, [*args, "--stages", str(stages), "--out", str(tmp_path / "rep"), "--output", "json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["summary"]["requests_finished"] > 1000
    assert doc["summary"]["latency_ms"]["p50"] > 20
    assert doc["summary"]["mean_breakdown_ms"]["hop"] > 0.1  # three functions, two hops each
    assert len(doc["series"]["t_s"]) == len(doc["series"]["instances"]) > 100
    for name in ("summary.json", "latency_cdf.png", "slo_and_cost.png", "instances_and_gpu.png"):
        assert (tmp_path / "rep" / name).stat().st_size > 0


def test_sim_refuses_an_unknown_load_naming_the_forms():
    r = runner.invoke(cli, ["sim", IMAGE, "--trace", "poison:20:60", "--no-plots"])
    assert r.exit_code == 2
    assert "poisson:RATE:SECONDS" in " ".join(r.output.split())


def test_sim_refuses_a_bad_cluster(tmp_path):
    cluster = tmp_path / "c.toml"
    cluster.write_text("[[nodes]]\ncount = 1\ncores = 8\n")
    r = runner.invoke(cli, ["sim", IMAGE, "--trace", "poisson:1:10", "--cluster", str(cluster), "--no-plots"])
    assert r.exit_code == 2
    assert "cores" in r.output


def test_the_example_in_docs_runs():
    """docs/simulator.md's Python example, run as written (it needs the shared GPU table)."""
    if default_table_path() is None:
        pytest.skip("the shared GPU table is not on this machine")
    text = (ROOT / "docs" / "simulator.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S)[1]
    scope: dict = {}
    exec(compile(code, "docs/simulator.md", "exec"), scope)
    assert scope["result"].summary()["ok"] > 25_000
