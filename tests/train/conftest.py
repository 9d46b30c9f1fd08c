"""Fixtures of the training tests: a real redis-server on a free port (skipped, saying why, when none is installed;
.ci/run installs it, so CI runs these tests)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from shoal.train.redisserver import RedisServer


@pytest.fixture
def redis_srv() -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server; .ci/run does it)")
    srv = RedisServer()
    srv.start()
    try:
        yield srv
    finally:
        srv.close()
