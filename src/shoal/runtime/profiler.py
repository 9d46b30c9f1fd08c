"""``shoal profile``: measure an application's stages and functions on the embedded runtime.

Everything is measured on the real runtime (zygote, instance processes pinned to their cores, shared memory), one
instance at a time, with the instance at the vCPU share being measured:

- **A stage** runs alone: a one-stage application wraps it (same function, ``load`` and ``batch`` flag; a stage with
  several upstream stages gets their values as one list that the wrapper unpacks), and its inputs are the values
  its upstream stages produce when the whole application runs in this process on a sample input. A ``batch=True``
  stage is also measured with one request carrying B rows.
- **A function** of another plan (coarse by default) runs the same way, with all its stages in one instance; if one
  of them batches, B requests are sent at once and the runtime's dynamic batching runs them as one batch.
- Each point is warmed up, then repeated; the instance's cold start and model load time come from its start, its
  peak resident memory from ``/proc/PID/status`` (VmHWM, reset before each point).
- **Hops**: an echo chain of two stages, served fine and coarse, carries arrays of growing size; the difference of
  the medians is the cost of one function boundary.
- **GPU rows** come from a table measured elsewhere (there is no GPU here), for stages mapped to a table model.

The result is a :class:`shoal.predict.Profile` (schema ``shoal.profile/1``, see docs/profiles.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import importlib.metadata as md
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from shoal.app import INPUT, App, FunctionConfig, Plan, Resources, Stage, StageFailed, run_stages
from shoal.app.loader import load_app
from shoal.predict.profile import (
    SCHEMA,
    AppInfo,
    GpuPoint,
    HopPoint,
    Point,
    Profile,
    Settings,
    Spread,
    StageInfo,
    read_gpu_table,
    table_model,
)
from shoal.runtime import devices
from shoal.runtime.dataplane import encode
from shoal.runtime.errors import ServeError
from shoal.runtime.host import Host, HostConfig
from shoal.runtime.orchestrator import Result, invoke
from shoal.runtime.pool import Instance
from shoal.runtime.zygote import DEFAULT_PRELOAD, Zygote

__all__ = [
    "HOP_BYTES",
    "INPUT_SIZES",
    "ProfileOptions",
    "ProfilerError",
    "Target",
    "default_gpu_table",
    "load_target",
    "machine_info",
    "peak_rss_mb",
    "profile_app",
    "render_profile",
    "reset_peak_rss",
    "zoo_inputs",
]

INPUT_SIZES = ("small", "medium", "large")
#: Sizes of the arrays the hop measurement sends: inline in the frame (1 KiB), at the inline limit (64 KiB), and
#: through shared memory (1 MiB, 16 MiB).
HOP_BYTES = (1 << 10, 64 << 10, 1 << 20, 16 << 20)
_IN = "_shoal_inputs"
_OUT = "_shoal_outputs"

InputsFn = Callable[[str], Any]
#: Called before each measured point: (points done, points in all, what is measured now).
OnPoint = Callable[[int, int, str], None]


class ProfilerError(ValueError):
    """The application cannot be profiled as asked (no inputs, bad options). The message says what to do."""


@dataclass(frozen=True)
class ProfileOptions:
    """What to measure. :meth:`quick` gives a small sweep for tests and demos."""

    repeats: int = 10
    warmup: int = 2
    vcpus: tuple[float, ...] = (1.0, 2.0)
    batch_sizes: tuple[int, ...] = (1, 2, 4, 8)
    input_sizes: tuple[str, ...] = INPUT_SIZES
    #: Plans whose functions are measured besides the stages; "fine" adds nothing (its functions are the stages).
    plans: tuple[str, ...] = ("fine", "coarse")
    hop_bytes: tuple[int, ...] = HOP_BYTES
    #: Hops differ by fractions of a millisecond, so each hop size is repeated this many times more.
    hop_repeat_factor: int = 3
    timeout_s: float = 120.0
    #: Pause after an instance's first request, before warming up: for about 150 ms after an instance starts, one
    #: request in five takes 2-5 ms longer on the development machine (the round trip, not the stage), so the
    #: first points of every instance came out noisier than the others.
    settle_s: float = 0.5
    #: Warm-up goes on past ``warmup`` requests until this long has passed: requests of a fraction of a millisecond
    #: were still getting faster over their first few repeats after two warm-up requests.
    warmup_s: float = 0.05
    gpu_table: Path | None = None
    preload: tuple[str, ...] = DEFAULT_PRELOAD

    def __post_init__(self) -> None:
        if self.repeats < 1 or self.warmup < 1:
            raise ProfilerError(f"need repeats >= 1 and warmup >= 1, got {self.repeats} and {self.warmup}")
        if not self.vcpus or any(not v > 0 for v in self.vcpus):
            raise ProfilerError(f"vCPU shares must be positive numbers, got {list(self.vcpus)}")
        if not self.batch_sizes or any(b < 1 for b in self.batch_sizes):
            raise ProfilerError(f"batch sizes must be integers >= 1, got {list(self.batch_sizes)}")
        if not self.input_sizes:
            raise ProfilerError("give at least one input size (small, medium, large)")
        if self.settle_s < 0 or self.warmup_s < 0:
            raise ProfilerError(f"settle_s and warmup_s must be >= 0, got {self.settle_s} and {self.warmup_s}")
        if any(n < 1 for n in self.hop_bytes) or self.hop_repeat_factor < 1:
            raise ProfilerError("hop sizes must be >= 1 byte and hop_repeat_factor >= 1")

    def quick(self) -> ProfileOptions:
        """3 repeats, batch sizes 1 and 4, the first vCPU share only."""
        return replace(self, repeats=3, batch_sizes=(1, 4), vcpus=self.vcpus[:1])


# -- what to profile: the app, its inputs, its GPU models --------------------------------------------------------------
@dataclass
class Target:
    """An application to profile, with its inputs and the GPU-table models of its stages."""

    app: App
    source: str
    inputs: InputsFn | None
    inputs_source: str
    gpu_models: dict[str, str] = field(default_factory=dict)


def load_target(ref: str, gpu_models: Mapping[str, str] | None = None) -> Target:
    """Load ``FILE.py[:APP]`` and what the file says about profiling it.

    Inputs come from the file's ``profile_inputs(size: str) -> Any`` if it defines one, else from
    ``shoal.zoo.inputs.sample_inputs`` for the example applications. GPU models come from the file's
    ``GPU_MODELS = {"stage": "model"}`` (keys may also be ``"app/stage"``), updated with ``gpu_models``.
    """
    app = load_app(ref)
    module = _module_of(ref, app)
    hook = getattr(module, "profile_inputs", None) if module is not None else None
    if hook is not None and not callable(hook):
        raise ProfilerError(f"{ref}: profile_inputs must be a function (size: str) -> input")
    if hook is not None:
        inputs, where = hook, f"profile_inputs() of {Path(ref.partition(':')[0]).name}"
    else:
        inputs, where = zoo_inputs(app.name), "shoal.zoo.inputs.sample_inputs"
    declared = getattr(module, "GPU_MODELS", None) if module is not None else None
    if declared is not None and not isinstance(declared, Mapping):
        raise ProfilerError(f"{ref}: GPU_MODELS must be a dict of stage name -> GPU table model")
    for stage in gpu_models or {}:
        if stage not in app.stages and stage.partition("/")[2] not in app.stages:
            raise ProfilerError(f"GPU model given for {stage!r}, which is not a stage of {app.name!r}")
    mapping = {**dict(declared or {}), **dict(gpu_models or {})}
    return Target(app, ref, inputs, where if inputs is not None else "none", stage_gpu_models(app, mapping))


def _module_of(ref: str, app: App) -> ModuleType | None:
    """The module :func:`load_app` made of the file (it is registered in ``sys.modules``)."""
    path = Path(ref.partition(":")[0]).resolve()
    for mod in list(sys.modules.values()):
        f = getattr(mod, "__file__", None)
        if f and Path(f).resolve() == path and any(v is app for v in vars(mod).values()):
            return mod
    return None


def stage_gpu_models(app: App, mapping: Mapping[str, str]) -> dict[str, str]:
    """Stage -> GPU-table model name for ``app``: ``"app/stage"`` keys first, then ``"stage"``."""
    out: dict[str, str] = {}
    for name in app.stages:
        model = mapping.get(f"{app.name}/{name}", mapping.get(name))
        if model is not None:
            out[name] = str(model)
    return out


def zoo_inputs(app_name: str, n: int = 48, seed: int = 0) -> InputsFn | None:
    """Small, medium and large inputs of an example application from ``shoal.zoo.inputs``: of ``n`` samples, sorted
    by size, the smallest, the median and the largest. None if the zoo does not know the application."""
    try:
        from shoal.zoo.inputs import APPS, input_size, sample_inputs
    except ImportError:
        return None
    if app_name not in APPS:
        return None
    cache: dict[str, Any] = {}

    def inputs(size: str) -> Any:
        if not cache:
            xs = sample_inputs(app_name, n, seed)
            order = sorted(range(n), key=lambda i: input_size(xs[i]))
            cache.update(small=xs[order[0]], medium=xs[order[n // 2]], large=xs[order[-1]])
        if size not in cache:
            raise ProfilerError(f"sample inputs come in sizes {', '.join(INPUT_SIZES)}, not {size!r}")
        return cache[size]

    return inputs


def default_gpu_table() -> Path | None:
    """``../shared/gpu-profiles/rapp_v100_latency.csv`` next to this source checkout, if it is there."""
    root = Path(__file__).resolve().parents[3]
    table = root.parent / "shared" / "gpu-profiles" / "rapp_v100_latency.csv"
    return table if (root / "pyproject.toml").is_file() and table.is_file() else None


# -- measuring helpers -------------------------------------------------------------------------------------------------
def peak_rss_mb(pid: int) -> float | None:
    """Peak resident memory of process ``pid`` (VmHWM) in MiB, or None if it cannot be read."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def reset_peak_rss(pid: int) -> bool:
    """Reset the peak resident memory of ``pid`` to its current value (Linux: ``echo 5 > /proc/PID/clear_refs``)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _cpu_ticks() -> int:
    """Busy clock ticks of all CPUs since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return sum(v) - v[3] - v[4]  # all but idle and iowait


