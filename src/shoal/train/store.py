"""State stores: where serverless training workers share arrays, counters and barriers.

Workers of one job never talk to each other; they meet in a store (LambdaML and MLLess do the same through Redis or
S3). Every key is namespaced per job (``shoal:{job}:{key}``), so jobs share a server safely and a finished job is
removed with one :meth:`StateStore.clear`.

- :class:`LocalStore` lives in this process's memory. It serves workers that are threads of this process (the
  ``threads`` executor back end, tests, notebooks); processes cannot reach it.
- :class:`RedisStore` talks to a real Redis server and serves workers in any process or on any machine.
  :func:`shoal.train.redisserver.redis_server` starts a private ``redis-server`` when no URL is given.

Arrays travel as raw bytes behind a small JSON header (dtype, shape): nothing is pickled, and object arrays are
refused.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = [
    "BarrierTimeout",
    "LocalStore",
    "RedisStore",
    "StateStore",
    "StoreError",
    "StoreRestarted",
    "StoreSpec",
    "decode_array",
    "encode_array",
    "open_store",
]

_MAGIC = b"SHA1"


class StoreError(RuntimeError):
    """The store cannot do what was asked (a barrier timed out, the server is unreachable, a bad value)."""


class BarrierTimeout(StoreError):
    """Not every party arrived at a barrier in time."""


class StoreRestarted(StoreError):
    """The store's server restarted: whatever was written after its last checkpoint is gone.

    Workers answer it by resuming from their last checkpoint in the store.
    """


@runtime_checkable
class StateStore(Protocol):
    """What training workers need from shared state. Keys are relative to the job's namespace."""

    job: str

    def put(self, key: str, value: np.ndarray) -> None: ...

    def get(self, key: str) -> np.ndarray | None: ...

    def get_many(self, keys: Sequence[str]) -> list[np.ndarray | None]: ...

    def delete(self, *keys: str) -> None: ...

    def incr(self, key: str, amount: int = 1) -> int:
        """Atomically add ``amount`` to the counter ``key`` (0 when absent) and return the new value."""
        ...

    def counter(self, key: str) -> int: ...

    def arrive(self, key: str, member: int, parties: int = 0) -> int:
        """Mark ``member`` arrived at barrier ``key`` (idempotent: twice counts once); returns how many have. With
        ``parties``, the arrival that completes the barrier wakes whoever waits in :meth:`barrier`."""
        ...

    def notify(self, key: str, waiters: int) -> None:
        """Wake up to ``waiters`` callers of :meth:`wait_change` on ``key`` (now or when they next wait)."""
        ...

    def wait_change(self, key: str, timeout_s: float) -> None:
        """Block until :meth:`notify` on ``key`` or ``timeout_s``: a wait without polling (callers re-check)."""
        ...

    def barrier(self, key: str, member: int, parties: int, timeout_s: float = 60.0) -> None:
        """Arrive at ``key`` and wait until ``parties`` members have. Raises :class:`BarrierTimeout` on timeout."""
        ...

    def checkpoint(self) -> None:
        """Make everything written so far survive a restart of the store's server (a no-op where meaningless)."""
        ...

    def clear(self) -> None:
        """Remove every key of this job."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class StoreSpec:
    """How a worker (perhaps in another process) opens the job's store: plain data, carried to the worker."""

    kind: str  # "local" | "redis"
    job: str
    url: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "job": self.job, "url": self.url}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StoreSpec:
        return cls(str(d["kind"]), str(d["job"]), str(d.get("url", "")))


def encode_array(a: np.ndarray) -> bytes:
    a = np.ascontiguousarray(a)
    if a.dtype.hasobject:
        raise StoreError("object arrays cannot be stored (they would need pickling)")
    header = json.dumps({"dtype": a.dtype.str, "shape": list(a.shape)}).encode()
    return _MAGIC + len(header).to_bytes(4, "little") + header + a.tobytes()


def decode_array(b: bytes) -> np.ndarray:
    if b[:4] != _MAGIC:
        raise StoreError("not an array written by a Shoal store")
    n = int.from_bytes(b[4:8], "little")
    header = json.loads(b[8 : 8 + n])
    dtype = np.dtype(header["dtype"])
    if dtype.hasobject:
        raise StoreError("refusing an object array")
    return np.frombuffer(b, dtype=dtype, offset=8 + n).reshape(header["shape"]).copy()


def _poll_sleeps(first_s: float = 2e-4, cap_s: float = 0.01) -> Iterator[float]:
    s = first_s
    while True:
        yield s
        s = min(cap_s, s * 1.5)


