"""What to measure: :class:`ProfileOptions`, the input sizes and hop sizes, and the profiler's error."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from shoal.runtime.zygote import DEFAULT_PRELOAD

__all__ = ["HOP_BYTES", "INPUT_SIZES", "InputsFn", "OnPoint", "ProfileOptions", "ProfilerError"]

INPUT_SIZES = ("small", "medium", "large")
#: Sizes of the arrays the hop measurement sends: inline in the frame (1 KiB), at the inline limit (64 KiB), and
#: through shared memory (1 MiB, 16 MiB).
HOP_BYTES = (1 << 10, 64 << 10, 1 << 20, 16 << 20)

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
