"""``shoal train``: from a file or synthetic data to a model, losses per round and the cost, as a table or JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from shoal.cli import cli
from shoal.train import make_logistic
from shoal.train.data import load_array

runner = CliRunner()


def test_kmeans_on_synthetic_data_as_json() -> None:
    r = runner.invoke(cli, ["train", "kmeans", "--data", "synthetic:3000x4", "--k", "5", "--workers", "2",
                            "--rounds", "6", "--store", "local", "--output", "json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["rounds"] == 6 and len(doc["losses"]) == 6 and doc["backend"] == "threads"
    assert doc["metrics"]["rows"] == 3000 and len(doc["model"]) == 5 * 4 + 5


def test_logreg_from_a_csv_file_with_labels_in_the_last_column(tmp_path: Path) -> None:
    X, y = make_logistic(2000, 3, seed=1)
    path = tmp_path / "data.csv"
    np.savetxt(path, np.column_stack([X, y]), delimiter=",", header="a,b,c,label", comments="")
    assert load_array(path).shape == (2000, 4)
    r = runner.invoke(cli, ["train", "logreg", "--data", str(path), "--workers", "2", "--cores", "2",
                            "--rounds", "30", "--lr", "1.0", "--store", "local"], terminal_width=160)  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "accuracy" in r.output and "round   30" in r.output and "not metered" in r.output


def test_bad_input_is_refused_saying_what_to_do(tmp_path: Path) -> None:
    r = runner.invoke(cli, ["train", "svm"])
    assert r.exit_code == 2 and "kmeans or logreg" in r.output
    r = runner.invoke(cli, ["train", "kmeans", "--data", str(tmp_path / "none.npy")])
    assert r.exit_code == 2 and "no such data file" in r.output
    r = runner.invoke(cli, ["train", "kmeans", "--store", "local", "--backend", "local", "--data", "synthetic:100x2"])
    assert r.exit_code == 2 and "--store redis" in r.output