# -- in this process --------------------------------------------------------------------------------------------------
class LocalStore:
    """An in-memory store for workers that are threads of this process. Thread-safe; copies arrays in and out."""

    _registry: dict[str, LocalStore] = {}  # noqa: RUF012 - one store per job in this process, see open_store
    _registry_lock = threading.Lock()

    def __init__(self, job: str) -> None:
        self.job = job
        self._values: dict[str, np.ndarray] = {}
        self._counters: dict[str, int] = {}
        self._sets: dict[str, set[int]] = {}
        self._cond = threading.Condition()

    @classmethod
    def shared(cls, job: str) -> LocalStore:
        """The one LocalStore of ``job`` in this process (made on first use)."""
        with cls._registry_lock:
            store = cls._registry.get(job)
            if store is None:
                store = cls._registry[job] = cls(job)
            return store

    def put(self, key: str, value: np.ndarray) -> None:
        with self._cond:
            self._values[key] = np.array(value, copy=True)

    def get(self, key: str) -> np.ndarray | None:
        with self._cond:
            v = self._values.get(key)
            return None if v is None else v.copy()

    def get_many(self, keys: Sequence[str]) -> list[np.ndarray | None]:
        return [self.get(k) for k in keys]

    def delete(self, *keys: str) -> None:
        with self._cond:
            for k in keys:
                self._values.pop(k, None)
                self._counters.pop(k, None)
                self._sets.pop(k, None)

    def incr(self, key: str, amount: int = 1) -> int:
        with self._cond:
            v = self._counters[key] = self._counters.get(key, 0) + amount
            self._cond.notify_all()
            return v

    def counter(self, key: str) -> int:
        with self._cond:
            return self._counters.get(key, 0)

    def arrive(self, key: str, member: int, parties: int = 0) -> int:
        with self._cond:
            s = self._sets.setdefault(key, set())
            s.add(member)
            self._cond.notify_all()
            return len(s)

    def notify(self, key: str, waiters: int) -> None:
        with self._cond:
            self._cond.notify_all()

    def wait_change(self, key: str, timeout_s: float) -> None:
        with self._cond:
            self._cond.wait(timeout_s)

    def barrier(self, key: str, member: int, parties: int, timeout_s: float = 60.0) -> None:
        self.arrive(key, member)
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._sets.get(key, ())) >= parties, timeout_s):
                raise BarrierTimeout(f"barrier {key!r} of job {self.job!r}: {len(self._sets[key])}/{parties} arrived")

    def checkpoint(self) -> None:
        pass

    def clear(self) -> None:
        with self._cond:
            self._values.clear()
            self._counters.clear()
            self._sets.clear()
        with self._registry_lock:
            if self._registry.get(self.job) is self:
                del self._registry[self.job]

    def close(self) -> None:
        pass


