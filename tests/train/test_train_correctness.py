"""Distributed training gives scikit-learn's answer on the same data, init and iterations (tolerances documented in
docs/training.md, "Correctness")."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss

from shoal.train import make_blobs, make_logistic, train
from shoal.train.algorithms.kmeans import KMeans as ShoalKMeans
from shoal.train.job import initial_centers
from shoal.train.worker import shard_bounds

KMEANS_RTOL = 1e-9


@pytest.fixture(scope="module")
def blobs() -> np.ndarray:
    return make_blobs(6000, 6, centers=8, spread=2.5, seed=3)[0]


@pytest.mark.parametrize(
    ("workers", "cores", "comm"),
    [(1, 1, "allreduce"), (3, 2, "allreduce"), (4, 1, "scatterreduce"), (3, 1, "ps")],
)
def test_lloyd_matches_scikit_learn_inertia(blobs: np.ndarray, workers: int, cores: int, comm: str) -> None:
    init = initial_centers(blobs, 8, "random", seed=0)
    sk = KMeans(8, init=init, n_init=1, max_iter=12, tol=0.0, algorithm="lloyd").fit(blobs)
    r = train("kmeans", blobs, k=8, workers=workers, cores=cores, rounds=12, init=init, comm=comm)
    assert r.metrics["inertia"] == pytest.approx(sk.inertia_, rel=KMEANS_RTOL)
    assert np.allclose(np.sort(ShoalKMeans(6, 8).centers(r.model), axis=0), np.sort(sk.cluster_centers_, axis=0))
    assert len(r.losses) == 12 and r.losses[0] >= r.losses[-1]


def test_allreduce_scatterreduce_and_ps_give_the_same_model_bit_for_bit(blobs: np.ndarray) -> None:
    a = train("kmeans", blobs, k=8, workers=3, rounds=5, seed=1, comm="allreduce")
    b = train("kmeans", blobs, k=8, workers=3, rounds=5, seed=1, comm="scatterreduce")
    c = train("kmeans", blobs, k=8, workers=3, rounds=5, seed=1, comm="ps")
    assert np.array_equal(a.model, b.model) and np.array_equal(a.model, c.model)
    assert a.losses == b.losses == c.losses


def test_minibatch_kmeans_gets_close_to_lloyd(blobs: np.ndarray) -> None:
    """Mini-batch k-means follows a different path, so it is held to a looser bound than Lloyd's: within 5%."""
    init = initial_centers(blobs, 8, "k-means++", seed=0)
    full = train("kmeans", blobs, k=8, workers=2, rounds=20, init=init)
    mini = train("kmeans", blobs, k=8, workers=2, rounds=60, init=init, batch_size=128)
    assert mini.metrics["inertia"] <= 1.05 * full.metrics["inertia"]


def test_logreg_matches_scikit_learn_accuracy_and_log_loss() -> None:
    X, y = make_logistic(4000, 10, seed=5)
    alpha = 1e-3
    sk = LogisticRegression(C=1.0 / (alpha * len(X)), tol=1e-10, max_iter=1000).fit(X, y)
    sk_loss, sk_acc = log_loss(y, sk.predict_proba(X)[:, 1]), accuracy_score(y, sk.predict(X))
    r = train("logreg", X, y, workers=4, cores=1, rounds=150, lr=1.0, alpha=alpha)
    assert r.metrics["accuracy"] == pytest.approx(sk_acc, abs=0.01)
    assert r.metrics["log_loss"] == pytest.approx(sk_loss, rel=0.01)
    assert r.losses[0] == pytest.approx(np.log(2))  # the model starts at zero
    mini = train("logreg", X, y, workers=4, cores=2, rounds=150, lr=0.5, alpha=alpha, batch_size=64)
    assert mini.metrics["accuracy"] == pytest.approx(sk_acc, abs=0.02)
    assert mini.metrics["log_loss"] == pytest.approx(sk_loss, rel=0.05)


def test_shards_cover_every_row_once() -> None:
    for n, w in [(10, 3), (7, 7), (1000, 6)]:
        bounds = [shard_bounds(n, w, i) for i in range(w)]
        assert bounds[0][0] == 0 and bounds[-1][1] == n
        assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
        assert max(b - a for a, b in bounds) - min(b - a for a, b in bounds) <= 1


def test_bad_requests_are_refused_naming_the_problem() -> None:
    X = np.zeros((10, 2))
    with pytest.raises(ValueError, match="needs --store redis"):
        train("kmeans", X, k=2, backend="local", store="local")
    with pytest.raises(ValueError, match="unknown algorithm"):
        train("svm", X)
    with pytest.raises(ValueError, match="labels"):
        train("logreg", X)
    with pytest.raises(ValueError, match="unknown sync"):
        train("kmeans", X, k=2, workers=2, sync="hogwild")
    with pytest.raises(ValueError, match="batch_size > 0"):
        train("kmeans", X, k=2, workers=2, sync="asp")


def test_cores_change_speed_not_results(blobs: np.ndarray) -> None:
    """Rows go in fixed blocks summed in block order, so C threads give the model one thread gives, bit for bit."""
    big = np.concatenate([blobs, blobs + 0.5])  # more than one block per worker
    one = train("kmeans", big, k=8, workers=2, cores=1, rounds=4, seed=2)
    two = train("kmeans", big, k=8, workers=2, cores=2, rounds=4, seed=2)
    assert np.array_equal(one.model, two.model)
