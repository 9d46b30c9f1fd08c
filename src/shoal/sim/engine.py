"""The simulation: deployments' function pools on a cluster, driven by Shoal's own policies, fed by arrivals.

Each function of each deployment has a pool, as in the runtime (``runtime/pool.py``): a queue, instances that cold
start and stay warm, and on every tick (``tick_s``, 0.1 s like the runtime's) an observation to the *unmodified*
``KpaAutoscaler``, whose decision is carried out with ``instances_to_retire`` for the keep-alive. Dispatch asks
``decide_batch`` when a function batches; with ``max_batch_size == 1`` that policy always answers "send the oldest
request now", so the pool does that without the call (tests/sim check the two agree).

Ticks are skipped exactly (``skip_idle_ticks``, on by default): a pool is looked at on a tick only when something
touched it since its last look (an arrival, a completion, an instance starting, ready or retired), or when its
policies said their decision could change then. After each decision the pool asks the autoscaler's ``next_change``
(the first tick at which its decision could differ if the observation stays as it is) and the keep-alive's
``first_expiry_tick`` (when its oldest idle instance may go), and sleeps until the earlier of the two. When it is
looked at again it catches up the ticks it slept through with ``decide_ticks`` (the same observation on each, added
to the windows as one run), so the autoscaler's state and every decision are those of ticking every pool on every
tick, which is what ``skip_idle_ticks=False`` does (tests/sim and tests/policy check they agree). A busy pool whose
observation changes on every tick is simply decided on every tick.
"""

from __future__ import annotations

import math
import random
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shoal.app import INPUT
from shoal.policy.autoscale import AutoscalerConfig, KpaAutoscaler, ScaleObservation
from shoal.policy.batching import decide_batch
from shoal.policy.gpu_placement import ShareRequest
from shoal.policy.keepalive import IdleInstance, first_expiry_tick, idle_needed, instances_to_retire
from shoal.sim.cluster import Cluster, ClusterSpec
from shoal.sim.gpu import GpuShare, GpuTable, sm_quota_for
from shoal.sim.kernel import Kernel
from shoal.sim.meter import Prices, SimMeter
from shoal.sim.model import Deployment, ModelError, StageModel
from shoal.sim.result import SimResult

__all__ = ["SimConfig", "Simulator"]

OK, REJECTED = 200, 429


@dataclass(frozen=True)
class SimConfig:
    tick_s: float = 0.1
    stable_window_s: float = 60.0
    panic_window_s: float = 6.0
    #: Platform part of a cold start (process start, imports); stage ``load_s`` is added per function.
    cold_start_s: float = 0.25
    #: Round trip of one function call between the parent and an instance (framing, sockets; not billed). 0: not
    #: modelled. ``shoal.sim.calibrate`` reads it from a profile (latency - busy time of its stage rows).
    dispatch_s: float = 0.0
    #: Period of the time series in the result (instances, GPU occupancy, cost, SLO hit rate).
    sample_s: float = 60.0
    seed: int = 0
    #: Look at a pool only on the ticks where its observation changed or its policies' decision could (exact; see
    #: the module docstring). Off, every pool is observed on every tick, as in the runtime; results are the same.
    skip_idle_ticks: bool = True
    #: Keep GPU room for the first instance of every function of a plan before giving one function more instances
    #: (the runtime's placement policy). Off: plain best fit, where one function can starve the others (BENCHMARKS §8).
    plan_aware_placement: bool = True
    prices: Prices | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not self.tick_s > 0 or not self.sample_s >= self.tick_s:
            raise ValueError("need tick_s > 0 and sample_s >= tick_s")
        if self.dispatch_s < 0 or self.cold_start_s < 0:
            raise ValueError("need dispatch_s >= 0 and cold_start_s >= 0")


class _Inst:
    __slots__ = ("id", "idle_since", "in_flight", "node", "ready_at", "started_at", "state")

    def __init__(self, iid: str, node: int, now: float) -> None:
        self.id = iid
        self.node = node
        self.state = 0  # 0 starting, 1 ready
        self.started_at = now
        self.ready_at = math.inf
        self.idle_since = now
        self.in_flight = 0