def _process_ticks(pid: int) -> int:
    """User + system clock ticks of process ``pid`` (all its threads); 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return 0


class _OtherWork:
    """Cores that processes other than the profiler, its zygote and its instances kept busy during the run.

    Clock ticks come 100 times a second, too coarse for one point (often 10 ms), but fine for a whole run.
    """

    def __init__(self, pids: Sequence[int]) -> None:
        self.pids = list(pids)
        self.instances = 0  # ticks of instances that have gone, counted when they went
        self.t0, self.busy0, self.own0 = time.monotonic(), _cpu_ticks(), sum(_process_ticks(p) for p in pids)

    def instance_ends(self, pid: int | None) -> None:
        if pid:
            self.instances += _process_ticks(pid)

    def cores(self) -> float:
        own = sum(_process_ticks(p) for p in self.pids) - self.own0 + self.instances
        seconds = time.monotonic() - self.t0
        hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        return round(max(0.0, (_cpu_ticks() - self.busy0 - own) / hz / seconds), 3) if seconds > 0 else 0.0


def data_bytes(value: Any) -> int:
    """Bytes the data plane carries for ``value``: the message with every array inline (arrays' bytes included)."""
    return len(encode(value))


def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gb = 0.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_gb = round(int(Path("/proc/meminfo").read_text().split("\n")[0].split()[1]) / 2**20, 1)
    versions = {}
    for p in ("shoal", "numpy", "onnxruntime"):
        try:
            versions[p] = md.version(p)
        except md.PackageNotFoundError:
            versions[p] = None
    load1 = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {
        "cpu": cpu,
        "cores": os.cpu_count() or 1,
        "usable_cores": len(os.sched_getaffinity(0)),
        "memory_gb": mem_gb,
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": versions,
        "gpus": [g.name for g in devices.detect_gpus()],
        "cpu_shares": "pinned to whole cores (sched_setaffinity); no CPU quota, so shares below 1 run as 1",
        "loadavg_1m_at_start": round(load1, 2) if load1 is not None else None,
    }


# -- groups: a stage or a function, as a one-function application ------------------------------------------------------
@dataclass
class _Group:
    kind: str  # "stage" | "function"
    name: str
    plans: list[str]
    stages: tuple[str, ...]
    app: App
    ext: tuple[str, ...]  # the values a request carries, in order: INPUT or upstream stage names
    batches: bool  # a stage of it is declared batch=True

    def payload(self, values: Mapping[str, Any]) -> Any:
        return values[self.ext[0]] if len(self.ext) == 1 else [values[u] for u in self.ext]


def _collect(*values: Any) -> list[Any]:
    return list(values)


def _identity(x: Any) -> Any:
    return x


def _picking(stage: Stage, picks: list[tuple[int, int | None]]) -> Callable[..., Any]:
    """The stage's function, fed from the wrapper's arguments: ``picks[j] = (argument, element or None)``."""
    fn, has_state = stage.fn, stage.load is not None

    def call(*args: Any) -> Any:
        state, data = (args[:1], args[1:]) if has_state else ((), args)
        return fn(*state, *[data[i] if k is None else data[i][k] for i, k in picks])

    call.__name__ = getattr(fn, "__name__", stage.name)
    return call


def _element(ext: list[str], name: str, whole: bool) -> int | None:
    """Where outside value ``name`` is in the request: all of it (one value) or an element of its list."""
    return None if whole else ext.index(name)


def group_app(app: App, stages: Sequence[str], name: str) -> tuple[App, tuple[str, ...]]:
    """A one-function application that runs ``stages`` of ``app`` as the function holding them would.

    Its request carries the group's external inputs (``INPUT`` or upstream stages' outputs, in the returned order):
    the one value itself when there is one, else a list of them. Stages keep their names, functions, ``load`` and
    ``batch`` (GPU shares are dropped: rows are measured on CPU); its output is the group's output (a list if it has
    several).
    """
    members = set(stages)
    order = [s for s in app.stages if s in members]
    ext: list[str] = []
    for s in order:
        for u in app[s].after or (INPUT,):
            if u not in members and u not in ext:
                ext.append(u)
    whole = len(ext) == 1
    outputs = [s for s in order if s == app.sink or any(d not in members for d in app.downstream(s))]
    sinks = [s for s in order if not any(d in members for d in app.downstream(s))]
    w = App(name)
    mixed = [s for s in order if app[s].after and 0 < sum(u in members for u in app[s].after) < len(app[s].after)]
    if mixed:
        w.add(Stage(_IN, _identity))
    for s in order:
        st = app[s]
        res = replace(st.resources, gpu=0.0, gpu_memory_mb=0)
        ups = st.after or (INPUT,)
        inside = [u for u in ups if u in members]
        if len(inside) == len(ups):
            w.add(Stage(s, st.fn, st.after, st.load, res, st.batch))
            continue
        if inside:
            after: tuple[str, ...] = (*inside, _IN)
            # an outside value comes from _IN, the last argument: the request's value, or an element of its list
            picks = [(inside.index(u), None) if u in members else (len(inside), _element(ext, u, whole)) for u in ups]
        else:
            after = ()
            picks = [(0, _element(ext, u, whole)) for u in ups]
        fn = st.fn if picks == [(0, None)] else _picking(st, picks)
        w.add(Stage(s, fn, after, st.load, res, st.batch))
    if outputs != sinks or len(sinks) != 1:
        w.add(Stage(_OUT, _collect, tuple(outputs)))
    w.validate()
    return w, tuple(ext)


def _groups(app: App, plans: Sequence[str]) -> list[_Group]:
    groups = []
    for i, s in enumerate(app.stages):
        w, ext = group_app(app, [s], f"profile-s{i}")
        groups.append(_Group("stage", s, ["fine"], (s,), w, ext, app[s].batch))
    by_stages: dict[tuple[str, ...], _Group] = {}
    for text in plans:
        plan = Plan.parse(app, text)
        if plan.label == "fine":
            continue
        for f in plan.functions:
            g = by_stages.get(f.stages)
            if g is not None:
                if plan.label not in g.plans:
                    g.plans.append(plan.label)
                continue
            w, ext = group_app(app, f.stages, f"profile-f{len(by_stages)}")
            g = _Group("function", f.name, [plan.label], f.stages, w, ext, any(app[s].batch for s in f.stages))
            by_stages[f.stages] = g
            groups.append(g)
    return groups


def _hop_app(name: str) -> App:
    hop = App(name)
    hop.add(Stage("send", _identity, resources=Resources(vcpu=1, memory_mb=128)))
    hop.add(Stage("receive", _identity, ("send",), resources=Resources(vcpu=1, memory_mb=128)))
    return hop


class _ProfileHost(Host):
    """A host that borrows the profiler's zygote: one zygote (forked once, before any thread) serves every host."""

    def __init__(self, deployments: Sequence[tuple[App, Plan]], config: HostConfig, zygote: Zygote) -> None:
        super().__init__(deployments, config)
        self.zygote = zygote

    async def stop(self) -> None:
        self.zygote = None  # the profiler closes it once, at the end
        await super().stop()


# -- inputs: the application run in this process -----------------------------------------------------------------------
def _as_input(app: App, x: Any) -> Any:
    """What the runtime hands the first stage: the app's input spec turns lists into arrays."""
    if app.input is not None and not isinstance(x, np.ndarray):
        return np.asarray(x, dtype=app.input.dtype)
    return x


def _reference_values(app: App, inputs: InputsFn, sizes: Sequence[str], notes: list[str]) -> dict[str, dict[str, Any]]:
    """Every stage's value for each input size, from running the whole application in this process."""
    states = {n: s.load() for n, s in app.stages.items() if s.load is not None}
    out: dict[str, dict[str, Any]] = {}
    for size in sizes:
        try:
            x = inputs(size)
        except ProfilerError:
            raise
        except Exception as e:
            raise ProfilerError(f"profile_inputs({size!r}) raised {type(e).__name__}: {e}") from e
        try:
            out[size] = run_stages(app, list(app.stages), {INPUT: _as_input(app, x)}, states)
        except StageFailed as e:
            notes.append(f"the {size} input fails in process ({e}); not profiled at that size")
    if not out:
        raise ProfilerError(f"no input size runs through {app.name!r} in process; see the notes: {'; '.join(notes)}")
    return out


def _tile(value: Any, b: int) -> Any:
    """``value`` with every array repeated ``b`` times along its first axis (None if a leaf is not such an array)."""
    if b == 1:
        return value
    if isinstance(value, np.ndarray) and value.ndim >= 1:
        return np.concatenate([value] * b)
    if isinstance(value, list):
        parts = [_tile(v, b) for v in value]
        return None if any(p is None for p in parts) else parts
    return None


# -- measuring ---------------------------------------------------------------------------------------------------------
@dataclass
class _Job:
    group: _Group
    vcpu: float
    batches: tuple[int, ...]
    max_batch_size: int  # of the function's config: > 1 only for function batching by requests


class _Run:
    """One profiling run: the shared zygote, the inputs, progress, notes."""

    def __init__(self, opts: ProfileOptions, values: dict[str, dict[str, Any]], on_point: OnPoint | None) -> None:
        self.opts = opts
        self.values = values
        self.on_point = on_point
        self.notes: list[str] = []
        self.done = 0
        self.total = 0
        self.zygote: Zygote | None = None
        self.other: _OtherWork | None = None

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def step(self, label: str) -> None:
        if self.on_point is not None:
            self.on_point(self.done, self.total, label)
        self.done += 1

    async def stop(self, host: Host) -> None:
        for inst in host.instances.values():
            if self.other is not None:
                self.other.instance_ends(inst.pid)
        await host.stop()

    async def call(self, host: Host, app: str, payload: Any, n: int) -> list[Result]:
        if n == 1:
            return [await invoke(host, app, payload)]
        return list(await asyncio.gather(*(invoke(host, app, payload) for _ in range(n))))

    async def job(self, job: _Job) -> list[Point]:
        g, opts = job.group, self.opts
        base = Resources.combine([g.app[s].resources for s in g.stages])
        res = Resources(vcpu=job.vcpu, memory_mb=base.memory_mb, max_concurrency=1)
        cfg = FunctionConfig(
            resources=res,
            min_instances=1,
            max_instances=1,
            keep_alive_s=3600.0,
            timeout_s=opts.timeout_s,
            max_batch_size=job.max_batch_size,
            max_batch_wait_s=1.0 if job.max_batch_size > 1 else 0.0,
        )
        plan = Plan(g.app, [list(g.app.stages)], default=cfg, label=g.plans[0])
        assert self.zygote is not None
        host = _ProfileHost([(g.app, plan)], HostConfig(preload=opts.preload), self.zygote)
        await host.start()
        points: list[Point] = []
        try:
            with contextlib.suppress(ServeError):  # a failing point says so below
                first = g.payload(next(iter(self.values.values())))
                await self.call(host, g.app.name, first, job.max_batch_size)  # a full batch: no batching wait
                await asyncio.sleep(opts.settle_s)
            for b in job.batches:
                for size, values in self.values.items():
                    p = await self.point(host, job, b, size, values)
                    if p is not None:
                        points.append(p)
        finally:
            await self.stop(host)
        return points

    async def sample(
        self, host: Host, app: str, payload: Any, n: int
    ) -> tuple[Instance, list[float], list[float], list[Result]]:
        """Warm up, then measure: the instance, latencies and busy times (ms), and the last call's results."""
        t_end, done = time.perf_counter() + self.opts.warmup_s, 0
        while done < self.opts.warmup or time.perf_counter() < t_end:
            await self.call(host, app, payload, n)
            done += 1
        inst = _the_instance(host)
        if not reset_peak_rss(inst.pid or 0):
            self.note("cannot reset an instance's peak memory (/proc/PID/clear_refs): peak_rss_mb is since its start")
        lat, busy, rs = [], [], []
        for _ in range(self.opts.repeats):
            rs = await self.call(host, app, payload, n)
            lat.append(max(r.timing["total_ms"] for r in rs))
            busy.append(sum(f["busy_ms"] * f["batch"] for f in rs[0].timing["functions"].values()))
        return inst, lat, busy, rs

    async def point(self, host: Host, job: _Job, b: int, size: str, values: Mapping[str, Any]) -> Point | None:
        g = job.group
        by_rows = g.kind == "stage"
        self.step(f"{g.kind} {g.name}  vcpu {job.vcpu:g}  batch {b}  {size}")
        payload = _tile(g.payload(values), b) if by_rows else g.payload(values)
        if payload is None:
            self.notes.append(f"stage {g.name}: its input is not an array, so batch {b} cannot be sent as rows")
            return None
        n = 1 if by_rows else b
        try:
            with _no_gc():
                inst, lat, busy, rs = await self.sample(host, g.app.name, payload, n)
        except ServeError as e:
            self.notes.append(f"{g.kind} {g.name} at vcpu {job.vcpu:g}, batch {b}, {size}: {e}; point skipped")
            return None
        rss = peak_rss_mb(inst.pid or 0)
        return Point(
            kind=g.kind,
            name=g.name,
            plan=g.plans[0],
            stages=g.stages,
            vcpu=job.vcpu,
            batch=b,
            batching="rows" if by_rows else "requests",
            input_size=size,
            input_bytes=data_bytes(payload),
            latency_ms=Spread.of(lat),
            busy_ms=Spread.of(busy),
            output_bytes=data_bytes(rs[0].output),
            load_ms=round(inst.load_s * 1e3, 3),
            cold_start_ms=round(((inst.ready_at or inst.started_at) - inst.started_at) * 1e3, 3),
            peak_rss_mb=round(rss, 2) if rss is not None else 0.0,
        )

    async def hops(self, fine_app: App, coarse_app: App) -> list[HopPoint]:
        opts = self.opts
        cfg = FunctionConfig(min_instances=1, max_instances=1, keep_alive_s=3600.0, timeout_s=opts.timeout_s)
        fine, coarse = Plan.fine(fine_app, default=cfg), Plan.coarse(coarse_app, default=cfg)
        extra = len(fine.functions) - len(coarse.functions)
        assert self.zygote is not None
        host = _ProfileHost([(fine_app, fine), (coarse_app, coarse)], HostConfig(preload=opts.preload), self.zygote)
        await host.start()
        rows = []
        try:
            for name in (fine_app.name, coarse_app.name):
                await invoke(host, name, np.zeros(1, np.uint8))
            await asyncio.sleep(opts.settle_s)
            for nbytes in opts.hop_bytes:
                self.step(f"hop  {_fmt_bytes(nbytes)}")
                x = (np.arange(nbytes) % 251).astype(np.uint8)
                samples: dict[str, list[float]] = {fine_app.name: [], coarse_app.name: []}
                t_end, done = time.perf_counter() + opts.warmup_s, 0
                while done < opts.warmup or time.perf_counter() < t_end:
                    for name in samples:
                        await invoke(host, name, x)
                    done += 1
                with _no_gc():
                    for r in range(opts.repeats * opts.hop_repeat_factor):
                        for name in list(samples) if r % 2 == 0 else list(samples)[::-1]:  # alternate: no drift bias
                            samples[name].append((await invoke(host, name, x)).timing["total_ms"])
                f, c = Spread.of(samples[fine_app.name]), Spread.of(samples[coarse_app.name])
                rows.append(HopPoint(nbytes, round((f.median - c.median) / extra, 4), extra, f, c))
        finally:
            await self.stop(host)
        return rows


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """No garbage collection in this process while measuring (as ``timeit`` does): a pass can take milliseconds.
    (Collecting first is worse: the next requests run with cold caches.)"""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _the_instance(host: Host) -> Instance:
    ready = [i for i in host.instances.values() if i.state == "ready"]
    if len(ready) != 1:
        raise ServeError(f"expected one ready instance, found {len(ready)}")
    return ready[0]


def _fmt_bytes(n: int) -> str:
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:g} {unit}"
    return f"{n} B"


