"""The simulated cluster: nodes with CPU cores, memory and GPUs, the network between them, and instance placement.

A cluster is written as TOML (``shoal sim --cluster CLUSTER.toml``)::

    [network]                    # optional; these are the defaults
    latency_ms = 0.5             # one hop between two nodes
    bandwidth_gbps = 10
    local_latency_ms = 0.05      # one hop inside a node (shared memory)
    local_bandwidth_gbps = 80

    [[nodes]]                    # a group of identical nodes; repeat for heterogeneous clusters
    count = 100
    cpus = 32
    memory_gb = 128
    gpus = 4
    gpu_memory_gb = 16
    cpu_contention = false       # optional: processor sharing of the cores (shoal.sim.cpu); these are the defaults
    shared_cores = 0             # cores the running calls share (0: cpus)
    cpu_speed = 1.0              # how fast these cores run CPU stages, relative to where they were profiled
    platform_cpu_ms = 0.0        # the platform's CPU work per function call on the node
    cpu_quota = false            # vCPU shares enforced as quotas (else instances are pinned to ceil(vcpu) cores)
    background_cores = 0.0       # CPU demand of work outside the platform (other tenants), spread over the cores

Placement (which node and GPU an instance goes to) is next-fit over nodes (start where the last placement
succeeded), and on a node the runtime's own GPU placement policy (``policy/gpu_placement.py``): FaST-GShare admission
and best fit (the fullest GPU that still admits the share), so that small shares pack onto few devices. A function's
second and later instances are refused a GPU when they would take the room the first instance of another function of
the same plan still needs (the same policy's guard; ``SimConfig.plan_aware_placement``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shoal.policy.gpu_placement import DeviceLoad, ShareRequest, leaves_room, pick_device
from shoal.sim.cpu import NodeCpu
from shoal.sim.gpu import GpuDevice, GpuShare
from shoal.sim.kernel import Kernel

__all__ = ["Cluster", "ClusterError", "ClusterSpec", "Network", "NodeSpec"]

_EPS = 1e-9
_CPU_KEYS = ("cpu_contention", "shared_cores", "cpu_speed", "platform_cpu_ms", "cpu_quota", "background_cores")


class ClusterError(ValueError):
    """A cluster description is malformed."""


@dataclass(frozen=True)
class NodeSpec:
    """One node. ``cpus`` is what placement hands out (vCPU; cores x overcommit); the CPU fields below say how
    running calls share the cores (``shoal.sim.cpu``). The default, no contention, keeps the simulator at its full
    speed and is right while a node's cores are not all busy; turn it on for CPU-bound stages on busy nodes."""

    cpus: float = 16.0
    memory_mb: int = 64 * 1024
    gpus: int = 0
    gpu_memory_mb: int = 16 * 1024
    #: Model processor sharing of the node's cores among its running calls and the platform's per-call work.
    cpu_contention: bool = False
    #: Cores the running work shares; 0: ``cpus`` (no overcommit).
    shared_cores: float = 0.0
    #: Speed of these cores on CPU stages relative to where the stage times were measured (2: twice as fast); with
    #: ``cpu_contention`` only, as the other fields below.
    cpu_speed: float = 1.0
    #: The platform's own CPU time per function call on this node (in the runtime: the parent process), ms.
    platform_cpu_ms: float = 0.0
    #: vCPU shares are enforced as CPU quotas: a call uses at most its share of the pooled cores. Else (the
    #: runtime's rule) an instance is pinned to ``ceil(vcpu)`` cores and a call has one of them to itself or shares it.
    cpu_quota: bool = False
    #: CPU demand (cores) of work on the node outside the platform: other tenants, a load generator.
    background_cores: float = 0.0

    def __post_init__(self) -> None:
        if self.cpus <= 0 or self.memory_mb <= 0 or self.gpus < 0 or self.gpu_memory_mb < 0:
            raise ClusterError(f"a node needs cpus > 0, memory > 0, gpus >= 0 and GPU memory >= 0: {self}")
        if self.shared_cores < 0 or not self.cpu_speed > 0 or self.platform_cpu_ms < 0 or self.background_cores < 0:
            raise ClusterError(
                "a node needs shared_cores >= 0 (0: cpus), cpu_speed > 0, platform_cpu_ms >= 0 and "
                f"background_cores >= 0: {self}"
            )

    @property
    def cpu_modelled(self) -> bool:
        """Whether calls on this node go through the CPU model (``shoal.sim.cpu``)."""
        return self.cpu_contention


