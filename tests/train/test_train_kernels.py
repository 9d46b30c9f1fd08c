"""The fast kernels and the new modes: k-means' prepared-shard kernel, C processes per worker, L-BFGS logistic
regression (tolerances documented in docs/training.md, "Correctness")."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss
from typer.testing import CliRunner

from shoal.cli import cli
from shoal.train import make_blobs, make_logistic, train
from shoal.train.algorithms._parallel import ProcessCores
from shoal.train.algorithms.kmeans import KMeans, assign
from shoal.train.algorithms.logreg import LBFGS, LogReg
from shoal.train.redisserver import RedisServer

#: L-BFGS run to convergence reaches scikit-learn's optimum of the same objective to this relative log-loss.
LBFGS_RTOL = 1e-6


def test_kmeans_kernel_gives_the_exact_sums_counts_and_inertia() -> None:
    """Blocks, a sparse indicator product and the expanded inertia against a plain per-row computation, on data far
    from the origin (where the expanded form loses the most to cancellation)."""
    X = make_blobs(20_000, 5, centers=6, seed=4)[0] + 50.0
    algo = KMeans(5, 6, block_rows=3000)
    C = X[:6].copy()
    part = algo.partial(algo.initial_model(C), X, None, 1)
    labels, d2 = assign(X, C)
    sums = np.zeros((6, 5))
    np.add.at(sums, labels, X)
    assert np.allclose(part[:30].reshape(6, 5), sums, rtol=1e-12, atol=0)
    assert np.array_equal(part[30:36], np.bincount(labels, minlength=6))
    assert part[-2] == pytest.approx(d2.sum(), rel=1e-9) and part[-1] == len(X)
    assert np.array_equal(algo.partial(algo.initial_model(C), algo.prepare(X), None, 1), part)  # prepared once


@pytest.mark.parametrize("algorithm", ["kmeans", "logreg"])
def test_processes_give_the_threads_result_bit_for_bit(algorithm: str, redis_srv: RedisServer) -> None:
    """Blocks are fixed and summed in block order whoever computes them, so C processes = C threads = 1 core
    (workers on Shoal functions: processes need a worker alone in its process)."""
    if algorithm == "kmeans":
        X, y = make_blobs(40_000, 6, centers=8, seed=2)[0], None
        kw = {"k": 8, "init": "random"}
    else:
        X, y = make_logistic(40_000, 8, seed=2)
        kw = {"lr": 1.0}
    common = {"workers": 2, "rounds": 4, "seed": 3, "store": "redis", "redis_url": redis_srv.url, "backend": "local"}
    runs = [train(algorithm, X, y, cores=c, parallel=p, **common, **kw)  # type: ignore[arg-type]
            for c, p in [(1, "threads"), (2, "threads"), (3, "processes")]]  # fmt: skip
    assert np.array_equal(runs[0].model, runs[1].model) and np.array_equal(runs[1].model, runs[2].model)
    assert runs[0].losses == runs[2].losses and runs[0].metrics == runs[2].metrics


def test_a_process_pool_cleans_up_its_processes_and_shared_memory() -> None:
    X = make_blobs(20_000, 4, centers=3, seed=1)[0]
    algo = KMeans(4, 3)
    Xp = algo.prepare(X)
    model = algo.initial_model(X[:3])
    with ProcessCores(algo, Xp, None, 2, algo.block_width()) as pool:
        assert np.array_equal(algo.partial(model, pool.X, None, pool), algo.partial(model, Xp, None, 1))
        procs, names = list(pool._procs), [s.name for s in pool._shms]
        assert all(p.is_alive() for p in procs)
    assert not any(p.is_alive() for p in procs)
    assert not any(os.path.exists(f"/dev/shm/{n.lstrip('/')}") for n in names)
    with pytest.raises(ValueError, match="cores >= 2"):
        ProcessCores(algo, Xp, None, 1, algo.block_width())


def test_unknown_or_unsafe_parallel_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown parallel"):
        train("kmeans", np.zeros((10, 2)), k=2, workers=1, parallel="fibres")
    with pytest.raises(ValueError, match="use the local back end"):  # fork beside other worker threads: unsafe
        train("kmeans", np.zeros((10, 2)), k=2, workers=1, cores=2, parallel="processes", backend="threads")


def test_lbfgs_reaches_scikit_learns_optimum_in_few_rounds() -> None:
    X, y = make_logistic(4000, 10, seed=5)
    alpha = 1e-3
    sk = LogisticRegression(C=1.0 / (alpha * len(X)), tol=1e-12, max_iter=1000).fit(X, y)
    sk_loss, sk_acc = log_loss(y, sk.predict_proba(X)[:, 1]), accuracy_score(y, sk.predict(X))
    for comm in ("allreduce", "scatterreduce", "ps"):  # any comm: the L-BFGS step is taken by worker 0 alone
        r = train("logreg", X, y, workers=3, rounds=25, alpha=alpha, solver="lbfgs", comm=comm)
        assert r.metrics["log_loss"] == pytest.approx(sk_loss, rel=LBFGS_RTOL)
        assert r.metrics["accuracy"] == pytest.approx(sk_acc, abs=1e-3)
        assert r.losses[0] == pytest.approx(np.log(2))
    gd = train("logreg", X, y, workers=3, rounds=8, alpha=alpha, lr=1.0)
    lb = train("logreg", X, y, workers=3, rounds=8, alpha=alpha, solver="lbfgs")
    assert lb.metrics["log_loss"] < gd.metrics["log_loss"]  # the point of it: fewer rounds to a given loss


def test_solver_and_parallel_from_the_command_line() -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server; .ci/run does it)")
    r = CliRunner().invoke(cli, ["train", "logreg", "--data", "synthetic:3000x5", "--workers", "2", "--cores", "2",
                                 "--parallel", "processes", "--solver", "lbfgs", "--rounds", "12", "--store", "redis",
                                 "--output", "json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["rounds"] == 12 and doc["losses"][-1] < doc["losses"][0]


def test_lbfgs_minimises_a_quadratic() -> None:
    rng = np.random.default_rng(0)
    M = rng.normal(size=(6, 6))
    A, b = M @ M.T + 0.1 * np.eye(6), rng.normal(size=6)
    opt = np.linalg.solve(A, b)
    solver, x = LBFGS(), np.zeros(6)
    for _ in range(60):
        x = solver.next(x, float(0.5 * x @ A @ x - b @ x), A @ x - b)
    assert np.allclose(x, opt, atol=1e-8)


def test_lbfgs_and_comm_limits_are_refused_with_the_way_out() -> None:
    X, y = make_logistic(200, 3, seed=1)
    with pytest.raises(ValueError, match="needs --sync bsp"):
        train("logreg", X, y, workers=2, solver="lbfgs", sync="ssp", batch_size=10)
    with pytest.raises(ValueError, match="full-batch"):
        train("logreg", X, y, workers=2, solver="lbfgs", batch_size=10)
    with pytest.raises(ValueError, match="unknown solver"):
        LogReg(3, solver="newton")
    with pytest.raises(ValueError, match="BSP-only"):
        train("logreg", X, y, workers=2, sync="ssp", comm="scatterreduce", batch_size=10)
