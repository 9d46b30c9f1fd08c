"""What the profiler reads of the machine: peak memory of a process, CPU time spent by other work, the machine's
description, and the bytes a value puts on the data plane."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Sequence
from typing import Any

from shoal.runtime import devices
from shoal.runtime.dataplane import encode

__all__ = [
    "OtherWork",
    "cpu_reference_ms",
    "data_bytes",
    "machine_info",
    "peak_rss_mb",
    "process_cpu_s",
    "reset_peak_rss",
]


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


def process_cpu_s(pid: int) -> float | None:
    """CPU time (s) of all threads of process ``pid`` so far, to the nanosecond (``/proc/PID/task/*/schedstat``;
    ``/proc/PID/stat`` counts in 10-ms ticks), or None if it cannot be read."""
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return total / 1e9


#: Python loop iterations of the CPU reference: about 1.3 ms on the development machine.
REFERENCE_ITERS = 40_000


def cpu_reference_ms(repeats: int = 30) -> float:
    """Median thread CPU time (ms) of a fixed pure-Python loop: how fast this machine's cores run Python code now.

    A profile records it (``machine.cpu_reference_ms``) so that a simulation of another machine, or of this one at
    another time, can scale CPU stage times by the ratio (``NodeSpec.cpu_speed``): on shared virtual machines the
    same loop's CPU time moves by several per cent over minutes. Thread CPU time, so that waiting for a core (other
    work on it) does not count, only how fast the core runs."""
    times = []
    for _ in range(repeats):
        c0 = time.thread_time()
        acc = 0
        for i in range(REFERENCE_ITERS):
            acc += i
        times.append(time.thread_time() - c0)
    times.sort()
    return round(times[len(times) // 2] * 1e3, 4)


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


class OtherWork:
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
    facts = devices.machine_facts()
    memory_gb = facts.pop("memory_gib")
    load1 = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {
        **facts,
        "memory_gb": memory_gb,
        "os": platform.platform(),
        "cpu_shares": "pinned to whole cores (sched_setaffinity); no CPU quota, so shares below 1 run as 1",
        "loadavg_1m_at_start": round(load1, 2) if load1 is not None else None,
    }