class _Gen:
    """One plan of one deployment: its pools, and how many requests walk them (a switch retires a generation; its
    pools close when the last of its requests is done, as ``Host.switch_plan`` closes the old plan's pools)."""

    __slots__ = ("active", "hits", "label", "pools", "retired", "served", "sources", "template")

    def __init__(self, label: str, pools: list[_Pool], template: list[int] | None, sources: list[int]) -> None:
        self.label = label
        self.pools = pools
        self.template = template
        self.sources = sources
        self.active = 0
        self.retired = False
        self.served = 0  # requests it finished or failed
        self.hits = 0  # of those, finished within the SLO


class _Req:
    __slots__ = ("cold_s", "dep", "exec_s", "failed", "gen", "hop_s", "nodes", "queue_s", "t0", "wait")

    def __init__(self, dep: int, t0: float, wait: list[int] | None, n_fn: int, gen: _Gen | None = None) -> None:
        self.dep = dep
        self.gen = gen
        self.t0 = t0
        self.wait = wait
        self.nodes = [-1] * n_fn if n_fn > 1 else None
        self.queue_s = self.cold_s = self.exec_s = self.hop_s = 0.0
        self.failed = False


class _Pool:
    """One function of one deployment."""

    def __init__(
        self, sim: Simulator, dep: int, idx: int, d: Deployment, table: GpuTable | None, generation: int = 0
    ) -> None:
        fn = d.plan.functions[idx]
        self.sim = sim
        self.dep = dep
        self.idx = idx
        self.key = f"{d.label}/{fn.name}" if generation == 0 else f"{d.label}@{generation}/{fn.name}"
        self.siblings: list[_Pool] = []  # the pools of this plan, by function index
        self.closed = False  # its plan was switched away from and its last request is done
        self.fn = fn
        cfg = fn.config
        self.limit = fn.resources.max_concurrency
        self.max_batch = cfg.max_batch_size
        self.max_wait = cfg.max_batch_wait_s
        self.queue_limit = cfg.queue_limit
        self.keep_alive = cfg.keep_alive_s
        self.surplus_idle = cfg.surplus_idle_s
        self.min_instances = cfg.min_instances
        c = sim.config
        self.scaler = KpaAutoscaler(
            AutoscalerConfig(
                target_concurrency=fn.target_concurrency,
                min_instances=cfg.min_instances,
                max_instances=cfg.max_instances,
                stable_window_s=c.stable_window_s,
                panic_window_s=c.panic_window_s,
            )
        )
        models = [d.model_of(s) for s in fn.stages]
        self.batched = [d.app[s].batch for s in fn.stages]
        self.models = models
        needs_gpu = any(m.kind == "gpu" for m in models)
        share = d.gpu_shares.get(fn.name)
        if share is None and fn.resources.gpu > 0:
            share = sm_quota_for(fn.resources.gpu)
        if share is not None and share.memory_mb == 0 and fn.resources.gpu_memory_mb:
            share = GpuShare(share.sm, share.quota, fn.resources.gpu_memory_mb)
        if needs_gpu and share is None:
            raise ModelError(f"function {self.key!r} runs a GPU stage model but has no GPU share (Resources.gpu)")
        if needs_gpu and table is None:
            raise ModelError(f"function {self.key!r} runs a GPU stage model but no GPU table was loaded")
        self.share = share
        self.table = table
        # the node's CPU model, where one is on (shoal.sim.cpu); functions with a GPU stage stay out of it
        self.cpu_of = None if needs_gpu else sim.cpus
        cpu_time = sum(m.mean_s for m in models)
        self.cpu_frac = sum(m.mean_s * m.cpu_fraction for m in models) / cpu_time if cpu_time > 0 else 1.0
        self.cold_s = c.cold_start_s + sum(m.load_s for m in models)
        self.dispatch = c.dispatch_s
        self.out_bytes = sum(m.output_bytes for s, m in zip(fn.stages, models, strict=True) if s in fn.outputs)
        self._const = None if any(m.kind == "gpu" or m.cv > 0 for m in models) else sum(m.mean_s for m in models)
        self._gpu_memo: dict[tuple[str, int], float] = {}  # (model, batch) -> latency at this pool's share
        self.instances: dict[str, _Inst] = {}
        self.queue: deque[tuple[_Req, float, float]] = deque()  # (request, time enqueued, hop in)
        self.in_flight = 0
        self.ready = 0
        self.starting = 0
        self.desired = cfg.min_instances
        self.panic = False
        self.order = 0  # index among all pools: the order in which pools act within a tick (placement depends on it)
        self.last_tick = -1  # index of the last tick this pool was observed on
        self.seen: tuple[int, int, int, int] | None = None  # (in_flight, queued, ready, starting) then
        self.wake = -1  # a tick at which the policies must look again though nothing touched the pool; -1: none
        self.dirty = False  # touched since the last look (queued in sim.dirty)
        self.n = 0
        self.cold_starts = 0
        self.unplaced = 0
        self.wake_pending = False
        self.down: list[int] = []
        self.up: list[int] = []
        self.sink = False
        self.account: Any = None

    # -- service times --------------------------------------------------------------------------------------------
    def _gpu_latency(self, m: StageModel, size: int) -> float:
        assert self.table is not None and self.share is not None and m.model is not None
        key = (m.model, size)
        t = self._gpu_memo.get(key)
        if t is None:
            t = self._gpu_memo[key] = self.table.latency_s(m.model, size, self.share.sm, self.share.quota)
        return t

    def mean_exec_s(self) -> float:
        """Mean execution time of one request (no batch), without drawing from the random stream."""
        return sum(self._gpu_latency(m, 1) if m.kind == "gpu" else m.mean_s for m in self.models)

    def exec_s(self, b: int) -> float:
        if self._const is not None and b == 1:
            return self._const
        total = 0.0
        rng = self.sim.rng
        for m, batched in zip(self.models, self.batched, strict=True):
            reps, size = (1, b) if batched else (b, 1)
            if m.kind == "gpu":
                total += reps * self._gpu_latency(m, size)
            else:
                base = m.mean_s * (size**m.batch_exponent if size > 1 else 1.0)
                if m.cv > 0:
                    s2 = math.log1p(m.cv * m.cv)
                    for _ in range(reps):
                        total += base * rng.lognormvariate(-s2 / 2, math.sqrt(s2))
                else:
                    total += reps * base
        return total

    # -- instances ------------------------------------------------------------------------------------------------
    def start(self) -> bool:
        sim = self.sim
        now = sim.kernel.now
        self.n += 1
        iid = f"{self.key}#{self.n:08d}"
        r = self.fn.resources
        waiting = self._waiting() if self.share is not None and self.instances else ()
        node = sim.cluster.place(iid, r.vcpu, r.memory_mb, self.share, waiting)
        if node is None:
            self.unplaced += 1
            return False
        inst = _Inst(iid, node, now)
        self.instances[iid] = inst
        self.starting += 1
        self.cold_starts += 1
        self.touch()
        sim.meter.instance_started(self.key, now)
        sim.live += 1
        sim.kernel.at(now + self.cold_s, self._on_ready, inst)
        return True

    def _waiting(self) -> list[ShareRequest]:
        """One more instance's GPU share for each other function of this plan that needs one: it has none yet, or
        its autoscaler wants more than it has. The placement policy keeps that room before this function gets
        another instance (``policy.gpu_placement.leaves_room``), so the functions of a plan scale in turn."""
        if not self.sim.config.plan_aware_placement:
            return []
        return [
            ShareRequest(p.share.fraction, p.share.memory_mb)
            for p in self.siblings
            if p is not self and p.share is not None and (not p.instances or p.desired > p.ready + p.starting)
        ]

    def _on_ready(self, inst: _Inst) -> None:
        if inst.state != 0 or inst.id not in self.instances:
            return
        inst.state = 1
        inst.ready_at = inst.idle_since = self.sim.kernel.now
        self.starting -= 1
        self.ready += 1
        if self.closed:  # warmed for a plan that has been switched away from and drained meanwhile
            self.retire(inst)
            return
        self.touch()
        self.pump()

    def retire(self, inst: _Inst) -> None:
        sim = self.sim
        del self.instances[inst.id]
        self.ready -= 1
        self.touch()
        sim.cluster.release(inst.id)
        sim.meter.instance_stopped(self.key, inst.started_at, sim.kernel.now)
        sim.live -= 1

    # -- requests -------------------------------------------------------------------------------------------------
    def submit(self, req: _Req, hop_s: float) -> None:
        if len(self.queue) >= self.queue_limit:
            self.sim.fail(req)
            return
        if not self.dirty:
            self.dirty = True
            self.sim.dirty.append(self)
        if self.ready + self.starting == 0:
            self.start()  # scale from zero at once, as the runtime's activator path does
        self.queue.append((req, self.sim.kernel.now, hop_s))
        self.pump()

    def _free(self) -> _Inst | None:
        best = None
        limit = self.limit
        for inst in self.instances.values():
            if inst.state == 1 and inst.in_flight < limit and (best is None or inst.in_flight < best.in_flight):
                best = inst
                if inst.in_flight == 0:
                    break
        return best

    def pump(self) -> None:
        queue = self.queue
        kernel = self.sim.kernel
        while queue:
            inst = self._free()
            if inst is None:
                return
            now = kernel.now
            if self.max_batch == 1:
                take = 1
            else:
                d = decide_batch(
                    now=now,
                    queued=len(queue),
                    oldest_arrival=queue[0][1],
                    free_slots=1,
                    max_batch_size=self.max_batch,
                    max_wait_s=self.max_wait,
                )
                take = d.take
                if take == 0:
                    if d.wake_at is not None and not self.wake_pending:
                        self.wake_pending = True
                        kernel.at(max(now, d.wake_at), self._on_wake)
                    return
            batch = [queue.popleft() for _ in range(take)]
            inst.in_flight += 1
            self.in_flight += take
            ex = self.exec_s(take)
            hop = 0.0
            for req, t_enq, h in batch:
                if req.nodes is not None and self.up:
                    h = max(
                        (self.sim.hop(req.nodes[u], inst.node, self.siblings[u].out_bytes) for u in self.up),
                        default=0.0,
                    )
                hop = max(hop, h)
                cold = min(now - t_enq, max(0.0, inst.ready_at - max(t_enq, inst.started_at)))
                req.cold_s += cold
                req.queue_s += now - t_enq - cold
                req.hop_s += h + self.dispatch
                req.exec_s += ex
            cpu = self.cpu_of[inst.node] if self.cpu_of is not None else None
            if cpu is None:
                kernel.at(now + hop + ex + self.dispatch, self._on_done, (inst, batch, ex / take))
            else:  # the platform's CPU work, the call's, each as long as the node's cores let them; then the rest
                state = [inst, batch, ex, now, hop + max(0.0, self.dispatch - cpu.platform_s), cpu]
                if cpu.platform_s > 0:
                    cpu.platform(self._on_dispatched, state)
                else:
                    self._on_dispatched(state)

    def _on_dispatched(self, state: list[Any]) -> None:
        """Under the CPU model: the platform's part of the dispatch is done (later than alone if the cores were
        busy: the delay counts as hop time); the call starts."""
        now = self.sim.kernel.now
        late = now - state[3] - state[5].platform_s
        if late > 0:
            for req, _, _ in state[1]:
                req.hop_s += late
        state[3] = now
        work = state[2] * self.cpu_frac  # the part of the call on a core; the rest (sleep, I/O) takes its time
        if work > 0:
            state[5].run(state[0].id, work, self._on_ran, state)
        else:
            self._on_ran(state)

    def _on_ran(self, state: list[Any]) -> None:
        """Under the CPU model: the call has had its CPU time, in ``ran`` (``ex * cpu_frac`` alone); its time off
        the CPU follows."""
        inst, batch, ex, t0, after, _ = state
        now = self.sim.kernel.now
        off = ex * (1.0 - self.cpu_frac)
        took = now - t0 + off
        if took != ex:
            for req, _, _ in batch:
                req.exec_s += took - ex
        self.sim.kernel.at(now + off + after, self._on_done, (inst, batch, took / len(batch)))

    def _on_wake(self, _: object) -> None:
        self.wake_pending = False
        self.touch()
        self.pump()

    def _on_done(self, arg: tuple[_Inst, list[tuple[_Req, float, float]], float]) -> None:
        inst, batch, billed = arg
        sim = self.sim
        if not self.dirty:
            self.dirty = True
            sim.dirty.append(self)
        self.in_flight -= len(batch)
        inst.in_flight -= 1
        if inst.in_flight == 0:
            inst.idle_since = sim.kernel.now
        acc = self.account
        acc.invocations += len(batch)
        acc.billed_s += billed * len(batch)
        for req, _, _ in batch:
            if req.failed:
                continue
            if self.sink:
                sim.finish(req)
            else:
                req.nodes[self.idx] = inst.node  # type: ignore[index]
                sim.forward(req, self)
        self.pump()

    # -- scaling --------------------------------------------------------------------------------------------------
    def touch(self) -> None:
        """Something the autoscaler observes (or the keep-alive's idle set) may have changed: look on the next tick."""
        if not self.dirty:
            self.dirty = True
            self.sim.dirty.append(self)

    def tick(self, k: int, now: float) -> None:
        """The runtime's ``Pool.tick``, every tick (``skip_idle_ticks=False``): the reference the skipping matches."""
        self.last_tick = k
        ready, starting = self.ready, self.starting
        d = self.scaler.decide(ScaleObservation(now, self.in_flight, len(self.queue), ready, starting))
        self._act(d.desired, d.panic, now)

    def look(self, k: int, now: float) -> None:
        """``tick`` with skipping: decide only if the observation changed or the policies asked to look now."""
        if self.last_tick == k:
            return
        ready, starting = self.ready, self.starting
        seen = (self.in_flight, len(self.queue), ready, starting)
        old = self.seen
        if seen == old and k != self.wake:
            if self.desired < ready + starting:  # the idle set may have changed: when may the oldest idle one go?
                self._plan_retire(k)
            return
        scaler = self.scaler
        tick_s = self.sim.tick_s
        if old is not None and self.last_tick < k - 1:  # the ticks slept through, each with the old observation
            scaler.decide_ticks(ScaleObservation((k - 1) * tick_s, *old), self.last_tick + 1, k - 1, tick_s)
        obs = ScaleObservation(now, *seen)
        d = scaler.decide_ticks(obs, k, k, tick_s)
        busy = old != seen and self.last_tick == k - 1
        self.last_tick = k
        self.seen = seen
        started_all = self._act(d.desired, d.panic, now)
        if busy or not started_all:
            # The observation moved on two ticks in a row (or a start was refused): look again next tick, as the
            # runtime would; a busy pool does not pay for next_change on every tick.
            wake: int | None = k + 1
        else:
            wake = scaler.next_change(obs, k, tick_s)
        self._schedule(wake)
        if self.desired < self.ready + self.starting:
            self._plan_retire(k)

    def _schedule(self, wake: int | None) -> None:
        if wake is None:
            self.wake = -1
            return
        self.wake = wake
        wakes = self.sim.wakes
        due = wakes.get(wake)
        if due is None:
            wakes[wake] = [self]
        else:
            due.append(self)

    def _plan_retire(self, k: int) -> None:
        """Wake when the longest-idle instance has been idle long enough to go (the first tick instances_to_retire
        could act: it stops the longest-idle first, after the surplus pause or, if it is the last, the keep-alive)."""
        live = self.ready + self.starting
        if live - max(self.desired, self.min_instances) <= 0:
            return
        oldest = min((i.idle_since for i in self.instances.values() if i.state == 1 and not i.in_flight), default=None)
        if oldest is None:
            return
        needed = idle_needed(live - 1, self.keep_alive, self.surplus_idle)
        m = first_expiry_tick(oldest, needed, k + 1, self.sim.tick_s)
        if self.wake < 0 or m < self.wake:
            self._schedule(m)

    def _act(self, desired: int, panic: bool, now: float) -> bool:
        """Carry a decision out. False when the cluster refused a start (then the pool tries again next tick)."""
        if self.closed:
            desired, panic = 0, False
        self.desired, self.panic = desired, panic
        live = self.ready + self.starting
        for _ in range(desired - live):
            if not self.start():
                return False
        if desired < live:
            idle = [
                IdleInstance(i.id, i.idle_since) for i in self.instances.values() if i.state == 1 and not i.in_flight
            ]
            if idle:
                for iid in instances_to_retire(
                    idle,
                    now=now,
                    keep_alive_s=self.keep_alive,
                    surplus_idle_s=self.surplus_idle,
                    total=live,
                    desired=desired,
                    min_instances=self.min_instances,
                ):
                    self.retire(self.instances[iid])
        return True


