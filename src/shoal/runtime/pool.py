"""A function's pool: its instances (processes), the bounded queue in front of them, and its scaling.

All of it runs on the parent's event loop. Decisions come from the pure policies (``policy.autoscale``,
``policy.keepalive``); this module only observes, asks, and carries out.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import socket
from collections import deque
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from shoal.app import Function
from shoal.policy.autoscale import AutoscalerConfig, KpaAutoscaler, ScaleObservation
from shoal.policy.batching import decide_batch
from shoal.policy.keepalive import IdleInstance, instances_to_retire
from shoal.runtime.errors import FunctionTimeout, InstanceDied, QueueFull, Unavailable
from shoal.runtime.framing import pack_frame, read_frame
from shoal.runtime.zygote import ZygoteError

if TYPE_CHECKING:
    from shoal.runtime.host import Host

__all__ = ["CallResult", "Instance", "Pool"]

log = logging.getLogger("shoal.pool")
_ids = itertools.count(1)


@dataclass
class _Queued:
    inputs: dict[str, Any]
    t_arrival: float
    fut: asyncio.Future[CallResult]


@dataclass
class CallResult:
    reply: dict[str, Any]
    queue_s: float
    cold_s: float
    rtt_s: float
    instance_id: str


class Instance:
    """The parent's handle of one instance process."""

    def __init__(self, pool: Pool, instance_id: str, sock: socket.socket, cpus: list[int], now: float) -> None:
        self.pool = pool
        self.id = instance_id
        self.sock = sock
        self.cpus = cpus
        self.state = "starting"
        self.pid: int | None = None
        self.started_at = now
        self.ready_at: float | None = None
        self.load_s = 0.0
        self.in_flight = 0
        self.idle_since = now
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.pending_free: list[str] = []
        self._seq = itertools.count(1)
        self._writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        reader, self._writer = await asyncio.open_unix_connection(sock=self.sock)
        asyncio.get_running_loop().create_task(self._read_loop(reader), name=f"instance-{self.id}")
        if self.state == "stopping":  # stopped before its socket was open (an abandoned plan switch): tell it now
            self.state = "starting"
            self.stop()

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        while True:
            msg = await read_frame(reader)
            if msg is None:
                break
            op = msg.get("op")
            if op == "done":
                fut = self.pending.pop(msg["id"], None)
                if fut is not None and not fut.done():
                    fut.set_result(msg)
            elif op == "ready":
                self.pid, self.load_s = msg["pid"], msg["load_s"]
                self.pool.on_ready(self)
            elif op == "failed":
                self.pool.on_load_failed(self, f"{msg['etype']}: {msg['message']}")
        if self._writer is not None:
            self._writer.close()  # the process is gone: release our end of its socket
        self.pool.on_died(self)

    async def run(self, msg: dict[str, Any]) -> dict[str, Any]:
        if self.state == "dead" or self._writer is None:
            raise InstanceDied(f"instance {self.id} is gone")
        seq = next(self._seq)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[seq] = fut
        msg["id"] = seq
        if self.pending_free:
            msg["free"], self.pending_free = self.pending_free, []
        self._writer.write(pack_frame(msg))
        return await fut

    def stop(self) -> None:
        """Ask the instance to leave (it finishes nothing: only idle instances are stopped)."""
        if self._writer is not None and self.state != "dead":
            with contextlib.suppress(ConnectionError, RuntimeError):
                self._writer.write(pack_frame({"op": "stop"}))
                self._writer.close()
        self.state = "stopping"

    def kill(self) -> None:
        """SIGKILL the process (timeouts); the read loop then sees EOF and the pool replaces it."""
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        elif self._writer is not None:
            self._writer.close()

    def fail_pending(self, err: Exception) -> None:
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(err)
        self.pending.clear()


