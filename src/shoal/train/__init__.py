"""Serverless training: workers are functions that share state through a store.

>>> from shoal.train import train, make_blobs
>>> X, _ = make_blobs(2000, 4, centers=5, seed=1)
>>> result = train("kmeans", X, k=5, workers=2, cores=1, rounds=10)  # doctest: +SKIP

See docs/training.md for the design.
"""

from shoal.train.data import load_array, make_blobs, make_logistic
from shoal.train.executor import FunctionExecutor, ResponseFuture
from shoal.train.job import TrainResult, train
from shoal.train.redisserver import redis_server
from shoal.train.store import LocalStore, RedisStore, StateStore, StoreError, StoreRestarted

__all__ = [
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
