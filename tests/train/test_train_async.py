"""SSP and ASP: no barrier per round, each worker's updates summed as found; SSP bounds how far ahead a worker runs.

Their results depend on timing, so they are held to quality bounds (docs/training.md, "Correctness"), not to
bit-equality."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss

from shoal.train import LocalStore, make_blobs, make_logistic, train
from shoal.train.job import initial_centers
from shoal.train.worker import _read_updates


@pytest.mark.parametrize("sync", ["ssp", "asp"])
def test_async_logreg_reaches_scikit_learn_quality(sync: str) -> None:
    X, y = make_logistic(4000, 10, seed=5)
    alpha = 1e-3
    sk = LogisticRegression(C=1.0 / (alpha * len(X)), tol=1e-10, max_iter=1000).fit(X, y)
    sk_loss, sk_acc = log_loss(y, sk.predict_proba(X)[:, 1]), accuracy_score(y, sk.predict(X))
    r = train("logreg", X, y, workers=4, cores=1, rounds=150, lr=0.25, alpha=alpha, batch_size=64, sync=sync)
    assert r.metrics["accuracy"] == pytest.approx(sk_acc, abs=0.02)
    assert r.metrics["log_loss"] == pytest.approx(sk_loss, rel=0.05)


@pytest.mark.parametrize("sync", ["ssp", "asp"])
def test_async_minibatch_kmeans_gets_close_to_lloyd(sync: str) -> None:
    X = make_blobs(6000, 6, centers=8, spread=2.5, seed=3)[0]
    init = initial_centers(X, 8, "k-means++", seed=0)
    full = train("kmeans", X, k=8, workers=2, rounds=20, init=init)
    r = train("kmeans", X, k=8, workers=2, rounds=60, init=init, batch_size=128, sync=sync, staleness=1)
    assert r.metrics["inertia"] <= 1.05 * full.metrics["inertia"]


def test_ssp_waits_for_the_slowest_worker_within_the_bound() -> None:
    """Worker 0 is at round 5 and worker 1 has done 2 rounds. With staleness 3 worker 0 may go on (5 - 3 <= 2); with
    staleness 2 it must wait for worker 1, and here gives up after its timeout. ASP never waits."""
    store = LocalStore("ssp-gate")
    store.put("state:0", np.array([5.0, 1.0, 1.0]))
    store.put("state:1", np.array([1.0, 10.0, 20.0]))
    store.put("clock:1", np.array([2.0]))  # worker 1 did a round after it last published (significance filter)
    assert list(_read_updates(store, 2, 0, 5, 3, timeout_s=1, size=2)) == [10.0, 20.0]  # the others' updates
    assert list(_read_updates(store, 2, 0, 5, None, timeout_s=1, size=2)) == [10.0, 20.0]
    with pytest.raises(RuntimeError, match=r"clocks \[5, 2\]"):
        _read_updates(store, 2, 0, 5, 2, timeout_s=0.05, size=2)


def test_significance_filter_publishes_less_at_similar_quality() -> None:
    """MLLess's filter: updates that would move the shared model by under 5% stay local. Fewer publications, and
    the model stays within the async bounds of scikit-learn's."""
    X, y = make_logistic(4000, 10, seed=5)
    alpha = 1e-3
    sk = LogisticRegression(C=1.0 / (alpha * len(X)), tol=1e-10, max_iter=1000).fit(X, y)
    sk_loss = log_loss(y, sk.predict_proba(X)[:, 1])
    kw = {"workers": 4, "rounds": 150, "lr": 0.25, "alpha": alpha, "batch_size": 64, "sync": "ssp"}
    every = train("logreg", X, y, **kw)
    filtered = train("logreg", X, y, significance=0.05, **kw)
    assert all(w["published"] == 150 for w in every.per_worker)
    assert sum(w["published"] for w in filtered.per_worker) < 0.5 * 4 * 150
    assert filtered.metrics["log_loss"] == pytest.approx(sk_loss, rel=0.05)
