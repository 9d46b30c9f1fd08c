"""The data plane: values between functions travel as msgpack, with arrays in shared memory.

Nothing here ever unpickles. A value is any msgpack-able structure (dict, list, str, bytes, numbers, bool, None)
whose leaves may also be NumPy arrays of a plain dtype. Arrays travel as msgpack extension types:

* ``EXT_INLINE`` (1): ``[dtype, shape, raw bytes]`` inside the message. Small arrays, and arrays from clients.
* ``EXT_SHM`` (2): ``[segment, dtype, shape]``, the array's bytes in a POSIX shared-memory file under /dev/shm.
  The reader maps the segment and wraps it without a copy. Only Shoal's own processes write this type: a request
  that carries it is refused (see :func:`decode_client`), since it would name a file on the server.

Segments are recycled (see :class:`SegmentPool`): the orchestrator frees every segment a request used when the
request ends, so a reader must not keep an input array past the stage call that received it (copy it if needed).
"""

from __future__ import annotations

import contextlib
import mmap
import os
import secrets
import threading
from typing import Any

import msgpack
import numpy as np

__all__ = [
    "EXT_INLINE",
    "EXT_SHM",
    "INLINE_MAX_BYTES",
    "DataError",
    "decode",
    "decode_client",
    "encode",
    "encode_client",
    "segments_of",
    "unlink_segments",
]

EXT_INLINE = 1
EXT_SHM = 2
#: Arrays up to this size are copied into the message; larger ones go through shared memory.
INLINE_MAX_BYTES = 64 * 1024
SHM_DIR = "/dev/shm"
_PREFIX = "shoal-"


class DataError(ValueError):
    """A value cannot be carried by the data plane (for example an object array), or a message is malformed."""


def _check_dtype(dt: np.dtype) -> str:
    if dt.hasobject or dt.kind == "V":
        raise DataError(f"arrays of dtype {dt} cannot be sent between functions; use a numeric, bool or string dtype")
    return dt.str


class SegmentPool:
    """Shared-memory segments owned by one process, recycled instead of unlinked.

    A fresh tmpfs segment costs about half a millisecond per MiB (the kernel allocates and zeroes its pages); a
    recycled one costs only the copy. Segments come in power-of-two size classes. ``free`` returns a segment to the
    pool once every reader is done with it (the orchestrator says so when a request ends); ``close`` unlinks all.
    Segment names carry the owner's id, so the parent can unlink a dead instance's segments.
    """

    MIN_CLASS = 1 << 17

    def __init__(self, owner: str) -> None:
        if not owner.replace("-", "").isalnum():
            raise DataError(f"bad segment owner {owner!r}")
        self.owner = owner
        self._free: dict[int, list[str]] = {}
        self._maps: dict[str, mmap.mmap] = {}
        self._lock = threading.Lock()  # instances with max_concurrency > 1 encode from several threads

    def alloc(self, nbytes: int) -> tuple[str, mmap.mmap]:
        size = max(self.MIN_CLASS, 1 << max(nbytes - 1, 1).bit_length())
        with self._lock:
            free = self._free.get(size)
            if free:
                name = free.pop()
                return name, self._maps[name]
        name = f"{_PREFIX}{self.owner}-{secrets.token_hex(6)}"
        fd = os.open(os.path.join(SHM_DIR, name), os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        try:
            os.ftruncate(fd, size)
            mm = mmap.mmap(fd, size, flags=mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0))
        finally:
            os.close(fd)
        with self._lock:
            self._maps[name] = mm
        return name, mm

    def free(self, names: list[str]) -> None:
        with self._lock:
            for name in names:
                mm = self._maps.get(name)
                if mm is not None:
                    self._free.setdefault(len(mm), []).append(name)

    def owns(self, name: str) -> bool:
        return name in self._maps

    def close(self) -> None:
        unlink_segments(list(self._maps))
        self._maps.clear()
        self._free.clear()


