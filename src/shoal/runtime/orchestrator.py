"""The orchestrator: one request's walk through its plan's function DAG.

Functions run as soon as their upstream functions are done (fan-out runs in parallel). Values between functions
stay in the data plane's forwarded form: the parent never copies an array on the way, it passes segment names on.
Every step is timed; the meter gets one record per request, failures included.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from shoal.app import INPUT, Function, InputError
from shoal.runtime.dataplane import DataError, decode_forward, encode, materialize, segments_of
from shoal.runtime.errors import BadRequest, InstanceDied, ServeError, StageError
from shoal.runtime.meter import RequestRecord
from shoal.runtime.pool import CallResult, Pool

if TYPE_CHECKING:
    from shoal.runtime.host import Deployment, Host

__all__ = ["Result", "invoke", "new_request_id"]


@dataclass
class Result:
    request_id: str
    output: Any
    timing: dict[str, Any]


def new_request_id() -> str:
    return secrets.token_hex(8)


def check_input(dep: Deployment, value: Any) -> Any:
    """Validate the request's input against the application's declared input spec (400 on mismatch)."""
    spec = dep.app.input
    if spec is None:
        return value
    if not isinstance(value, np.ndarray):
        try:
            value = np.asarray(value, dtype=spec.dtype)
        except (ValueError, TypeError) as e:
            raise BadRequest(f"input is not an array of {spec.dtype}: {e}") from None
    try:
        spec.check(value.shape, value.dtype)
    except InputError as e:
        raise BadRequest(str(e)) from None
    return value


async def _call(pool: Pool, inputs: dict[str, Any]) -> CallResult:
    try:
        return await pool.call(inputs)
    except InstanceDied:
        return await pool.call(inputs)  # once, on another instance; a second death is the client's 503


def _raise_for(reply: dict[str, Any]) -> None:
    if reply.get("ok"):
        return
    msg = f"stage {reply['stage']!r} raised {reply['etype']}: {reply['message']}"
    if reply.get("input_error"):
        raise BadRequest(msg, stage=reply["stage"])
    raise StageError(msg, stage=reply["stage"])


async def invoke(host: Host, app: str, value: Any, request_id: str | None = None) -> Result:
    """Serve one request of ``app``: the same path for HTTP and for ``shoal.local``."""
    rid = request_id or new_request_id()
    dep = host.deployment(app)
    host.note_arrival(dep.app.name)
    dep.active += 1  # a plan switch keeps this deployment's pools until its last request is done
    try:
        return await _walk(host, dep, value, rid)
    finally:
        dep.active -= 1
        if dep.retired:
            host.drain(dep)


async def _walk(host: Host, dep: Deployment, value: Any, rid: str) -> Result:
    t0 = host.now()
    calls: dict[str, CallResult] = {}
    values: dict[str, Any] = {}
    try:
        try:
            values[INPUT] = decode_forward(encode(check_input(dep, value), host.segments))
        except DataError as e:
            raise BadRequest(f"input cannot be carried: {e}") from None
        fns = dep.plan.functions

        async def run(f: Function, after: list[asyncio.Task[None]]) -> None:
            for t in after:
                await t
            res = await _call(dep.pools[f.name], {k: values[k] for k in f.inputs})
            calls[f.name] = res
            _raise_for(res.reply)
            values.update(res.reply["outputs"])

        if len(fns) == 1:
            await run(fns[0], [])
        else:
            tasks: dict[str, asyncio.Task[None]] = {}
            for f in fns:
                tasks[f.name] = asyncio.ensure_future(run(f, [tasks[u] for u in f.upstream]))
            try:
                await asyncio.gather(*tasks.values())
            except BaseException:
                for t in tasks.values():
                    t.cancel()
                raise
        output = materialize(values[dep.app.sink])
    except ServeError as e:
        _record(host, dep, rid, t0, calls, e.status)
        _free(host, values)
        raise
    timing = _record(host, dep, rid, t0, calls, 200)
    _free(host, values)
    return Result(rid, output, timing)


def _free(host: Host, values: dict[str, Any]) -> None:
    names: list[str] = []
    for v in values.values():
        names.extend(segments_of(v))
    host.free_segments(names)


def _record(host: Host, dep: Deployment, rid: str, t0: float, calls: dict[str, CallResult], status: int) -> dict:
    total = host.now() - t0
    exec_s: dict[str, float] = {}
    for c in calls.values():
        exec_s.update(c.reply.get("exec", {}))
    queue = sum(c.queue_s for c in calls.values())
    cold = sum(c.cold_s for c in calls.values())
    hop = max(0.0, total - queue - cold - sum(exec_s.values()))
    app = dep.app.name
    rec = RequestRecord(
        request_id=rid,
        app=app,
        plan=dep.plan.label,
        t_arrival=t0,
        latency_s=total,
        ok=status == 200,
        status=status,
        queue_wait_s=queue,
        cold_start_s=cold,
        exec_s=exec_s,
        hop_s=hop,
        functions=[f"{app}/{n}" for n in calls],
        billed_s={f"{app}/{n}": c.reply.get("busy_s", 0.0) for n, c in calls.items()},
    )
    host.meter.record(rec)
    host.note_served(app, rec.plan, total, status)
    host.metrics.observe_request(rec)
    return {
        "request_id": rid,
        "plan": dep.plan.label,
        "total_ms": round(total * 1e3, 3),
        "queue_ms": round(queue * 1e3, 3),
        "cold_start_ms": round(cold * 1e3, 3),
        "exec_ms": {k: round(v * 1e3, 3) for k, v in exec_s.items()},
        "hop_ms": round(hop * 1e3, 3),
        "functions": {
            n: {
                "instance": c.instance_id,
                "queue_ms": round(c.queue_s * 1e3, 3),
                "cold_start_ms": round(c.cold_s * 1e3, 3),
                "rtt_ms": round(c.rtt_s * 1e3, 3),
                "busy_ms": round(c.reply.get("busy_s", 0.0) * 1e3, 3),
                "batch": c.reply.get("batch", 1),
            }
            for n, c in calls.items()
        },
    }
