"""The Lithops-shaped executor on Shoal's own back ends, and training through it with faults injected."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import numpy as np
import pytest

from shoal.testing import wait_until
from shoal.train import FunctionExecutor, make_blobs, train
from shoal.train.job import initial_centers
from shoal.train.redisserver import RedisServer
from shoal.train.store import RedisStore
from shoal.train.worker import run_worker


def square(x: int) -> int:
    return x * x


def add(a: int, b: int) -> int:
    return a + b


def total(results: list[int]) -> int:
    return sum(results)


@pytest.mark.parametrize("backend", ["threads", "local"])
def test_lithops_surface(backend: str) -> None:
    with FunctionExecutor(backend, workers=2) as ex:
        fs = ex.map(square, [1, 2, 3])
        assert ex.get_result(fs) == [1, 4, 9]
        f = ex.call_async(add, {"a": 2, "b": 5})  # a dict is keyword arguments, as in Lithops
        done, not_done = ex.wait([f])
        assert done == [f] and not not_done and f.success
        assert ex.get_result(f) == 7
        assert ex.map_reduce(square, [1, 2, 3], total).result() == 14
        assert ex.call_async(add, (1, 2)).result() == 3
        if backend == "local":
            cost = ex.cost()
            assert cost is not None and cost["user_bill"]["count"] >= 9 and cost["resource_cost"]["vcpu_s"] > 0


def test_local_backend_trains_as_metered_shoal_functions(redis_srv: RedisServer) -> None:
    X = make_blobs(3000, 4, centers=5, seed=2)[0]
    init = initial_centers(X, 5, "random", seed=0)
    ref = train("kmeans", X, k=5, workers=2, rounds=8, init=init)
    r = train("kmeans", X, k=5, workers=2, cores=1, rounds=8, init=init, store="redis", redis_url=redis_srv.url)
    assert r.backend == "local"
    assert r.metrics["inertia"] == pytest.approx(ref.metrics["inertia"], rel=1e-12)
    assert r.cost is not None and r.cost["user_bill"]["count"] == 2 and r.cost["user_bill"]["usd"] > 0
    assert RedisStore(redis_srv.url, "x")._r.keys("shoal:*") == []  # the job cleaned up after itself


def _clock(state: np.ndarray | None) -> int:
    return 0 if state is None else int(state[0])


def kill_me_once_at_round_3(job: dict[str, Any], worker: int) -> dict[str, Any]:
    """Worker 1's first invocation dies (SIGKILL, as an OOM kill would) once it has done 3 rounds."""
    store = RedisStore(job["store"]["url"], job["job"])
    if worker == 1 and store.incr("invocations:1") == 1:

        def killer() -> None:
            while max(_clock(store.get("ckpt:1")), _clock(store.get("state:1"))) < 3:  # BSP, SSP
                time.sleep(0.001)
            os.kill(os.getpid(), signal.SIGKILL)

        threading.Thread(target=killer, daemon=True).start()
    return run_worker(job, worker)


@pytest.mark.parametrize("sync", ["bsp", "ssp"])
def test_a_worker_killed_mid_job_is_reinvoked_and_resumes(redis_srv: RedisServer, sync: str) -> None:
    """Worker 1's instance is killed after round 3; the runtime re-invokes it on a fresh instance, it resumes from
    its checkpoint (BSP) or its own updates (SSP) in the store, and the job ends with the model of an undisturbed
    job: the same bit for bit under BSP, as good under SSP (whose result depends on timing anyway)."""
    X = make_blobs(4000, 4, centers=6, seed=4)[0]
    init = initial_centers(X, 6, "random", seed=0)
    params: dict[str, Any] = {"sync": sync} | ({"batch_size": 128} if sync == "ssp" else {})
    ref = train("kmeans", X, k=6, workers=2, rounds=40, init=init)
    with FunctionExecutor("local", workers=2) as ex:
        r = train(
            "kmeans", X, k=6, workers=2, rounds=40, init=init, store="redis", redis_url=redis_srv.url,
            executor=ex, worker_fn=kill_me_once_at_round_3, **params,
        )  # fmt: skip
        assert ex.cost()["user_bill"]["count"] >= 2  # type: ignore[index]
    assert r.per_worker[1]["resumed_from"] >= 3
    if sync == "bsp":
        assert np.array_equal(r.model, ref.model)
        assert r.metrics["inertia"] == pytest.approx(ref.metrics["inertia"], rel=1e-12)
    else:
        assert r.metrics["inertia"] <= 1.05 * ref.metrics["inertia"]


def test_a_redis_restart_mid_job_resumes_from_the_last_checkpoint(redis_srv: RedisServer) -> None:
    """Redis is killed (no save) and restarted after round 5: it comes back with the last SAVE, every worker notices
    the new server, goes back to its checkpoint there, and the job ends with the model of an undisturbed job."""
    X = make_blobs(3000, 4, centers=6, seed=6)[0]
    init = initial_centers(X, 6, "random", seed=0)
    ref = train("kmeans", X, k=6, workers=2, rounds=150, init=init)
    restarted = []

    def on_round(r: int, loss: float) -> None:
        if r >= 5 and not restarted:
            redis_srv.restart()
            restarted.append(r)

    r = train(
        "kmeans", X, k=6, workers=2, rounds=150, init=init, store="redis", redis_url=redis_srv.url,
        backend="threads", checkpoint_every=2, on_round=on_round,
    )  # fmt: skip
    assert restarted
    assert sum(w["store_restarts"] for w in r.per_worker) >= 1
    assert np.array_equal(r.model, ref.model)


#: How each worker of the failing job ended (threads back end: same process).
ENDINGS: list[str] = []


def fail_worker_1(job: dict[str, Any], worker: int) -> dict[str, Any]:
    if worker == 1:
        raise ValueError("worker 1 cannot read its shard")
    try:
        return run_worker(job, worker)
    except Exception as e:
        ENDINGS.append(type(e).__name__)
        raise


@pytest.mark.parametrize("sync", ["bsp", "ssp"])
def test_a_failed_worker_fails_the_job_at_once(sync: str) -> None:
    """Worker 1 raises; the driver reports its error and aborts the job through the store, so worker 0 stops
    waiting for it (JobAborted) instead of running into its barrier timeout (60 s, a BarrierTimeout)."""
    X = make_blobs(2000, 3, centers=4, seed=8)[0]
    ENDINGS.clear()
    with pytest.raises(ValueError, match="cannot read its shard"):
        train("kmeans", X, k=4, workers=2, rounds=20, batch_size=64, sync=sync, worker_fn=fail_worker_1)
    wait_until(lambda: ENDINGS, timeout=30, message="worker 0 to end")
    assert ENDINGS == ["JobAborted"]
