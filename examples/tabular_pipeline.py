"""Tabular classification in two stages: feature scaling, then a logistic-regression classifier.

It stands for the scikit-learn models behind fraud scoring or diagnosis aids: tiny, CPU-only, many requests per
second, where the per-invocation overhead and the data hop, not the model, decide latency and cost.

Serve it with ``shoal serve examples/tabular_pipeline.py --plan coarse``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import shoal

N_FEATURES = 30
RANDOM_STATE = 0

app = shoal.App("tabular", slo="p99:50ms", input=shoal.ArraySpec((None, N_FEATURES), "float64"))


def training_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The breast-cancer data set (ships with scikit-learn), split the same way every time: X_tr, X_te, y_tr, y_te."""
    # Imported here so that reading the app's stage graph does not import scikit-learn.
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    x, y = load_breast_cancer(return_X_y=True)
    return train_test_split(x, y, test_size=0.25, random_state=RANDOM_STATE, stratify=y)


def load_scaler() -> Any:
    """Fit the feature scaler on the training split, once per instance."""
    from sklearn.preprocessing import StandardScaler

    x_tr, _, _, _ = training_data()
    return StandardScaler().fit(x_tr)


def load_classifier() -> Any:
    """Train the classifier on scaled training features, once per instance (deterministic, so every copy agrees)."""
    from sklearn.linear_model import LogisticRegression

    x_tr, _, y_tr, _ = training_data()
    return LogisticRegression(max_iter=1000, random_state=RANDOM_STATE).fit(load_scaler().transform(x_tr), y_tr)


@app.stage(load=load_scaler, vcpu=0.5, memory_mb=256)
def features(scaler: Any, x: Any) -> np.ndarray:
    """Validate an (N, 30) array of finite numbers and standardise it."""
    if not isinstance(x, np.ndarray) or x.ndim != 2 or x.shape[1] != N_FEATURES:
        got = f"an array of shape {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
        raise shoal.InputError(f"expected an (N, {N_FEATURES}) array, got {got}")
    if not np.issubdtype(x.dtype, np.number) or not np.isfinite(x).all():
        raise shoal.InputError("features must be finite numbers")
    return scaler.transform(x.astype(np.float64, copy=False))


@app.stage(after=features, load=load_classifier, vcpu=0.5, memory_mb=256)
def classify(model: Any, z: np.ndarray) -> dict[str, np.ndarray]:
    """Class probabilities, shape (N, 2), and the most likely label per row, shape (N,)."""
    proba = model.predict_proba(z)
    return {"label": model.classes_[proba.argmax(axis=1)].astype(np.int64), "proba": proba}