@dataclass(frozen=True)
class Network:
    """Data-hop times: a fixed latency plus bytes over bandwidth, inside a node or between nodes."""

    latency_s: float = 0.5e-3
    bandwidth_bytes_s: float = 10e9 / 8
    local_latency_s: float = 0.05e-3
    local_bandwidth_bytes_s: float = 80e9 / 8

    def hop_s(self, same_node: bool, nbytes: int) -> float:
        if same_node:
            return self.local_latency_s + nbytes / self.local_bandwidth_bytes_s
        return self.latency_s + nbytes / self.bandwidth_bytes_s


@dataclass(frozen=True)
class ClusterSpec:
    nodes: tuple[NodeSpec, ...]
    network: Network = field(default_factory=Network)

    def __post_init__(self) -> None:
        if not self.nodes:
            raise ClusterError("a cluster needs at least one node")

    @classmethod
    def uniform(cls, count: int, node: NodeSpec | None = None, network: Network | None = None) -> ClusterSpec:
        return cls(tuple([node or NodeSpec()] * count), network or Network())

    @classmethod
    def from_toml(cls, path: str | Path) -> ClusterSpec:
        import tomllib

        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except OSError as e:
            raise ClusterError(f"cannot read cluster file {str(p)!r}: {e}") from None
        except tomllib.TOMLDecodeError as e:
            raise ClusterError(f"cluster file {str(p)!r} is not valid TOML: {e}") from None
        return cls.from_dict(data, where=str(p))

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "cluster") -> ClusterSpec:
        unknown = set(data) - {"network", "nodes"}
        if unknown:
            raise ClusterError(f"{where}: unknown section(s) {sorted(unknown)}; expected [network] and [[nodes]]")
        net = dict(data.get("network", {}))
        keys = {"latency_ms", "bandwidth_gbps", "local_latency_ms", "local_bandwidth_gbps"}
        if set(net) - keys:
            raise ClusterError(f"{where}: unknown [network] key(s) {sorted(set(net) - keys)}")
        d = Network()
        network = Network(
            latency_s=net.get("latency_ms", d.latency_s * 1e3) / 1e3,
            bandwidth_bytes_s=net.get("bandwidth_gbps", d.bandwidth_bytes_s * 8 / 1e9) * 1e9 / 8,
            local_latency_s=net.get("local_latency_ms", d.local_latency_s * 1e3) / 1e3,
            local_bandwidth_bytes_s=net.get("local_bandwidth_gbps", d.local_bandwidth_bytes_s * 8 / 1e9) * 1e9 / 8,
        )
        nodes: list[NodeSpec] = []
        for group in data.get("nodes", []):
            g = dict(group)
            keys = {"count", "cpus", "memory_gb", "gpus", "gpu_memory_gb", *_CPU_KEYS}
            if set(g) - keys:
                raise ClusterError(f"{where}: unknown [[nodes]] key(s) {sorted(set(g) - keys)}")
            spec = NodeSpec(
                cpus=float(g.get("cpus", 16)),
                memory_mb=int(g.get("memory_gb", 64) * 1024),
                gpus=int(g.get("gpus", 0)),
                gpu_memory_mb=int(g.get("gpu_memory_gb", 16) * 1024),
                cpu_contention=bool(g.get("cpu_contention", False)),
                shared_cores=float(g.get("shared_cores", 0.0)),
                cpu_speed=float(g.get("cpu_speed", 1.0)),
                platform_cpu_ms=float(g.get("platform_cpu_ms", 0.0)),
                cpu_quota=bool(g.get("cpu_quota", False)),
                background_cores=float(g.get("background_cores", 0.0)),
            )
            nodes.extend([spec] * int(g.get("count", 1)))
        if not nodes:
            raise ClusterError(f"{where}: no nodes; add a [[nodes]] table with count, cpus, memory_gb, gpus")
        return cls(tuple(nodes), network)


def _load(d: GpuDevice) -> DeviceLoad:
    return DeviceLoad(d.used, d.used_memory_mb, d.memory_mb)


class _Node:
    __slots__ = ("cpus_free", "gpus", "memory_free", "spec")

    def __init__(self, spec: NodeSpec) -> None:
        self.spec = spec
        self.cpus_free = spec.cpus
        self.memory_free = spec.memory_mb
        self.gpus = [GpuDevice(spec.gpu_memory_mb) for _ in range(spec.gpus)]