def _order(p: _Pool) -> int:
    return p.order


class Simulator:
    """Run deployments on a cluster under a stream of arrivals; see the module docstring."""

    def __init__(
        self,
        cluster: ClusterSpec,
        deployments: Sequence[Deployment],
        config: SimConfig | None = None,
        gpu_table: GpuTable | None = None,
    ) -> None:
        if not deployments:
            raise ModelError("nothing to simulate: no deployment")
        self.config = config or SimConfig()
        self.deployments = list(deployments)
        self.kernel = Kernel()
        self.cluster = Cluster(cluster)
        self.cpus = self.cluster.cpu_models(self.kernel)  # None unless some node models CPU contention
        self.meter = SimMeter(self.config.prices)
        self.rng = random.Random(self.config.seed)
        self.tick_index = 0
        self.tick_s = self.config.tick_s
        self.live = 0
        self.dirty: list[_Pool] = []  # pools touched since the last tick
        self.wakes: dict[int, list[_Pool]] = {}  # tick -> pools whose policies asked to look then (stale ones skip)
        self.pools: list[list[_Pool]] = []
        self.gpu_table = gpu_table
        self.gens: list[_Gen] = []
        self._generations = 0
        self.arrivals: dict[int, deque[float]] = {}  # deployments whose arrival times are kept (adaptive loops)
        self.switching: set[int] = set()  # deployments whose new plan is warming
        self.past_gens: list[list[_Gen]] = []  # per deployment, every generation it had (``outcomes``)
        for di, d in enumerate(self.deployments):
            gen = self._generation(di, d, 0)
            self.gens.append(gen)
            self.past_gens.append([gen])
            self.pools.append(gen.pools)
        self.all_pools = [p for pools in self.pools for p in pools]
        for i, p in enumerate(self.all_pools):
            p.order = i
            p.dirty = True  # every pool is decided on tick 0, as in the runtime
        self.dirty = list(self.all_pools)
        self.slo_s = [d.app.slo.latency_s for d in self.deployments]
        self.out = SimResult.empty(self)

    def _generation(self, di: int, d: Deployment, generation: int) -> _Gen:
        fns = d.plan.functions
        pools = [_Pool(self, di, i, d, self.gpu_table, generation) for i in range(len(fns))]
        index = {f.name: i for i, f in enumerate(fns)}
        for i, f in enumerate(fns):
            p = pools[i]
            p.siblings = pools
            p.up = [index[u] for u in f.upstream]
            for u in f.upstream:
                pools[index[u]].down.append(i)
            p.sink = d.app.sink in f.stages
            self.meter.register(p.key, f.resources, p.share.fraction if p.share else 0.0)
            p.account = self.meter.account(p.key)
        template = [len(f.upstream) for f in fns] if len(fns) > 1 else None
        return _Gen(d.plan.label, pools, template, [i for i, f in enumerate(fns) if set(f.inputs) == {INPUT}])

    # -- plan switches --------------------------------------------------------------------------------------------
    def switch(self, dep: int, new: Deployment, warm: dict[str, int] | None = None) -> float:
        """Serve deployment ``dep`` under ``new`` (same app, another plan) from now on, as ``Host.switch_plan`` does:
        the new plan's functions start ``warm`` instances (default: for the recent work, as the runtime does, capped
        by what the old plan runs for their stages, or without recent work as many as it runs for the busiest of
        them; at least one), traffic moves when the slowest of
        them is ready, requests under way finish on the old pools, which close when the last one is done. Unlike the
        runtime, no pool is carried over (functions both plans share are warmed anew). Returns the time traffic
        moves."""
        old = self.gens[dep]
        if dep in self.switching:
            raise ModelError(f"deployment {dep} is already switching plans; switch again once it is done")
        if new.app is not self.deployments[dep].app:
            raise ModelError(f"switch of deployment {dep}: the new plan is for another app ({new.app.name!r})")
        self._generations += 1
        gen = self._generation(dep, new, self._generations)
        self.past_gens[dep].append(gen)
        now = self.kernel.now
        ready_at = now
        rate = self._recent_rate(dep, now)
        for p in gen.pools:
            p.order = len(self.all_pools)
            self.all_pools.append(p)
            stages = set(p.fn.stages)
            counts = [q.ready + q.starting for q in old.pools if stages & set(q.fn.stages)]
            busy = max(1, max(counts, default=1))
            if rate is not None:  # as Host._warm_count: recent work (rate x mean execution), capped by the old count
                busy = max(1, min(sum(counts) or 1, math.ceil(rate * p.mean_exec_s() / p.fn.target_concurrency)))
            n = (warm or {}).get(p.fn.name, busy)
            for _ in range(max(1, min(n, p.fn.config.max_instances))):
                if p.start():
                    ready_at = max(ready_at, now + p.cold_s)
            p.touch()
        self.switching.add(dep)
        self.kernel.at(ready_at, self._move, (dep, gen))
        return ready_at

    def _recent_rate(self, dep: int, now: float, horizon_s: float = 10.0) -> float | None:
        """Arrivals per second over the last ``horizon_s``, where the deployment's arrivals are kept (an adaptive
        loop keeps them); None otherwise."""
        kept = self.arrivals.get(dep)
        if not kept:
            return None
        recent = sum(1 for t in kept if t > now - horizon_s)
        return recent / max(1e-3, min(horizon_s, now))

    def _move(self, arg: tuple[int, _Gen]) -> None:
        dep, gen = arg
        self.switching.discard(dep)
        old = self.gens[dep]
        self.gens[dep] = gen
        self.pools[dep] = gen.pools
        old.retired = True
        self._drain(old)

    def _drain(self, gen: _Gen) -> None:
        if not gen.retired or gen.active:
            return
        for p in gen.pools:
            if p.closed:
                continue
            p.closed = True
            for inst in list(p.instances.values()):
                if inst.state == 1 and not inst.in_flight:
                    p.retire(inst)
            p.touch()

    def current_plan(self, dep: int) -> str:
        return self.gens[dep].label

    def cost_rate(self, dep: int) -> float:
        """USD per second of the instances (starting or ready) of deployment ``dep``'s current plan: what staying on
        it costs from now until its autoscalers change it (a retired plan's draining instances are not counted)."""
        return sum(len(p.instances) * self.meter.usd_per_s(p.key) for p in self.gens[dep].pools)

    def outcomes(self, dep: int) -> dict[str, tuple[int, int]]:
        """Per plan label, the requests deployment ``dep`` served under it so far and how many within the SLO (as
        the runtime's ``Host.outcomes``): ``policy.served``'s SLO trials read it."""
        out: dict[str, tuple[int, int]] = {}
        for gen in self.past_gens[dep]:
            n, hits = out.get(gen.label, (0, 0))
            out[gen.label] = (n + gen.served, hits + gen.hits)
        return out

    def spent(self, dep: int) -> float:
        """USD the functions of deployment ``dep``'s current plan have cost so far, live instances up to now (as the
        runtime's ``Host.spent``): read twice on the same plan, what the plan cost in between."""
        now, meter = self.kernel.now, self.meter
        total = 0.0
        for p in self.gens[dep].pools:
            live = sum(now - inst.started_at for inst in p.instances.values())
            total += (meter.account(p.key).lifetime_s + live) * meter.usd_per_s(p.key)
        return total

    # -- the request path -----------------------------------------------------------------------------------------
    def hop(self, src: int, dst: int, nbytes: int) -> float:
        return self.cluster.network.hop_s(src == dst, nbytes)

    def _arrive_k(self, k: int) -> None:
        self.arrive(self._deps[k])

    def arrive(self, dep: int) -> None:
        gen = self.gens[dep]
        tpl = gen.template
        pools = gen.pools
        req = _Req(dep, self.kernel.now, None if tpl is None else list(tpl), len(pools), gen)
        gen.active += 1
        kept = self.arrivals.get(dep)
        if kept is not None:
            kept.append(self.kernel.now)
        for i in gen.sources:
            pools[i].submit(req, 0.0)

    def forward(self, req: _Req, done: _Pool) -> None:
        wait = req.wait
        pools = done.siblings
        assert wait is not None
        for j in done.down:
            wait[j] -= 1
            if wait[j] == 0:
                pools[j].submit(req, 0.0)

    def finish(self, req: _Req) -> None:
        latency = self.kernel.now - req.t0
        self.out.add(req, latency, OK)
        gen = req.gen
        if gen is not None:
            gen.served += 1
            gen.hits += latency <= self.slo_s[req.dep]
        self._done(req)

    def fail(self, req: _Req) -> None:
        if not req.failed:  # a request fails once, whichever branch of the DAG refused it first
            req.failed = True
            self.out.add(req, self.kernel.now - req.t0, REJECTED)
            if req.gen is not None:
                req.gen.served += 1
            self._done(req)

    def _done(self, req: _Req) -> None:
        gen = req.gen
        if gen is not None:
            gen.active -= 1
            if gen.retired and not gen.active:
                self._drain(gen)

    # -- ticks ----------------------------------------------------------------------------------------------------
    def _tick(self, k: int) -> None:
        self.tick_index = k
        now = self.kernel.now
        if not self.config.skip_idle_ticks:
            for p in self.all_pools:
                p.tick(k, now)
        else:
            todo = self.dirty
            due = self.wakes.pop(k, None)
            if due:
                todo.extend(p for p in due if p.wake == k and not p.dirty)
            if todo:
                self.dirty = []
                if len(todo) > 1:
                    todo.sort(key=_order)  # pools act in the same order as when all tick (placement depends on it)
                for p in todo:
                    p.dirty = False
                    p.look(k, now)
        if k % self._per_sample == 0:
            self.out.sample(self, now)
        self.kernel.at((k + 1) * self.config.tick_s, self._tick, k + 1)

    # -- running --------------------------------------------------------------------------------------------------
    def run(self, times: np.ndarray, deployment_of: np.ndarray | None = None, until: float | None = None) -> SimResult:
        """Simulate arrivals at ``times`` (sorted seconds) to deployments ``deployment_of`` (indices; default all to
        deployment 0) up to ``until`` (default: the last arrival plus a keep-alive's drain)."""
        times = np.asarray(times, dtype=np.float64)
        if times.size and (np.diff(times) < 0).any():
            raise ValueError("arrival times must be sorted")
        if deployment_of is None:
            deps = [0] * times.size
        else:
            deployment_of = np.asarray(deployment_of)
            if deployment_of.shape != times.shape:
                raise ValueError("deployment_of must have one entry per arrival")
            if deployment_of.size and (deployment_of.min() < 0 or deployment_of.max() >= len(self.deployments)):
                raise ValueError(f"deployment indices must be in [0, {len(self.deployments)})")
            deps = deployment_of.tolist()
        if until is None:
            last = float(times[-1]) if times.size else 0.0
            until = last + 1.0
        self._per_sample = max(1, round(self.config.sample_s / self.config.tick_s))
        self.kernel.at(0.0, self._tick, 0)
        self._deps = deps
        wall = time.perf_counter()
        self.kernel.run(until, times.tolist(), self._arrive_k)
        self.out.finish(self, until, time.perf_counter() - wall, int(times.size))
        return self.out
