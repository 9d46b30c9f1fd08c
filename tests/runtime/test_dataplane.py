"""The data plane: msgpack with arrays inline or in shared memory, never pickled."""

from __future__ import annotations

import glob
import mmap
import os
from collections.abc import Iterator
from typing import Any

import msgpack
import numpy as np
import pytest

from shoal.runtime.dataplane import (
    EXT_INLINE,
    EXT_SHM,
    INLINE_MAX_BYTES,
    SHM_DIR,
    DataError,
    SegmentPool,
    decode,
    decode_client,
    decode_forward,
    encode,
    encode_client,
    materialize,
    segment_owner,
    segments_of,
)

DTYPES = ["float32", "float64", "int8", "uint16", "int64", "bool", "complex128", "<U7", ">i4", "datetime64[ms]"]


@pytest.fixture
def pool() -> Iterator[SegmentPool]:
    p = SegmentPool(f"t{os.getpid()}")
    yield p
    p.close()


def make(dtype: str, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    n = int(np.prod(shape))
    if dt.kind == "U":
        return np.array([f"s{i % 1000}" for i in range(n)], dtype=dt).reshape(shape)
    if dt.kind == "M":
        return (np.datetime64("2024-01-01T00:00:00", "ms") + rng.integers(0, 10**9, n)).reshape(shape).astype(dt)
    if dt.kind == "b":
        return (rng.random(n) > 0.5).reshape(shape)
    if dt.kind == "c":
        return (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(dt).reshape(shape)
    if dt.kind in "iu":
        return rng.integers(0, 100, n).astype(dt).reshape(shape)
    return rng.standard_normal(n).astype(dt).reshape(shape)


def assert_same(got: Any, want: Any) -> None:
    if isinstance(want, np.ndarray):
        assert isinstance(got, np.ndarray)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    elif isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(want)
        for k in want:
            assert_same(got[k], want[k])
    elif isinstance(want, list | tuple):
        assert isinstance(got, list) and len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            assert_same(g, w)
    else:
        assert got == want and type(got) is type(want)


def arrays(kinds: list[str], shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
    return [make(d, s, i) for i, (d, s) in enumerate((d, s) for d in kinds for s in shapes)]


SHAPES = [(), (0,), (3,), (4, 5), (200, 300)]  # the last one is above INLINE_MAX_BYTES for every dtype here


@pytest.mark.parametrize("use_pool", [False, True], ids=["inline", "shm"])
def test_nested_round_trip(use_pool: bool, pool: SegmentPool) -> None:
    value = {
        "arrays": arrays(DTYPES, SHAPES),
        "nested": {"deep": [1, {"x": make("float32", (64, 64))}], "text": "héllo", "raw": b"\x00\x01"},
        "scalars": [None, True, False, 0, -7, 2**40, 1.5, "s"],
        7: "int key",
    }
    data = encode(value, pool if use_pool else None)
    got = decode(data)
    assert_same(got, value)
    ext_codes = set()

    def hook(code: int, payload: bytes) -> None:
        ext_codes.add(code)

    msgpack.unpackb(data, ext_hook=hook, strict_map_key=False)
    assert ext_codes == ({EXT_INLINE, EXT_SHM} if use_pool else {EXT_INLINE})


def test_numpy_scalars_and_non_contiguous_arrays(pool: SegmentPool) -> None:
    big = make("float64", (300, 400))
    value = [np.float32(1.5), np.int64(3), big.T, big[::3, 1::2], np.asfortranarray(make("int16", (5, 7)))]
    for p in (None, pool):
        got = decode(encode(value, p))
        assert got[0] == 1.5 and got[1] == 3
        for g, w in zip(got[2:], value[2:], strict=True):
            assert_same(g, np.ascontiguousarray(w))


def test_small_arrays_stay_inline_large_go_to_shm(pool: SegmentPool) -> None:
    small = np.zeros(INLINE_MAX_BYTES // 8, np.float64)
    large = np.zeros(INLINE_MAX_BYTES // 8 + 1, np.float64)
    assert segments_of(decode_forward(encode(small, pool))) == []
    (name,) = segments_of(decode_forward(encode(large, pool)))
    assert pool.owns(name) and segment_owner(name) == pool.owner
    assert os.path.exists(os.path.join(SHM_DIR, name))


def test_shm_read_is_zero_copy_and_read_only(pool: SegmentPool) -> None:
    x = make("float64", (256, 256))
    data = encode({"x": x}, pool)
    got = decode(data)["x"]
    assert not got.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        got[0, 0] = 1.0
    np.testing.assert_array_equal(got, x)
    # Zero-copy: the decoded array is a view of the segment, so a write through the owner's mapping shows in it.
    (name,) = segments_of(decode_forward(data))
    with open(os.path.join(SHM_DIR, name), "r+b") as f:
        mm = mmap.mmap(f.fileno(), 0)
    np.frombuffer(mm, dtype=np.float64, count=1)[0] = -42.0
    assert got[0, 0] == -42.0
    # materialize copies out of shared memory: its result does not change with the segment.
    copied = materialize(decode_forward(data))["x"]
    np.frombuffer(mm, dtype=np.float64, count=1)[0] = 7.0
    assert copied[0, 0] == -42.0 and got[0, 0] == 7.0
    mm.close()


def test_inline_decode_is_read_only() -> None:
    got = decode(encode(np.arange(5)))
    assert not got.flags.writeable


@pytest.mark.parametrize(
    "bad",
    [
        np.array([1, "a", None], dtype=object),
        np.zeros(3, dtype=[("a", "i4"), ("b", "f8")]),
        {"nested": [np.array([{}], dtype=object)]},
        {1, 2},
        object(),
    ],
    ids=["object", "structured", "nested-object", "set", "plain-object"],
)
def test_unsendable_values_raise_data_error(bad: Any, pool: SegmentPool) -> None:
    with pytest.raises(DataError):
        encode(bad)
    with pytest.raises(DataError):
        encode(bad, pool)


def test_object_array_is_refused_before_any_segment_is_made(pool: SegmentPool) -> None:
    big = np.empty(100_000, dtype=object)
    with pytest.raises(DataError, match="object"):
        encode(big, pool)
    assert not glob.glob(os.path.join(SHM_DIR, f"shoal-{pool.owner}-*"))


def test_client_round_trip_is_inline_only() -> None:
    value = {"a": make("float64", (300, 300)), "b": [make("uint8", (2, 3))]}
    data = encode_client(value)
    assert_same(decode_client(data), value)
    assert segments_of(decode_forward(data)) == []


def test_client_decode_refuses_shm_references(pool: SegmentPool) -> None:
    data = encode(make("float64", (100, 100)), pool)  # a real, existing segment: still refused from a client
    with pytest.raises(DataError, match="extension type 2"):
        decode_client(data)
    for code in (EXT_SHM, 3, 99):
        with pytest.raises(DataError, match=f"extension type {code}"):
            decode_client(msgpack.packb([1, msgpack.ExtType(code, b"x")]))


@pytest.mark.parametrize(
    "body",
    [b"\xc1", b"\x92\x01", msgpack.packb(msgpack.ExtType(EXT_INLINE, b"not an array"))],
    ids=["reserved-byte", "truncated", "bad-inline"],
)
def test_client_decode_refuses_malformed_bodies(body: bytes) -> None:
    with pytest.raises(DataError):
        decode_client(body)


def test_decode_refuses_bad_segment_names() -> None:
    for name in ("../etc/passwd", "other-prefix", "shoal-a/b"):
        ext = msgpack.ExtType(EXT_SHM, msgpack.packb([name, "<f8", [1]]))
        with pytest.raises(DataError):
            decode(msgpack.packb(ext))


def test_segment_pool_recycles(pool: SegmentPool) -> None:
    name, mm = pool.alloc(1 << 20)
    assert len(mm) == 1 << 20
    pool.free([name])
    again, mm2 = pool.alloc((1 << 20) - 100)  # same power-of-two size class
    assert again == name and mm2 is mm
    other, _ = pool.alloc(1 << 20)  # the recycled one is in use again: a fresh one
    assert other != name
    small, mm3 = pool.alloc(10)
    assert len(mm3) == SegmentPool.MIN_CLASS and small not in (name, other)
    pool.free([small, "shoal-not-mine-000"])  # names it does not own are ignored
    assert pool.alloc(5)[0] == small


def test_segment_pool_close_unlinks() -> None:
    p = SegmentPool(f"c{os.getpid()}")
    names = [p.alloc(n)[0] for n in (10, 1 << 18, 3 << 20)]
    p.free(names[:1])
    paths = [os.path.join(SHM_DIR, n) for n in names]
    assert all(os.path.exists(path) for path in paths)
    p.close()
    assert not any(os.path.exists(path) for path in paths)
    assert not p.owns(names[0])


def test_bad_owner_is_refused() -> None:
    with pytest.raises(DataError):
        SegmentPool("../x")


def test_numpy_scalars_keep_their_type_between_functions(pool: SegmentPool) -> None:
    # What a stage returns reaches the next stage as it would in one process, under every plan.
    scalars = [np.float64(2.5), np.float32(1.5), np.int32(-3), np.uint8(200), np.bool_(True), np.complex64(1 - 2j)]
    scalars += [np.str_("txt"), np.bytes_(b"raw"), np.datetime64("2024-05-01", "D"), np.timedelta64(3, "s")]
    for p in (None, pool):
        got = decode(encode({"s": scalars}, p))["s"]
        for g, w in zip(got, scalars, strict=True):
            assert type(g) is type(w) and g == w
    # Clients get plain msgpack numbers and strings.
    assert decode_client(encode_client([np.float64(2.5), np.int32(-3), np.str_("t")])) == [2.5, -3, "t"]


def test_containers_and_subclasses_travel_as_plain_types() -> None:
    import enum
    from collections import OrderedDict, namedtuple

    class Colour(enum.IntEnum):
        RED = 1

    pair = namedtuple("pair", "a b")
    value = {"t": (1, (2, 3)), "nt": pair(1, "x"), "od": OrderedDict(k=1), "e": Colour.RED, "b": bytearray(b"ab")}
    got = decode(encode(value))
    assert got == {"t": [1, [2, 3]], "nt": [1, "x"], "od": {"k": 1}, "e": 1, "b": b"ab"}
    assert type(got["e"]) is int
