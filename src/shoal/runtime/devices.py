"""Which accelerators this machine has. On the development machines there are none (see docs/runtime.md)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

__all__ = ["Gpu", "detect_gpus", "pick_gpu"]


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


def pick_gpu(gpus: list[Gpu], share: float) -> int | None:
    """The device an instance asking for ``share`` of a GPU gets, or None (no share asked, or no GPU here).

    Spreading shares across devices by their free SM percentage is the placement policy's job (issue: GPU sharing);
    for now every share goes to device 0.
    """
    if share <= 0 or not gpus:
        return None
    return gpus[0].index