class Pool:
    """The instances of one function of one deployed plan."""

    def __init__(self, app: str, fn: Function, host: Host) -> None:
        self.app = app
        self.fn = fn
        self.host = host
        self.name = fn.name
        self.instances: dict[str, Instance] = {}
        self.queue: deque[_Queued] = deque()
        self.requests_in_flight = 0
        self._wake: asyncio.TimerHandle | None = None
        cfg = fn.config
        self.autoscaler = KpaAutoscaler(
            AutoscalerConfig(
                target_concurrency=fn.target_concurrency,
                min_instances=cfg.min_instances,
                max_instances=cfg.max_instances,
                stable_window_s=host.config.stable_window_s,
                panic_window_s=host.config.panic_window_s,
            )
        )
        self.desired = cfg.min_instances
        self.panic = False
        self.capacity_limited = False
        self.last_error: str | None = None
        #: After a model fails to load, no new instance starts before this time (exponential backoff), so that a
        #: broken model does not become a fork storm; requests meanwhile get 503 naming the load error.
        self.backoff_until = 0.0
        self.load_failures = 0
        self.cold_starts = 0
        self.closed = False

    # -- counts ---------------------------------------------------------------------------------------------------
    def count(self, state: str) -> int:
        return sum(1 for i in self.instances.values() if i.state == state)

    @property
    def in_flight(self) -> int:
        """Requests running on instances (a batch counts each of its requests)."""
        return self.requests_in_flight

    # -- instances ------------------------------------------------------------------------------------------------
    def start_instance(self) -> Instance:
        res = self.fn.resources
        iid = f"i{os.getpid()}-{next(_ids)}"
        gpu_device = self.host.gpu_device(iid, res.gpu, res.gpu_memory_mb)  # raises Unavailable when GPUs are full
        cpus = self.host.place(res.vcpu)
        spec = {
            "app": self.app,
            "function": self.name,
            "instance_id": iid,
            "stages": list(self.fn.stages),
            "cpus": cpus,
            "vcpu": res.vcpu,
            "threads": max(1, len(cpus)),
            "gpu": res.gpu,
            "gpu_memory_mb": res.gpu_memory_mb,
            "gpu_device": gpu_device,
            "max_concurrency": res.max_concurrency,
        }
        now = self.host.now()
        try:
            sock = self.host.spawn(spec)
        except ZygoteError as e:
            self.host.unplace(cpus, res.vcpu)
            self.host.gpu_release(iid)
            self.last_error = str(e)
            raise Unavailable(f"cannot start an instance of {self.name!r}: {e}") from None
        inst = Instance(self, iid, sock, cpus, now)
        self.instances[iid] = inst
        self.host.instance_started(self, inst)
        self.cold_starts += 1
        asyncio.get_running_loop().create_task(inst.open())
        return inst

    def on_ready(self, inst: Instance) -> None:
        if inst.state != "starting":
            return
        inst.state = "ready"
        inst.ready_at = inst.idle_since = self.host.now()
        self.last_error = None
        self.load_failures = 0
        self._pump()

    def on_load_failed(self, inst: Instance, why: str) -> None:
        self.last_error = f"an instance of {self.name!r} failed to load its models: {why}"
        log.error(self.last_error)
        inst.state = "failed"
        self.load_failures += 1
        self.backoff_until = self.host.now() + min(30.0, 0.25 * 2**self.load_failures)
        self._fail_queued(Unavailable(self.last_error))

    def on_died(self, inst: Instance) -> None:
        was = inst.state
        inst.state = "dead"
        inst.fail_pending(InstanceDied(f"instance {inst.id} of {self.name!r} died mid-request"))
        if self.instances.pop(inst.id, None) is None:
            return  # retired or closed already, and accounted for then
        self.host.instance_stopped(self, inst, died=True)
        if was == "starting" and not self.closed:  # died while loading its models: same as a failed load
            self.on_load_failed(inst, "the instance process exited while loading")
            inst.state = "dead"
            return
        if was not in ("stopping", "failed") and not self.closed and self.host.now() >= self.backoff_until:
            log.warning("instance %s of %s died (state %s); replacing it", inst.id, self.name, was)
            if self.queue or len(self.instances) < self.desired:
                try:
                    self.start_instance()
                except Unavailable as e:  # no room or no zygote: the next tick tries again
                    log.warning("cannot replace instance %s of %s yet: %s", inst.id, self.name, e)

    # -- requests -------------------------------------------------------------------------------------------------
    def _free_instance(self) -> Instance | None:
        best = None
        limit = self.fn.resources.max_concurrency
        for inst in self.instances.values():
            if inst.state == "ready" and inst.in_flight < limit and (best is None or inst.in_flight < best.in_flight):
                best = inst
        return best

    async def call(self, inputs: dict[str, Any]) -> CallResult:
        """Run the function once for one request, waiting in its queue (and batched with others) if need be."""
        now = self.host.now()
        would_wait = bool(self.queue) or self._free_instance() is None
        if would_wait and len(self.queue) >= self.fn.config.queue_limit:
            raise QueueFull(
                f"function {self.name!r} has {len(self.queue)} requests queued (limit "
                f"{self.fn.config.queue_limit}); retry later",
                retry_after_s=1.0,
            )
        if self.count("starting") + self.count("ready") == 0:
            if now < self.backoff_until:
                raise Unavailable(f"{self.last_error}; retrying in {self.backoff_until - now:.1f} s")
            self.start_instance()  # scale from zero now, as Knative's activator does: don't wait for a tick
        item = _Queued(inputs, now, asyncio.get_running_loop().create_future())
        self.queue.append(item)
        self._pump()
        try:
            return await item.fut
        except asyncio.CancelledError:
            with contextlib.suppress(ValueError):
                self.queue.remove(item)
            raise

    def _pump(self) -> None:
        """Send queued requests to free instances, in batches as the batching policy decides."""
        cfg = self.fn.config
        while self.queue:
            if self.queue[0].fut.done():  # cancelled by its client while queued
                self.queue.popleft()
                continue
            inst = self._free_instance()
            now = self.host.now()
            d = decide_batch(
                now=now,
                queued=len(self.queue),
                oldest_arrival=self.queue[0].t_arrival,
                free_slots=1 if inst is not None else 0,
                max_batch_size=cfg.max_batch_size,
                max_wait_s=cfg.max_batch_wait_s,
            )
            if d.take == 0 or inst is None:
                if d.wake_at is not None:  # a partial batch: come back when its oldest request has waited enough
                    if self._wake is not None:
                        self._wake.cancel()
                    self._wake = asyncio.get_running_loop().call_later(max(0.0, d.wake_at - now), self._on_wake)
                return
            batch = [self.queue.popleft() for _ in range(d.take)]
            inst.in_flight += 1
            self.requests_in_flight += len(batch)
            asyncio.get_running_loop().create_task(self._run(inst, batch))

    def _on_wake(self) -> None:
        self._wake = None
        self._pump()

    async def _run(self, inst: Instance, batch: list[_Queued]) -> None:
        t1 = self.host.now()
        timeout = self.fn.config.timeout_s
        msg = {"op": "run", "items": [{"inputs": q.inputs} for q in batch], "want": list(self.fn.outputs)}
        try:
            async with asyncio.timeout(timeout):  # unlike wait_for, no extra task per request
                reply = await inst.run(msg)
        except TimeoutError:
            log.warning("instance %s of %s passed its %gs timeout; recycling it", inst.id, self.name, timeout)
            inst.state = "killed"  # never hand it out again, even before the kernel has reaped it
            inst.kill()
            err: Exception = FunctionTimeout(f"function {self.name!r} ran past its timeout of {timeout:g} s")
            reply = None
        except InstanceDied as e:
            err, reply = e, None
        finally:
            self.requests_in_flight -= len(batch)
            if inst.state not in ("dead", "killed"):
                self.release(inst)
        t2 = self.host.now()
        for i, q in enumerate(batch):
            if q.fut.done():
                continue
            if reply is None:
                q.fut.set_exception(err)
                continue
            item = dict(reply["items"][i], busy_s=reply["busy_s"] / len(batch), batch=len(batch))
            cold = min(t1 - q.t_arrival, max(0.0, (inst.ready_at or t1) - max(q.t_arrival, inst.started_at)))
            q.fut.set_result(CallResult(item, max(0.0, t1 - q.t_arrival - cold), cold, t2 - t1, inst.id))

    def release(self, inst: Instance) -> None:
        inst.in_flight -= 1
        if inst.in_flight == 0:
            inst.idle_since = self.host.now()
        self._pump()

    # -- scaling --------------------------------------------------------------------------------------------------
    def tick(self, now: float) -> None:
        """Observe, let the policies decide, and carry the decision out."""
        ready, starting = self.count("ready"), self.count("starting")
        d = self.autoscaler.decide(ScaleObservation(now, self.in_flight, len(self.queue), ready, starting))
        self.desired, self.panic = d.desired, d.panic
        live = ready + starting
        self.capacity_limited = False
        for _ in range(d.desired - live if now >= self.backoff_until else 0):
            reserved = max(1, self.fn.config.min_instances)  # always honoured: an explicit reservation
            if self.count("ready") + self.count("starting") >= reserved and not self.host.can_scale_out(
                self.fn.resources.vcpu
            ):
                self.capacity_limited = True  # the cores are all allocated: more instances would only share them
                break
            try:
                self.start_instance()
            except Unavailable:  # the GPUs are full, or the zygote is gone: try again on a later tick
                self.capacity_limited = True
                break
        if d.desired < live:
            idle = [
                IdleInstance(i.id, i.idle_since)
                for i in self.instances.values()
                if i.state == "ready" and i.in_flight == 0
            ]
            for iid in instances_to_retire(
                idle,
                now=now,
                keep_alive_s=self.fn.config.keep_alive_s,
                surplus_idle_s=self.fn.config.surplus_idle_s,
                total=live,
                desired=d.desired,
                min_instances=self.fn.config.min_instances,
            ):
                self.retire(self.instances[iid])

    def resize(self, min_instances: int, max_instances: int) -> list[str]:
        """Change the running pool's reservation and cap, and retire idle instances above the new cap now (not after
        ``keep_alive_s``): a caller that knows an instance will not be used again (the training auto-tuner removing a
        worker) stops paying for it at once. Returns the ids of the retired instances."""
        cfg = replace(self.fn.config, min_instances=min_instances, max_instances=max_instances)
        self.fn = replace(self.fn, config=cfg)
        self.autoscaler.config = replace(self.autoscaler.config, min_instances=min_instances,
                                         max_instances=max_instances)  # fmt: skip
        idle = [i for i in self.instances.values() if i.state == "ready" and i.in_flight == 0]
        extra = max(0, len(self.instances) - max_instances)
        retired = [i.id for i in idle[:extra]]
        for iid in retired:
            self.retire(self.instances[iid])
        return retired

    def retire(self, inst: Instance) -> None:
        inst.stop()
        self.instances.pop(inst.id, None)
        self.host.instance_stopped(self, inst)

    def close(self) -> None:
        self.closed = True
        for inst in list(self.instances.values()):
            inst.stop()
            inst.fail_pending(Unavailable("the server is shutting down"))
            self.host.instance_stopped(self, inst)
        self.instances.clear()
        self._fail_queued(Unavailable("the server is shutting down"))

    def _fail_queued(self, err: Exception) -> None:
        while self.queue:
            q = self.queue.popleft()
            if not q.fut.done():
                q.fut.set_exception(err)
