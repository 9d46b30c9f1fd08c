"""Process-wide memory settings of the runtime's processes."""

from __future__ import annotations

__all__ = ["MALLOC_KEEP_BYTES", "keep_freed_memory"]

#: glibc returns freed memory to the OS above these sizes by default, so a process that allocates large arrays per
#: request page-faults them in again every time: 0.94 ms vs 0.21 ms of execution for a 3-stage chain on 1 MiB arrays
#: (BENCHMARKS.md section 2), and 0.9 vs 0.12 ms to encode a 1 MiB .npy reply in the gateway. The parent, the zygote
#: and (by inheritance) every instance keep up to this much freed memory instead.
MALLOC_KEEP_BYTES = 128 << 20
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def keep_freed_memory(limit: int = MALLOC_KEEP_BYTES) -> bool:
    """Tell glibc's malloc to keep up to ``limit`` bytes of freed memory; False where that is not glibc."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_TRIM_THRESHOLD, limit)) and bool(libc.mallopt(_M_MMAP_THRESHOLD, limit))
    except (OSError, AttributeError):
        return False
