"""The HTTP gateway: ``POST /apps/{app}/invoke`` and the read-outs (``/status``, ``/metrics``, ``/healthz``).

Bodies are JSON, ``.npy`` bytes (``application/x-npy``) or msgpack (``application/msgpack``, arrays as extension
type 1; see ``dataplane``). Nothing is unpickled: ``.npy`` is read with ``allow_pickle=False``. The reply uses the
content type the client asked for in ``Accept``, or the request's own.
"""

from __future__ import annotations

import contextlib
import hmac
import io
import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shoal.app import Plan, PlanError, SpecError
from shoal.runtime.dataplane import DataError, decode_client, encode_client
from shoal.runtime.errors import BadRequest, ServeError
from shoal.runtime.host import Host
from shoal.runtime.orchestrator import Result, invoke, new_request_id

__all__ = ["JSON", "MSGPACK", "NPY", "build_gateway"]

log = logging.getLogger("shoal.gateway")

JSON = "application/json"
NPY = "application/x-npy"
MSGPACK = "application/msgpack"
_ALIASES = {"application/x-msgpack": MSGPACK, "application/vnd.msgpack": MSGPACK, "application/octet-stream": NPY}


_SAFE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class _TooLarge(Exception):
    pass


def _media(value: str | None) -> str | None:
    if not value:
        return None
    base = value.split(";")[0].strip().lower()
    return _ALIASES.get(base, base)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, bytes):
        return obj.decode("latin-1")
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def parse_body(body: bytes, content_type: str | None) -> Any:
    kind = _media(content_type) or JSON
    try:
        if kind == JSON:
            return json.loads(body)
        if kind == NPY:
            return np.load(io.BytesIO(body), allow_pickle=False)
        if kind == MSGPACK:
            return decode_client(body)
    except (ValueError, DataError, EOFError, OSError) as e:
        raise BadRequest(f"malformed {kind} body: {e}") from None
    raise _Unsupported(kind)


class _Unsupported(Exception):
    pass


def _reply_type(request: Request) -> str:
    accept = request.headers.get("accept", "")
    for part in accept.split(","):
        kind = _media(part)
        if kind in (JSON, NPY, MSGPACK):
            return kind
    return _media(request.headers.get("content-type")) or JSON


def _render(result: Result, kind: str) -> Response:
    timing = json.dumps(result.timing, separators=(",", ":"))
    headers = {"x-request-id": result.request_id, "x-shoal-timing": timing, "server-timing": _server_timing(result)}
    if kind == NPY:
        if not isinstance(result.output, np.ndarray):
            return _error(406, result.request_id, "the output is not an array; ask for application/json or msgpack")
        buf = io.BytesIO()
        np.save(buf, result.output, allow_pickle=False)
        return Response(buf.getvalue(), media_type=NPY, headers=headers)
    if kind == MSGPACK:
        doc = {"request_id": result.request_id, "output": result.output, "timing": result.timing}
        return Response(encode_client(doc), media_type=MSGPACK, headers=headers)
    output = json.dumps(result.output, default=_json_default, separators=(",", ":"))
    rid = json.dumps(result.request_id)  # a client may choose its request id: escape it
    body = f'{{"request_id":{rid},"output":{output},"timing":{timing}}}'  # the timing is serialised once, above
    return Response(body, media_type=JSON, headers=headers)


def _server_timing(result: Result) -> str:
    t = result.timing
    parts = [f"queue;dur={t['queue_ms']}", f"cold;dur={t['cold_start_ms']}", f"hop;dur={t['hop_ms']}"]
    parts += [f"exec-{k};dur={v}" for k, v in t["exec_ms"].items()]
    return ", ".join(parts)


