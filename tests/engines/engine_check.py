"""Run Lithops-style code and a training job on a real engine; exit 0 when all of it agrees with the embedded run.

Run by tests/engines/test_engines.py in a process of its own (see there why): ``python engine_check.py BACKEND URL``.
"""

from __future__ import annotations

import sys

import cloudpickle
import numpy as np

from shoal.train import FunctionExecutor, make_blobs, train
from shoal.train.job import initial_centers


def square(x: int) -> int:
    return x * x


def add(a: int, b: int) -> int:
    return a + b


def total(results: list[int]) -> int:
    return sum(results)


def main(backend: str, redis_url: str) -> None:
    # The engines' workers import functions by module name, and this script is not importable there: ship the
    # functions above by value (shoal.train.worker.run_worker is importable and goes by name).
    if backend == "ray":
        from ray import cloudpickle as ray_cloudpickle

        ray_cloudpickle.register_pickle_by_value(sys.modules[__name__])
    else:
        cloudpickle.register_pickle_by_value(sys.modules[__name__])
    X = make_blobs(2000, 3, centers=4, seed=7)[0]
    init = initial_centers(X, 4, "random", seed=0)
    ref = train("kmeans", X, k=4, workers=2, rounds=6, init=init)
    with FunctionExecutor(backend, workers=2) as ex:
        assert ex.get_result(ex.map(square, [1, 2, 3])) == [1, 4, 9]
        assert ex.call_async(add, {"a": 2, "b": 5}).result(60) == 7  # a dict is keyword arguments, as in Lithops
        assert ex.map_reduce(square, [1, 2], total).result(60) == 5
        r = train("kmeans", X, k=4, workers=2, rounds=6, init=init, store="redis", redis_url=redis_url, executor=ex)
    assert r.backend == backend
    # Billed like the local engine reports it: one call per worker, their measured seconds x 1 vCPU.
    assert r.cost is not None and r.cost["user_bill"]["count"] >= 2 and r.cost["user_bill"]["vcpu_s"] > 0
    assert np.array_equal(r.model, ref.model)
    print("engine check passed")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
