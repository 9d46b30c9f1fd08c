"""Value types that describe an application: resources, latency SLOs and input specs.

These are plain frozen dataclasses with validation in ``__post_init__`` so that a bad value is refused where it is
written, with a message that names it, rather than deep inside the runtime.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["SLO", "ArraySpec", "InputError", "Resources", "SpecError"]


class SpecError(ValueError):
    """A resource, SLO or input specification is malformed."""


class InputError(ValueError):
    """A request's input does not fit what the application accepts.

    Raise it from a stage to answer the client with HTTP 400 instead of 500.
    """


@dataclass(frozen=True)
class Resources:
    """What one instance of a stage (or a function) is allocated.

    ``vcpu`` is a share of CPU cores (0.5 is half a core). ``gpu`` is a fraction of one GPU (0 means none); on a
    machine without a GPU a stage that asks for one runs on CPU. ``max_concurrency`` is the most requests one
    instance runs at once.
    """

    vcpu: float = 1.0
    memory_mb: int = 512
    gpu: float = 0.0
    gpu_memory_mb: int = 0
    max_concurrency: int = 1

    def __post_init__(self) -> None:
        if not (self.vcpu > 0 and math.isfinite(self.vcpu)):
            raise SpecError(f"vcpu must be a positive number of cores, got {self.vcpu!r}")
        if self.memory_mb <= 0:
            raise SpecError(f"memory_mb must be positive, got {self.memory_mb!r}")
        if not 0.0 <= self.gpu <= 1.0:
            raise SpecError(f"gpu is a fraction of one device in [0, 1], got {self.gpu!r}")
        if self.gpu_memory_mb < 0:
            raise SpecError(f"gpu_memory_mb must be >= 0, got {self.gpu_memory_mb!r}")
        if self.max_concurrency < 1:
            raise SpecError(f"max_concurrency must be >= 1, got {self.max_concurrency!r}")

    @staticmethod
    def combine(parts: list[Resources]) -> Resources:
        """Resources of one instance that runs several stages one after another.

        Stages of a function run sequentially inside a request, so the instance needs the largest CPU and GPU share
        any of them needs, but memory for all their models at once; it can take no more concurrent requests than its
        least concurrent stage.
        """
        if not parts:
            raise SpecError("cannot combine the resources of no stages")
        return Resources(
            vcpu=max(p.vcpu for p in parts),
            memory_mb=sum(p.memory_mb for p in parts),
            gpu=max(p.gpu for p in parts),
            gpu_memory_mb=sum(p.gpu_memory_mb for p in parts),
            max_concurrency=min(p.max_concurrency for p in parts),
        )


_SLO_RE = re.compile(r"^\s*p(?P<pct>\d+(?:\.\d+)?)\s*[:<=]+\s*(?P<val>\d+(?:\.\d+)?)\s*(?P<unit>ms|s)\s*$")


@dataclass(frozen=True)
class SLO:
    """A latency objective: the ``percentile`` of end-to-end latency must be at most ``latency_s`` seconds."""

    percentile: float = 99.0
    latency_s: float = 0.2

    def __post_init__(self) -> None:
        if not 0 < self.percentile < 100:
            raise SpecError(f"SLO percentile must be in (0, 100), got {self.percentile!r}")
        if not (self.latency_s > 0 and math.isfinite(self.latency_s)):
            raise SpecError(f"SLO latency bound must be a positive number of seconds, got {self.latency_s!r}")

    @classmethod
    def parse(cls, text: str) -> SLO:
        """Parse ``"p99:200ms"``, ``"p95<=1.5s"`` and the like."""
        m = _SLO_RE.match(text)
        if not m:
            raise SpecError(f"cannot read SLO {text!r}: write it as p<percentile>:<bound><ms|s>, e.g. p99:200ms")
        scale = 1e-3 if m["unit"] == "ms" else 1.0
        return cls(percentile=float(m["pct"]), latency_s=float(m["val"]) * scale)

    def __str__(self) -> str:
        return f"p{self.percentile:g}:{self.latency_s * 1e3:g}ms"


@dataclass(frozen=True)
class ArraySpec:
    """The array an application takes as input. ``None`` in ``shape`` matches any length on that axis."""

    shape: tuple[int | None, ...]
    dtype: str = "float32"

    def check(self, shape: tuple[int, ...], dtype: Any) -> None:
        """Raise :class:`InputError` naming the mismatch if an array of ``shape``/``dtype`` does not fit."""
        import numpy as np

        if np.dtype(dtype) != np.dtype(self.dtype):
            raise InputError(f"input dtype is {np.dtype(dtype).name}, expected {np.dtype(self.dtype).name}")
        if len(shape) != len(self.shape) or any(
            w is not None and w != s for w, s in zip(self.shape, shape, strict=False)
        ):
            want = "(" + ", ".join("*" if w is None else str(w) for w in self.shape) + ")"
            raise InputError(f"input shape is {tuple(shape)}, expected {want}")
