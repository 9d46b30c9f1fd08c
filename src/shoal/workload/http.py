"""Open-loop load over HTTP against a Shoal gateway (or anything that takes POST bodies)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import httpx

from shoal.workload.driver import Outcome, drive

__all__ = ["drive_http"]


async def drive_http(
    url: str,
    path: str,
    bodies: Sequence[bytes],
    arrivals: Iterator[float],
    content_type: str = "application/x-npy",
    on_done: Callable[[Outcome], None] | None = None,
) -> tuple[list[Outcome], dict[str, Any]]:
    """POST ``bodies`` (in turn) to ``url + path`` at the ``arrivals``; return the outcomes and the last timing seen.

    The timing is the server's ``x-shoal-timing`` header of the last successful reply (empty if none).
    """
    last: dict[str, Any] = {}
    limits = httpx.Limits(max_connections=512, max_keepalive_connections=128)
    headers = {"content-type": content_type, "accept": "application/json"}
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        count = 0

        async def send() -> int:
            nonlocal count
            body = bodies[count % len(bodies)]
            count += 1
            r = await client.post(path, content=body, headers=headers)
            if r.status_code == 200 and "x-shoal-timing" in r.headers:
                last["timing"] = json.loads(r.headers["x-shoal-timing"])
            return r.status_code

        outcomes = await drive(send, arrivals, on_done)
    return outcomes, last.get("timing", {})
