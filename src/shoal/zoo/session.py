"""Opening ONNX Runtime sessions sized to a Shoal instance's share of the machine.

An instance is allocated a CPU share (and maybe a GPU share); the runtime tells the code inside it through the
environment, because ``load`` functions are user code that Shoal cannot pass arguments to:

- ``SHOAL_THREADS``: intra-op threads for this instance (default 1). ORT's default, one thread per core, would make
  every co-located instance fight for every core and wreck the latency the planner predicted.
- ``SHOAL_GPU_MEMORY_MB``: set only for instances with a GPU share; it caps the CUDA memory arena so that instances
  sharing a GPU cannot starve each other.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import onnxruntime as ort

__all__ = ["available_gpu_provider", "onnx_session", "threads_from_env"]

_CUDA = "CUDAExecutionProvider"
_CPU = "CPUExecutionProvider"


def threads_from_env(env: Mapping[str, str] | None = None) -> int:
    """The intra-op thread count ``SHOAL_THREADS`` asks for; a fractional share rounds up, and never below 1."""
    raw = (os.environ if env is None else env).get("SHOAL_THREADS", "").strip()
    if not raw:
        return 1
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"SHOAL_THREADS must be a positive number of threads, got {raw!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"SHOAL_THREADS must be a positive number of threads, got {raw!r}")
    return max(1, math.ceil(value))


def available_gpu_provider() -> str | None:
    """``"CUDAExecutionProvider"`` when this ONNX Runtime build can use a CUDA GPU, else ``None``."""
    return _CUDA if _CUDA in ort.get_available_providers() else None


def _gpu_memory_bytes(env: Mapping[str, str]) -> int | None:
    raw = env.get("SHOAL_GPU_MEMORY_MB", "").strip()
    if not raw:
        return None
    try:
        mb = int(raw)
    except ValueError:
        raise ValueError(f"SHOAL_GPU_MEMORY_MB must be a whole number of MiB, got {raw!r}") from None
    return mb * 1024 * 1024 if mb > 0 else None


def _providers(gpu: bool | None, env: Mapping[str, str]) -> list[Any]:
    """CPU only, unless a GPU is wanted (asked for, or ``SHOAL_GPU_MEMORY_MB`` given) and CUDA is there."""
    limit = _gpu_memory_bytes(env)
    want_gpu = gpu if gpu is not None else limit is not None
    if not want_gpu or available_gpu_provider() is None:
        return [_CPU]
    # Not yet measured on hardware: no development machine has a GPU, so this branch has only been read, not run.
    opts: dict[str, str] = {"device_id": "0", "arena_extend_strategy": "kSameAsRequested"}
    if limit is not None:
        opts["gpu_mem_limit"] = str(limit)
    return [(_CUDA, opts), _CPU]


def onnx_session(
    model: bytes | str | os.PathLike[str], *, threads: int | None = None, gpu: bool | None = None
) -> ort.InferenceSession:
    """Open ``model`` (serialized bytes or a path) for inference sized to this instance.

    ``threads`` overrides ``SHOAL_THREADS``. ``gpu=None`` uses CUDA only when the instance was given GPU memory
    (``SHOAL_GPU_MEMORY_MB``) and CUDA is available; ``True``/``False`` force the choice (``True`` still falls back
    to CPU where there is no CUDA, so the same application runs everywhere).
    """
    env = os.environ
    n = threads_from_env(env) if threads is None else threads
    if n < 1:
        raise ValueError(f"threads must be >= 1, got {n!r}")
    so = ort.SessionOptions()
    so.intra_op_num_threads = n
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Spinning workers burn the CPU share between requests, which co-located instances would pay for.
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3  # errors only: ORT's warnings go to stderr, where nobody reads them
    path_or_bytes = model if isinstance(model, bytes) else os.fspath(model)
    return ort.InferenceSession(path_or_bytes, sess_options=so, providers=_providers(gpu, env))