class Cluster:
    """Free capacity of every node and GPU; places and releases instances."""

    def __init__(self, spec: ClusterSpec) -> None:
        self.spec = spec
        self.network = spec.network
        self.nodes = [_Node(n) for n in spec.nodes]
        self.gpu_count = sum(len(n.gpus) for n in self.nodes)
        self._where: dict[str, tuple[int, int, float, int]] = {}  # key -> (node, gpu or -1, vcpu, memory_mb)
        self._next = 0
        self.gpu_used = 0.0  # sum over devices of sm * quota in use
        self.refused_for_waiting = 0  # placements refused to keep room for another function's first instance
        self.cpus: list[NodeCpu | None] | None = None  # set by cpu_models

    def place(
        self,
        key: str,
        vcpu: float,
        memory_mb: int,
        share: GpuShare | None,
        waiting: Sequence[ShareRequest] = (),
    ) -> int | None:
        """Reserve room for an instance; the node index, or None if no node has room.

        The GPU is chosen by ``policy.gpu_placement.pick_device`` (FaST-GShare admission, best fit). With ``waiting``
        (the first instances other functions of the same plan still need), a placement that would leave no room for
        them is refused (``policy.gpu_placement.leaves_room``) and counted in ``refused_for_waiting``.
        """
        n = len(self.nodes)
        want = ShareRequest(share.fraction, share.memory_mb) if share is not None else None
        for step in range(n):
            i = (self._next + step) % n
            node = self.nodes[i]
            if node.cpus_free + _EPS < vcpu or node.memory_free < memory_mb:
                continue
            g = -1
            if want is not None and share is not None:
                found = pick_device([_load(d) for d in node.gpus], want)
                if found is None:
                    continue
                g = found
                if waiting and not self._leaves_room(i, g, want, waiting):
                    self.refused_for_waiting += 1
                    continue
                node.gpus[g].admit(key, share)
                self.gpu_used += share.fraction
            node.cpus_free -= vcpu
            node.memory_free -= memory_mb
            if self.cpus is not None and (cpu := self.cpus[i]) is not None:
                cpu.assign(key, vcpu)
            self._where[key] = (i, g, vcpu, memory_mb)
            self._next = i
            return i
        return None

    def _leaves_room(self, i: int, g: int, want: ShareRequest, waiting: Sequence[ShareRequest]) -> bool:
        loads = []
        for ni, node in enumerate(self.nodes):
            for gi, d in enumerate(node.gpus):
                load = _load(d)
                if (ni, gi) == (i, g):
                    load = DeviceLoad(load.used + want.fraction, load.memory_used_mb + want.memory_mb, load.memory_mb)
                loads.append(load)
        return leaves_room(loads, waiting)

    def release(self, key: str) -> None:
        i, g, vcpu, memory_mb = self._where.pop(key)
        node = self.nodes[i]
        node.cpus_free += vcpu
        node.memory_free += memory_mb
        if self.cpus is not None and (cpu := self.cpus[i]) is not None:
            cpu.release(key)
        if g >= 0:
            frac = node.gpus[g].shares[key].fraction
            node.gpus[g].release(key)
            self.gpu_used = max(0.0, self.gpu_used - frac)

    def cpu_models(self, kernel: Kernel) -> list[NodeCpu | None] | None:
        """A :class:`NodeCpu` per node whose calls go through the CPU model (None for the others), or None when no
        node's do: then the engine keeps its plain path. Call it before placing any instance."""
        if not any(n.spec.cpu_modelled for n in self.nodes):
            return None
        self.cpus = [
            NodeCpu(
                kernel,
                n.spec.shared_cores or n.spec.cpus,
                speed=n.spec.cpu_speed,
                platform_s=n.spec.platform_cpu_ms / 1e3,
                quota=n.spec.cpu_quota,
                background=n.spec.background_cores,
            )
            if n.spec.cpu_modelled
            else None
            for n in self.nodes
        ]
        return self.cpus

    def gpu_occupancy(self) -> float:
        """Share of all GPU capacity (sum of sm x quota over devices / devices) held by instances."""
        return self.gpu_used / self.gpu_count if self.gpu_count else 0.0

    def gpu_devices_busy(self) -> int:
        return sum(1 for node in self.nodes for d in node.gpus if d.shares)
