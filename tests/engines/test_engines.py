"""The executor on real engines: Lithops' localhost back end (in CI) and a local Ray (where Ray is installed).

Lithops code runs unchanged against Shoal's executor, and a training job through either engine reaches the same
model as the embedded one."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from collections.abc import Iterator

import numpy as np
import pytest

from shoal.train import FunctionExecutor, make_blobs, train
from shoal.train.job import initial_centers
from shoal.train.redisserver import RedisServer


def square(x: int) -> int:
    return x * x


def add(a: int, b: int) -> int:
    return a + b


def total(results: list[int]) -> int:
    return sum(results)


def _need(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (pip install -e '.[{module}]')")
    # The engines' workers import functions by module name, and this test module is not importable there: ship
    # the functions above by value instead (shoal.train.worker.run_worker is importable and goes by name).
    if module == "ray":
        from ray import cloudpickle
    else:
        import cloudpickle
    cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server; .ci/run does it)")
    srv = RedisServer()
    srv.start()
    try:
        yield srv.url
    finally:
        srv.close()


@pytest.mark.parametrize("backend", ["lithops", "ray"])
def test_engine_runs_lithops_code_and_trains(backend: str, redis_url: str) -> None:
    _need(backend)
    X = make_blobs(2000, 3, centers=4, seed=7)[0]
    init = initial_centers(X, 4, "random", seed=0)
    ref = train("kmeans", X, k=4, workers=2, rounds=6, init=init)
    with FunctionExecutor(backend, workers=2) as ex:
        assert ex.get_result(ex.map(square, [1, 2, 3])) == [1, 4, 9]
        assert ex.call_async(add, {"a": 2, "b": 5}).result(60) == 7  # a dict is keyword arguments, as in Lithops
        assert ex.map_reduce(square, [1, 2], total).result(60) == 5
        r = train("kmeans", X, k=4, workers=2, rounds=6, init=init, store="redis", redis_url=redis_url, executor=ex)
    assert r.backend == backend
    assert np.array_equal(r.model, ref.model)
