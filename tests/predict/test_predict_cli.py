"""``shoal predict fit`` and ``shoal predict eval`` on tables the test writes: fit on some models, score on others."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gpu_tables_for_tests import models, write_table
from typer.testing import CliRunner

from shoal.cli import cli

REFS = "1:100:100,4:100:100,4:10:100,1:100:20"


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("cli")
    every = models(12)
    train = write_table(d / "train.csv", {k: v for k, v in every.items() if int(k[3:]) % 4})
    test = write_table(d / "test.csv", {k: v for k, v in every.items() if not int(k[3:]) % 4})
    return train, test


@pytest.mark.parametrize("kind", ["empirical", "learned"])
def test_fit_then_eval_prints_mape_overall_and_per_model(tables: tuple[Path, Path], tmp_path: Path, kind: str) -> None:
    train, test = tables
    out = tmp_path / "model.json"
    r = CliRunner().invoke(cli, ["predict", "fit", "--table", str(train), "--out", str(out), "--kind", kind])
    assert r.exit_code == 0, r.output
    assert f"fitted an {kind} predictor on 9 models" in r.output and out.is_file()
    r = CliRunner().invoke(cli, ["predict", "eval", "--model", str(out), "--table", str(test), "--output", "json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["kind"] == kind and [m["model"] for m in doc["per_model"]] == ["net0", "net4", "net8"]
    assert 0 <= doc["mape_percent"] < 100
    r = CliRunner().invoke(cli, ["predict", "eval", "--model", str(out), "--table", str(test)])
    assert r.exit_code == 0 and "net4" in r.output and "all" in r.output and "MAPE" in r.output


def test_fit_with_other_reference_points(tables: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "m.json"
    args = [
        "predict",
        "fit",
        "--table",
        str(tables[0]),
        "--out",
        str(out),
        "--kind",
        "empirical",
        "--refs",
        "1:100:100",
    ]
    assert CliRunner().invoke(cli, args).exit_code == 0
    assert json.loads(out.read_text())["references"] == [[1, 100, 100]]


def test_errors_name_the_problem(tables: tuple[Path, Path], tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("model,batch,sm_percent,quota_percent,latency_ms\nm,1,100,abc,2\n")
    r = CliRunner().invoke(cli, ["predict", "fit", "--table", str(bad), "--out", str(tmp_path / "x.json")])
    assert r.exit_code == 2 and "line 2, column quota_percent" in r.output
    r = CliRunner().invoke(
        cli, ["predict", "fit", "--table", str(tables[0]), "--out", str(tmp_path / "x.json"), "--kind", "magic"]
    )
    assert r.exit_code == 2 and "--kind must be learned or empirical" in r.output
    r = CliRunner().invoke(
        cli, ["predict", "fit", "--table", str(tables[0]), "--out", str(tmp_path / "x.json"), "--refs", "1:100"]
    )
    assert r.exit_code == 2 and "BATCH:SM:QUOTA" in r.output
    r = CliRunner().invoke(cli, ["predict", "eval", "--model", str(bad), "--table", str(tables[1])])
    assert r.exit_code == 2 and "not a saved predictor" in r.output
