"""The public surface of shoal.train changes only on purpose, and its data readers refuse what they cannot read."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import shoal.train
from shoal.engines import Engine
from shoal.train import LocalStore, StateStore
from shoal.train.backends import LocalEngine, ThreadEngine
from shoal.train.data import load_array, make_blobs, split_labels


def test_exported_members() -> None:
    assert shoal.train.__all__ == [
        "train",
        "TrainResult",
        "FunctionExecutor",
        "ResponseFuture",
        "StateStore",
        "LocalStore",
        "RedisStore",
        "StoreError",
        "StoreRestarted",
        "redis_server",
        "load_array",
        "make_blobs",
        "make_logistic",
    ]
    for name in shoal.train.__all__:
        assert hasattr(shoal.train, name)


def test_built_in_back_ends_and_stores_meet_their_protocols() -> None:
    assert isinstance(ThreadEngine(1), Engine)
    assert isinstance(LocalEngine(1), Engine)
    assert isinstance(LocalStore("p"), StateStore)


def test_npy_round_trip_and_refusals(tmp_path: Path) -> None:
    X, y = make_blobs(50, 3, centers=2, seed=0)
    np.save(tmp_path / "x.npy", np.column_stack([X, y]))
    a = load_array(tmp_path / "x.npy")
    features, labels = split_labels(a)
    assert np.array_equal(features, X) and np.array_equal(labels, y)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="allow_pickle=False"):
        load_array(tmp_path / "obj.npy")  # never unpickled
    (tmp_path / "x.txt").write_text("1,2\n")
    with pytest.raises(ValueError, match=r"\.npy, \.csv or \.parquet"):
        load_array(tmp_path / "x.txt")


def test_parquet(tmp_path: Path) -> None:
    if importlib.util.find_spec("pyarrow") is None:
        (tmp_path / "x.parquet").write_bytes(b"PAR1")
        with pytest.raises(ValueError, match="pip install pyarrow"):
            load_array(tmp_path / "x.parquet")
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"a": [1.0, 2.0], "b": [3.0, 4.0]}), tmp_path / "x.parquet")
    assert load_array(tmp_path / "x.parquet").tolist() == [[1.0, 3.0], [2.0, 4.0]]