def _jobs(groups: Sequence[_Group], opts: ProfileOptions) -> list[_Job]:
    jobs = []
    for g in groups:
        for v in opts.vcpus:
            if not g.batches:
                jobs.append(_Job(g, v, (1,), 1))
            elif g.kind == "stage":
                jobs.append(_Job(g, v, tuple(opts.batch_sizes), 1))
            else:  # batching by requests: the function's max_batch_size is the batch size, one host each
                jobs.extend(_Job(g, v, (b,), b) for b in opts.batch_sizes)
    return jobs


def profile_app(
    app: App,
    inputs: InputsFn | None,
    options: ProfileOptions | None = None,
    *,
    gpu_models: Mapping[str, str] | None = None,
    source: str = "",
    inputs_source: str = "inputs()",
    on_point: OnPoint | None = None,
) -> Profile:
    """Measure ``app`` on the embedded runtime and return its :class:`Profile`.

    ``inputs(size)`` returns the application's input for each of ``options.input_sizes``; ``gpu_models`` maps stage
    names to models of the GPU table (``options.gpu_table``). Call it from a process that has started no thread of
    its own yet if you can: the runtime forks its zygote first.
    """
    opts = options or ProfileOptions()
    app.validate()
    if inputs is None:
        raise ProfilerError(
            f"no inputs to profile {app.name!r} with: define `def profile_inputs(size: str) -> Any` in the app's "
            f"file, returning an input for each of {', '.join(opts.input_sizes)} (see docs/profiles.md)"
        )
    groups = _groups(app, opts.plans)
    hop_fine, hop_coarse = _hop_app("profile-hop-fine"), _hop_app("profile-hop-coarse")
    apps = {g.app.name: g.app for g in groups} | {hop_fine.name: hop_fine, hop_coarse.name: hop_coarse}
    machine = machine_info()
    created = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    # Fork the zygote before this process runs any model (whose libraries start threads) or starts a thread.
    zygote = Zygote(apps, opts.preload)
    try:
        run = _Run(opts, {}, on_point)
        run.zygote = zygote
        run.values = _reference_values(app, inputs, opts.input_sizes, run.notes)
        jobs = _jobs(groups, opts)
        run.total = sum(len(j.batches) for j in jobs) * len(run.values) + (len(opts.hop_bytes) if opts.hop_bytes else 0)

        run.other = _OtherWork([os.getpid(), zygote.pid])

        async def measure() -> tuple[list[Point], list[HopPoint]]:
            points = [p for j in jobs for p in await run.job(j)]
            hops = await run.hops(hop_fine, hop_coarse) if opts.hop_bytes else []
            return points, hops

        points, hops = asyncio.run(measure())
    finally:
        zygote.close()
    if any(v < 1 for v in opts.vcpus):
        run.notes.append(
            "vCPU shares below 1 are pinned to a whole core but not held to a quota: they measure as 1 vCPU"
        )
    machine["other_work_cores"] = run.other.cores() if run.other is not None else 0.0
    if machine["other_work_cores"] > 0.1:
        run.notes.append(
            f"other processes kept {machine['other_work_cores']:.2f} cores busy on average while this profile was "
            "measured: expect more spread than on a quiet machine"
        )
    stage_rows = tuple(p for p in points if p.kind == "stage")
    fn_rows = tuple(
        replace(p, plan=label)
        for p in points
        if p.kind == "function"
        for label in next(g.plans for g in groups if g.kind == "function" and g.stages == p.stages)
    )
    gpu = _gpu_rows(app, gpu_models or {}, opts.gpu_table, run.notes)
    settings = Settings(
        repeats=opts.repeats,
        warmup=opts.warmup,
        vcpus=tuple(float(v) for v in opts.vcpus),
        batch_sizes=tuple(opts.batch_sizes),
        input_sizes=tuple(run.values),
        plans=tuple(Plan.parse(app, t).label for t in opts.plans),
        hop_bytes=tuple(opts.hop_bytes),
        inputs=inputs_source,
    )
    info = AppInfo(
        name=app.name,
        slo=str(app.slo),
        source=source,
        stages=tuple(
            StageInfo(s.name, s.after, s.batch, s.resources.vcpu, s.resources.memory_mb, s.resources.gpu)
            for s in app.stages.values()
        ),
    )
    return Profile(created, machine, info, settings, stage_rows, fn_rows, tuple(hops), tuple(gpu), tuple(run.notes))


