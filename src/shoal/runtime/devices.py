"""Which accelerators this machine has. On the development machines there are none (see docs/runtime.md)."""

from __future__ import annotations

import contextlib
import importlib.metadata as md
import os
import platform
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Gpu", "detect_gpus", "machine_facts"]


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    memory_mb: int


def detect_gpus() -> list[Gpu]:
    """NVIDIA GPUs as ``nvidia-smi`` lists them; an empty list when there is no driver or no device."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run(
            [exe, "--query-gpu=index,name,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.strip().splitlines():
        idx, name, mem = (p.strip() for p in line.split(","))
        gpus.append(Gpu(int(idx), name, int(float(mem))))
    return gpus


def machine_facts(packages: Iterable[str] = ("shoal", "numpy", "onnxruntime")) -> dict[str, Any]:
    """What a measurement must be reported with: CPU model, cores, memory, Python and package versions, GPUs."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gib = 0.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_gib = round(int(Path("/proc/meminfo").read_text().split("\n")[0].split()[1]) / 2**20, 1)
    versions: dict[str, str | None] = {}
    for p in packages:
        try:
            versions[p] = md.version(p)
        except md.PackageNotFoundError:
            versions[p] = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count() or 1,
        "usable_cores": len(os.sched_getaffinity(0)),
        "memory_gib": mem_gib,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": versions,
        "gpus": [g.name for g in detect_gpus()],
    }