# -- Redis ------------------------------------------------------------------------------------------------------------
class RedisStore:
    """A store on a real Redis server (redis-py). Usable from any process that can reach the server.

    Counters are ``INCRBY``; barriers are a set per barrier (``SADD`` is idempotent, so a re-invoked worker that
    arrives again counts once); waiters block in ``BLPOP`` on a wake list that the completing arrival fills.
    :meth:`checkpoint` runs ``SAVE``.

    A restart of the server is detected by its ``run_id``: the first call that finds the server changed raises
    :class:`StoreRestarted` (once per restart, after the call itself has run), and the worker resumes from its last
    checkpoint. An unreachable server is retried for ``reconnect_s`` seconds.
    """

    def __init__(self, url: str, job: str, reconnect_s: float = 30.0) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.job = job
        self.url = url
        self.prefix = f"shoal:{job}:"
        self.reconnect_s = reconnect_s
        # Retries are ours (see _call): redis-py's own would hide a restart of the server from us. redis-py does
        # reconnect a dropped connection on its own when it takes it from its pool, so every new connection asks the
        # server for its run_id (_on_connect): a new run_id is a restart.
        self._run_id: bytes | None = None
        self._restarted = False
        self._r = redis.Redis.from_url(
            url, retry=Retry(NoBackoff(), 0), socket_timeout=30, redis_connect_func=self._on_connect
        )
        self._connection_error = redis.ConnectionError
        self._errors = (redis.ConnectionError, redis.TimeoutError, ConnectionError, OSError)
        self._call(self._r.ping)

    def _on_connect(self, conn: Any) -> None:
        conn.on_connect()
        conn.send_command("INFO", "server")
        m = re.search(rb"run_id:(\w+)", conn.read_response())
        run_id = m.group(1) if m else b""
        known, self._run_id = self._run_id, run_id
        if known is not None and run_id != known:
            # Refuse to send the pending command: run on the restored server it could write state from after the
            # checkpoint (a worker's later round), which the other workers will never match.
            self._restarted = True
            raise self._connection_error("the redis server restarted")

    def _call(self, fn: Any, *args: Any) -> Any:
        while True:
            try:
                return fn(*args)
            except self._errors as e:
                err = e
            if not self._restarted:
                self._wait_for_server(err)
            if self._restarted:
                self._restarted = False
                raise StoreRestarted(f"redis at {self.url} restarted; resume from the last checkpoint") from err

    def _wait_for_server(self, err: BaseException) -> None:
        deadline = time.monotonic() + self.reconnect_s
        for s in _poll_sleeps(0.01, 0.25):
            if time.monotonic() > deadline:
                raise StoreError(f"redis at {self.url} unreachable for {self.reconnect_s:g} s: {err}") from err
            time.sleep(s)
            try:
                self._r.connection_pool.disconnect()
                self._r.ping()
                return
            except self._errors:
                if self._restarted:
                    return

    def _k(self, key: str) -> str:
        return self.prefix + key

    def put(self, key: str, value: np.ndarray) -> None:
        self._call(self._r.set, self._k(key), encode_array(value))

    def get(self, key: str) -> np.ndarray | None:
        b = self._call(self._r.get, self._k(key))
        return None if b is None else decode_array(b)

    def get_many(self, keys: Sequence[str]) -> list[np.ndarray | None]:
        if not keys:
            return []
        raw = self._call(self._r.mget, [self._k(k) for k in keys])
        return [None if b is None else decode_array(b) for b in raw]

    def delete(self, *keys: str) -> None:
        if keys:
            self._call(self._r.delete, *[self._k(k) for k in keys])

    def incr(self, key: str, amount: int = 1) -> int:
        return int(self._call(self._r.incrby, self._k(key), amount))

    def counter(self, key: str) -> int:
        v = self._call(self._r.get, self._k(key))
        return 0 if v is None else int(v)

    def arrive(self, key: str, member: int, parties: int = 0) -> int:
        def sadd_scard() -> int:
            pipe = self._r.pipeline(transaction=True)
            pipe.sadd(self._k(key), member)
            pipe.scard(self._k(key))
            added, n = pipe.execute()
            if parties > 1 and added and int(n) == parties:  # this arrival completes it: wake the waiters
                self._wake(key, parties)
            return int(n)

        return int(self._call(sadd_scard))

    def _wake(self, key: str, waiters: int) -> None:
        pipe = self._r.pipeline(transaction=True)
        pipe.rpush(self._k(f"wake:{key}"), *([b"1"] * waiters))
        pipe.expire(self._k(f"wake:{key}"), 600)  # tokens nobody took (a waiter that had left) go by themselves
        pipe.execute()

    def notify(self, key: str, waiters: int) -> None:
        if waiters > 0:
            self._call(self._wake, key, waiters)

    def wait_change(self, key: str, timeout_s: float) -> None:
        if timeout_s > 0:
            self._call(self._r.blpop, [self._k(f"wake:{key}")], timeout_s)

    def barrier(self, key: str, member: int, parties: int, timeout_s: float = 60.0) -> None:
        """Waiters block in ``BLPOP`` on a wake list that the completing arrival fills (one token per party), and
        re-check the count at least every 0.1 s; no polling back-off, so no wake-up late by up to 10 ms."""
        deadline = time.monotonic() + timeout_s
        n = self.arrive(key, member, parties)
        while n < parties:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BarrierTimeout(f"barrier {key!r} of job {self.job!r}: {n}/{parties} arrived in {timeout_s:g} s")
            self.wait_change(key, min(left, 0.1))
            n = int(self._call(self._r.scard, self._k(key)))

    def checkpoint(self) -> None:
        self._call(self._r.save)

    def clear(self) -> None:
        keys = list(self._call(lambda: list(self._r.scan_iter(match=self.prefix + "*", count=1000))))
        for i in range(0, len(keys), 1000):
            self._call(self._r.delete, *keys[i : i + 1000])

    def close(self) -> None:
        self._r.close()


def open_store(spec: StoreSpec | dict[str, Any]) -> StateStore:
    """Open the store a :class:`StoreSpec` names, from inside a worker."""
    if isinstance(spec, dict):
        spec = StoreSpec.from_dict(spec)
    if spec.kind == "local":
        return LocalStore.shared(spec.job)
    if spec.kind == "redis":
        return RedisStore(spec.url, spec.job)
    raise StoreError(f"unknown store kind {spec.kind!r}: use local or redis")