def _gpu_rows(app: App, models: Mapping[str, str], table: Path | None, notes: list[str]) -> list[GpuPoint]:
    wanted: dict[str, str] = {}
    for stage, name in models.items():
        if stage not in app.stages:
            notes.append(f"GPU model {name!r} is given for {stage!r}, which is not a stage of {app.name!r}")
            continue
        model = table_model(name)
        if model is None:
            notes.append(f"stage {stage} ({name}) has no counterpart in the GPU table: no GPU rows")
        else:
            wanted[stage] = model
    if not wanted:
        return []
    if table is None:
        notes.append("no GPU table (--gpu-table): no GPU rows for " + ", ".join(sorted(wanted)))
        return []
    rows, more = read_gpu_table(table, wanted)
    notes.extend(more)
    return rows


# -- rendering ---------------------------------------------------------------------------------------------------------
def render_profile(profile: Profile, console: Any = None) -> None:
    """Print a profile as tables: measured points, hops, GPU rows, repeatability and notes."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    t = Table(title=f"profile of {profile.app.name} ({SCHEMA})", title_justify="left")
    columns = (
        "stage / function",
        "plan",
        "vCPU",
        "batch",
        "input",
        "in KB",
        "median ms",
        "p10-p90 ms",
        "CV %",
        "busy ms",
        "out KB",
        "load ms",
        "peak MB",
    )
    for col in columns:
        left = col in ("stage / function", "plan", "input")
        t.add_column(col, justify="left" if left else "right", overflow="fold" if left else "ellipsis")
    for p in profile.points:
        t.add_row(
            p.name,
            p.plan,
            f"{p.vcpu:g}",
            f"{p.batch}{'r' if p.batching == 'rows' else ''}",
            p.input_size,
            f"{p.input_bytes / 1024:.1f}",
            f"{p.latency_ms.median:.2f}",
            f"{p.latency_ms.p10:.2f}-{p.latency_ms.p90:.2f}",
            f"{100 * p.latency_ms.cv:.1f}",
            f"{p.busy_ms.median:.2f}",
            f"{p.output_bytes / 1024:.1f}",
            f"{p.load_ms:.0f}",
            f"{p.peak_rss_mb:.0f}",
        )
    console.print(t)
    if profile.hops:
        h = Table(title="data hop between two functions (fine - coarse)", title_justify="left")
        for col in ("bytes", "per hop ms", "fine median ms", "coarse median ms"):
            h.add_column(col, justify="right")
        for hp in profile.hops:
            h.add_row(
                _fmt_bytes(hp.bytes), f"{hp.per_hop_ms:.3f}", f"{hp.fine_ms.median:.3f}", f"{hp.coarse_ms.median:.3f}"
            )
        console.print(h)
    if profile.gpu:
        by_stage: dict[tuple[str, str], list[GpuPoint]] = {}
        for gp in profile.gpu:
            by_stage.setdefault((gp.stage, gp.model), []).append(gp)
        for (stage, model), rows in by_stage.items():
            full = {r.batch: r.latency_ms for r in rows if r.sm_percent == 100 and r.quota_percent == 100}
            at = ", ".join(f"batch {b}: {ms:.2f} ms" for b, ms in sorted(full.items()))
            console.print(f"GPU: {stage} = {model}, {len(rows)} rows ({rows[0].source}); whole V100: {at}")
    cvs = [p.latency_ms.cv for p in profile.points]
    if cvs:
        console.print(
            f"repeatability: latency CV median {100 * float(np.median(cvs)):.1f} %, max {100 * max(cvs):.1f} % "
            f"over {len(cvs)} points ({profile.settings.repeats} repeats each); other work on this machine meanwhile: "
            f"{profile.machine.get('other_work_cores', 0.0):.2f} cores"
        )
    for note in profile.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