def _error(status: int, rid: str, message: str, stage: str | None = None, retry_after: float | None = None) -> Response:
    doc: dict[str, Any] = {"error": message, "request_id": rid}
    if stage:
        doc["stage"] = stage
    headers = {"x-request-id": rid}
    if retry_after is not None:
        headers["retry-after"] = str(max(1, round(retry_after)))
    return JSONResponse(doc, status_code=status, headers=headers)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def build_gateway(
    host: Host,
    token: str | None = None,
    manage_host: bool = True,
    on_start: Callable[[Host], None] | None = None,
) -> Starlette:
    """The Starlette application serving ``host``. With ``token``, read-outs need ``Authorization: Bearer TOKEN``."""

    def authorised(request: Request) -> bool:
        if token is None:
            return True
        got = request.headers.get("authorization", "")
        return hmac.compare_digest(got.encode(), f"Bearer {token}".encode())

    async def invoke_route(request: Request) -> Response:
        rid = request.headers.get("x-request-id", "")
        if not _SAFE_ID.fullmatch(rid):  # it is echoed in a header and logs: only plain ids are kept
            rid = new_request_id()
        try:
            body = await _read_body(request, host.config.max_body_bytes)
        except _TooLarge:
            return _error(413, rid, f"body larger than the limit of {host.config.max_body_bytes} bytes")
        try:
            value = parse_body(body, request.headers.get("content-type"))
            result = await invoke(host, request.path_params["app"], value, rid)
        except _Unsupported as e:
            return _error(415, rid, f"unsupported content type {e}; send {JSON}, {NPY} or {MSGPACK}")
        except ServeError as e:
            return _error(e.status, rid, e.message, e.stage, e.retry_after_s)
        return _render(result, _reply_type(request))

    async def apps_route(request: Request) -> Response:
        return JSONResponse({n: {"plan": d.plan.label, "slo": str(d.app.slo)} for n, d in host.deployments.items()})

    async def status_route(request: Request) -> Response:
        if not authorised(request):
            return JSONResponse({"error": "this endpoint needs Authorization: Bearer <token>"}, status_code=401)
        return Response(json.dumps(host.status(), default=_json_default), media_type=JSON)

    async def metrics_route(request: Request) -> Response:
        if not authorised(request):
            return JSONResponse({"error": "this endpoint needs Authorization: Bearer <token>"}, status_code=401)
        host.metrics.set_costs(host.meter.user_bill().usd, host.meter.resource_cost(host.now()).usd)
        body, ctype = host.metrics.render()
        return Response(body, headers={"content-type": ctype})

    async def plan_route(request: Request) -> Response:
        """Switch an application's plan live: JSON ``{"plan": "a+b,c", "warm": {"a": 2}}`` (``warm`` optional)."""
        if not authorised(request):
            return JSONResponse({"error": "this endpoint needs Authorization: Bearer <token>"}, status_code=401)
        try:
            doc = json.loads(await _read_body(request, 1 << 16))
        except (_TooLarge, ValueError):
            return JSONResponse({"error": 'send JSON such as {"plan": "fine"} (at most 64 KiB)'}, status_code=400)
        if not isinstance(doc, dict) or not isinstance(doc.get("plan"), str):
            return JSONResponse({"error": 'send JSON such as {"plan": "a+b,c", "warm": {"a": 2}}'}, status_code=400)
        warm = doc.get("warm") or {}
        if not isinstance(warm, dict) or not all(isinstance(v, int) and v >= 0 for v in warm.values()):
            return JSONResponse({"error": "warm maps function names to instance counts >= 0"}, status_code=400)
        try:
            dep = host.deployment(request.path_params["app"])
            plan = Plan.parse(dep.app, doc["plan"], default=dep.plan.default)
            summary = await host.switch_plan(dep.app.name, plan, warm)
        except (PlanError, SpecError, ValueError) as e:
            return JSONResponse({"error": str(e)}, status_code=400)
        except ServeError as e:
            return JSONResponse({"error": e.message}, status_code=e.status)
        return JSONResponse(summary)

    async def health_route(request: Request) -> Response:
        return JSONResponse({"ok": True})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if manage_host:
            await host.start()
        if on_start is not None:
            on_start(host)  # e.g. the adaptive granularity loop, on the host's event loop
        try:
            yield
        finally:
            if manage_host:
                await host.stop()

    routes = [
        Route("/apps/{app}/invoke", invoke_route, methods=["POST"]),
        Route("/apps/{app}/plan", plan_route, methods=["POST"]),
        Route("/apps", apps_route, methods=["GET"]),
        Route("/status", status_route, methods=["GET"]),
        Route("/metrics", metrics_route, methods=["GET"]),
        Route("/healthz", health_route, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
