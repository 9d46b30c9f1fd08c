"""Length-prefixed msgpack frames between the parent and its instance and zygote processes.

A frame is a 4-byte little-endian length and a msgpack map whose array leaves travel as the data plane's extension
types (see ``dataplane``). Frames are never pickled. The parent reads frames without decoding arrays (it forwards
them); an instance decodes them into NumPy views.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any

from shoal.runtime.dataplane import SegmentPool, decode, decode_forward, encode

__all__ = ["pack_frame", "read_frame", "recv_frame"]

_LEN = struct.Struct("<I")


def pack_frame(msg: dict[str, Any], pool: SegmentPool | None = None) -> bytes:
    body = encode(msg, pool)
    return _LEN.pack(len(body)) + body


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            return None
        got += k
    return bytes(buf)


def recv_frame(sock: socket.socket) -> dict[str, Any] | None:
    """Blocking read of one frame with arrays decoded; None when the peer closed the connection."""
    head = _recv_exact(sock, 4)
    if head is None:
        return None
    body = _recv_exact(sock, _LEN.unpack(head)[0])
    return None if body is None else decode(body)


async def read_frame(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    """Read one frame from an asyncio stream, arrays left as ExtType; None at EOF."""
    try:
        head = await reader.readexactly(4)
        body = await reader.readexactly(_LEN.unpack(head)[0])
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    return decode_forward(body)
