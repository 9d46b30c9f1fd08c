"""Training data: load .npy, .csv and Parquet files, and make synthetic data sets.

A labelled file keeps its labels in the last column (``label_column=-1``) unless told otherwise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["load_array", "make_blobs", "make_logistic", "split_labels"]


def load_array(path: str | Path) -> np.ndarray:
    """A 2-D float64 array from ``.npy`` (never unpickled), ``.csv`` (a header row is skipped) or ``.parquet``."""
    p = Path(path)
    suffix = p.suffix.lower()
    if not p.is_file():
        raise FileNotFoundError(f"no such data file: {str(p)!r}")
    if suffix == ".npy":
        a = np.load(p, allow_pickle=False)
    elif suffix == ".csv":
        with p.open() as f:
            first = f.readline()
        has_header = any(c.isalpha() and c not in "eE" for c in first.replace("nan", "").replace("inf", ""))
        a = np.loadtxt(p, delimiter=",", skiprows=1 if has_header else 0, ndmin=2)
    elif suffix in (".parquet", ".pq"):
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise ValueError("reading Parquet needs pyarrow: pip install pyarrow") from None
        table = pq.read_table(p)
        a = np.column_stack([table.column(i).to_numpy() for i in range(table.num_columns)])
    else:
        raise ValueError(f"cannot read {p.name!r}: use .npy, .csv or .parquet")
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise ValueError(f"{p.name}: expected a 2-D table, got shape {a.shape}")
    return a


def split_labels(a: np.ndarray, label_column: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels of a table whose ``label_column`` holds the labels."""
    col = label_column % a.shape[1]
    return np.delete(a, col, axis=1), a[:, col]


def make_blobs(
    n: int, d: int, centers: int = 8, spread: float = 1.0, box: float = 10.0, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Isotropic Gaussian blobs (as scikit-learn's ``make_blobs``): rows and the index of each row's blob."""
    rng = np.random.default_rng(seed)
    means = rng.uniform(-box, box, size=(centers, d))
    labels = rng.integers(0, centers, size=n)
    return means[labels] + rng.normal(scale=spread, size=(n, d)), labels.astype(np.float64)


def make_logistic(n: int, d: int, noise: float = 1.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Rows with standard normal features and labels drawn from a logistic model with random weights."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    w = rng.normal(size=d) * 2.0 / np.sqrt(d)
    z = X @ w + 0.5
    p = 1.0 / (1.0 + np.exp(-z / max(noise, 1e-9)))
    return X, (rng.random(n) < p).astype(np.float64)
