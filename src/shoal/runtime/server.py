"""Run the gateway with uvicorn: what ``shoal serve`` does."""

from __future__ import annotations

import ipaddress
import logging
import secrets
import sys
from collections.abc import Callable, Sequence

import uvicorn

from shoal.app import App, Plan
from shoal.runtime.gateway import build_gateway
from shoal.runtime.host import Host, HostConfig

__all__ = ["is_loopback", "serve"]

log = logging.getLogger("shoal.server")


def is_loopback(bind: str) -> bool:
    if bind == "localhost":
        return True
    try:
        return ipaddress.ip_address(bind).is_loopback
    except ValueError:
        return False


def serve(
    deployments: Sequence[tuple[App, Plan]],
    bind: str = "127.0.0.1",
    port: int = 8000,
    token: str | None = None,
    config: HostConfig | None = None,
    log_level: str = "warning",
    on_start: Callable[[Host], None] | None = None,
) -> None:
    """Serve until interrupted. Beyond loopback, read-outs and admin actions need a bearer token (one is made)."""
    if not is_loopback(bind) and token is None:
        token = secrets.token_urlsafe(24)
        print(f"shoal: bound beyond localhost; admin token: {token}", file=sys.stderr, flush=True)
    host = Host(deployments, config)
    host.prepare()  # fork the zygote before uvicorn starts any thread
    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        loop = "asyncio"
    uvicorn.run(
        build_gateway(host, token, on_start=on_start),
        host=bind,
        port=port,
        log_level=log_level,
        access_log=False,
        loop=loop,
        http="httptools",
        lifespan="on",
    )