class SegmentCache:
    """Read-only mappings of other processes' segments, kept open because segments are recycled (LRU)."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._maps: dict[str, mmap.mmap] = {}

    def get(self, name: str) -> mmap.mmap:
        mm = self._maps.pop(name, None)
        if mm is None:
            if not name.startswith(_PREFIX) or "/" in name:
                raise DataError(f"bad segment name {name!r}")
            fd = os.open(os.path.join(SHM_DIR, name), os.O_RDONLY)
            try:
                mm = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
            finally:
                os.close(fd)
            if len(self._maps) >= self._size:
                self._maps.pop(next(iter(self._maps)))  # oldest; views still hold their own reference
        self._maps[name] = mm
        return mm


_cache = SegmentCache()


def encode(value: Any, pool: SegmentPool | None = None, native_scalars: bool = False) -> bytes:
    """Encode a value; arrays larger than :data:`INLINE_MAX_BYTES` go to shared memory from ``pool`` when given.

    NumPy scalars travel as inline arrays of shape ``None`` and decode as NumPy scalars again (so a stage gets what
    it would get in one process, under every plan); with ``native_scalars`` they become plain msgpack numbers.
    """

    def default(obj: Any) -> Any:
        if isinstance(obj, np.ndarray):
            dt = _check_dtype(obj.dtype)
            if pool is not None and obj.nbytes > INLINE_MAX_BYTES:
                name, mm = pool.alloc(obj.nbytes)
                np.frombuffer(mm, dtype=obj.dtype, count=obj.size).reshape(obj.shape)[...] = obj
                return msgpack.ExtType(EXT_SHM, msgpack.packb([name, dt, list(obj.shape)]))
            return msgpack.ExtType(EXT_INLINE, msgpack.packb([dt, list(obj.shape), _raw(obj)]))
        if isinstance(obj, np.generic):
            if native_scalars:
                return obj.item()
            return msgpack.ExtType(EXT_INLINE, msgpack.packb([_check_dtype(obj.dtype), None, _raw(np.asarray(obj))]))
        if isinstance(obj, msgpack.ExtType):  # already encoded: forward untouched
            return obj
        # strict_types (so that np.float64, a float subclass, reaches the branch above) sends subclasses here
        if isinstance(obj, list | tuple):
            return list(obj)
        if isinstance(obj, dict):
            return dict(obj)
        for base in (int, float, str, bytes):
            if isinstance(obj, base):
                return base(obj)
        raise DataError(f"cannot send a {type(obj).__name__} between functions; use arrays, numbers, str, lists, dicts")

    try:
        return msgpack.packb(value, default=default, use_bin_type=True, strict_types=True)
    except (TypeError, ValueError, OverflowError) as e:
        raise DataError(str(e)) from e


def _raw(arr: np.ndarray) -> memoryview:
    # As bytes: a buffer of some dtypes (datetime64, timedelta64) cannot be exported directly.
    return np.ascontiguousarray(arr).reshape(-1).view(np.uint8).data


def _array_inline(data: bytes) -> Any:
    dt, shape, raw = msgpack.unpackb(data)
    arr = np.frombuffer(raw, dtype=np.dtype(dt))
    if shape is None:  # a NumPy scalar
        return arr.reshape(())[()]
    return arr.reshape(shape)


def _ext_hook(code: int, data: bytes) -> Any:
    try:
        if code == EXT_INLINE:
            return _array_inline(data)
        if code == EXT_SHM:
            name, dt, shape = msgpack.unpackb(data)
            mm = _cache.get(name)
            dtype = np.dtype(dt)
            count = int(np.prod(shape)) if shape else 1
            return np.frombuffer(mm, dtype=dtype, count=count).reshape(shape)
    except (ValueError, TypeError, OSError) as e:
        raise DataError(f"malformed array in message: {e}") from e
    raise DataError(f"unknown extension type {code}")


def decode(data: bytes) -> Any:
    """Decode a message of Shoal's own processes: arrays become read-only NumPy views (no copy from shm)."""
    return msgpack.unpackb(data, ext_hook=_ext_hook, strict_map_key=False)


def decode_forward(data: bytes) -> Any:
    """Decode a message but leave arrays as opaque ExtType values, to forward them without touching their bytes."""
    return msgpack.unpackb(data, strict_map_key=False)


def _client_ext_hook(code: int, data: bytes) -> Any:
    if code != EXT_INLINE:
        raise DataError(f"msgpack extension type {code} is not accepted from clients; send arrays as type 1")
    return _array_inline(data)


def decode_client(data: bytes) -> Any:
    """Decode a msgpack body from a client. Only inline arrays are allowed; nothing is unpickled."""
    try:
        return msgpack.unpackb(data, ext_hook=_client_ext_hook, strict_map_key=False)
    except DataError:
        raise
    except Exception as e:  # msgpack raises several types for malformed input
        raise DataError(f"malformed msgpack body: {e}") from e


def encode_client(value: Any) -> bytes:
    """Encode a value the way a client sends it (arrays inline as extension type 1, NumPy scalars as numbers)."""
    return encode(value, native_scalars=True)


def segments_of(value: Any) -> list[str]:
    """Names of the shared-memory segments referenced by a forwarded (ExtType-holding) value."""
    out: list[str] = []
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, msgpack.ExtType):
            if v.code == EXT_SHM:
                out.append(msgpack.unpackb(v.data)[0])
        elif isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, (list, tuple)):
            stack.extend(v)
    return out


def unlink_segments(names: list[str]) -> None:
    for n in names:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(SHM_DIR, n))


def materialize(value: Any) -> Any:
    """Turn forwarded ExtType leaves into arrays (copied out of shared memory, so segments can be unlinked)."""
    if isinstance(value, msgpack.ExtType):
        arr = _ext_hook(value.code, value.data)
        return np.array(arr) if value.code == EXT_SHM else arr
    if isinstance(value, dict):
        return {k: materialize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [materialize(v) for v in value]
    return value


def segment_owner(name: str) -> str:
    """The id of the process whose pool owns segment ``name``."""
    return name[len(_PREFIX) :].rsplit("-", 1)[0]
