"""Store semantics, the same for LocalStore and RedisStore: arrays round-trip, counters are atomic under threads and
processes, barriers release only when every party has arrived, keys are namespaced per job."""

from __future__ import annotations

import multiprocessing as mp
import threading

import numpy as np
import pytest

from shoal.train.redisserver import RedisServer
from shoal.train.store import (
    LocalStore,
    RedisStore,
    StateStore,
    StoreError,
    StoreRestarted,
    decode_array,
    encode_array,
)


@pytest.fixture(params=["local", "redis"])
def store(request: pytest.FixtureRequest) -> StateStore:
    if request.param == "local":
        return LocalStore("t1")
    srv: RedisServer = request.getfixturevalue("redis_srv")
    return RedisStore(srv.url, "t1")


def test_arrays_round_trip_with_dtype_and_shape(store: StateStore) -> None:
    for a in (np.arange(12, dtype=np.float32).reshape(3, 4), np.array([1, -2], dtype=np.int64), np.zeros((0, 3))):
        store.put("a", a)
        b = store.get("a")
        assert b is not None and b.dtype == a.dtype and b.shape == a.shape and np.array_equal(a, b)
    assert store.get("missing") is None
    assert [x is None for x in store.get_many(["a", "missing"])] == [False, True]
    store.delete("a")
    assert store.get("a") is None


def test_object_arrays_are_refused_not_pickled() -> None:
    with pytest.raises(StoreError):
        encode_array(np.array([{"a": 1}], dtype=object))
    with pytest.raises(StoreError):
        decode_array(b"\x80\x04pickle")


def test_counters_are_atomic_under_threads(store: StateStore) -> None:
    def bump() -> None:
        for _ in range(200):
            store.incr("n")

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.counter("n") == 800
    assert store.incr("n", 5) == 805


def _bump_redis(url: str) -> None:
    s = RedisStore(url, "t1")
    for _ in range(200):
        s.incr("n")
    s.close()


def test_redis_counters_are_atomic_across_processes(redis_srv: RedisServer) -> None:
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_bump_redis, args=(redis_srv.url,)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert RedisStore(redis_srv.url, "t1").counter("n") == 600


def test_barrier_waits_for_every_party_and_arrival_is_idempotent(store: StateStore) -> None:
    """Worker 0 arrives twice (a re-invoked worker does): it still counts once, so the barrier holds until worker 1
    arrives; then everyone passes."""
    store.arrive("b", 0)
    assert store.arrive("b", 0) == 1
    passed = threading.Event()

    def party0() -> None:
        store.barrier("b", 0, 2, timeout_s=10)
        passed.set()

    t = threading.Thread(target=party0)
    t.start()
    assert not passed.wait(0.1)
    store.barrier("b", 1, 2, timeout_s=10)
    t.join(10)
    assert passed.is_set()


def test_barrier_times_out_naming_the_count(store: StateStore) -> None:
    with pytest.raises(StoreError, match="1/2"):
        store.barrier("lonely", 0, 2, timeout_s=0.05)


def test_keys_are_namespaced_per_job(redis_srv: RedisServer) -> None:
    a, b = RedisStore(redis_srv.url, "job-a"), RedisStore(redis_srv.url, "job-b")
    a.put("x", np.ones(2))
    b.incr("c")
    assert b.get("x") is None
    a.clear()
    assert a.get("x") is None and b.counter("c") == 1


def test_redis_restart_is_reported_once_and_the_last_checkpoint_survives(redis_srv: RedisServer) -> None:
    s = RedisStore(redis_srv.url, "t1")
    s.put("saved", np.array([1.0]))
    s.checkpoint()
    s.put("lost", np.array([2.0]))
    redis_srv.restart()
    with pytest.raises(StoreRestarted):
        s.get("saved")
    saved = s.get("saved")
    assert saved is not None and saved[0] == 1.0
    assert s.get("lost") is None
