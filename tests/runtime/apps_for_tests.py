"""Small applications for the runtime tests. Serve one with ``shoal serve tests/runtime/apps_for_tests.py:VARIABLE``.

Per-function settings (timeout, queue limit, scaling bounds, keep-alive) come from the CLI flags or from a
:class:`shoal.Plan`'s config, not from here, so that one app serves several tests.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np

import shoal

HERE = Path(__file__).resolve().parent


def ref(variable: str) -> str:
    """``FILE.py:VARIABLE`` for ``shoal serve``."""
    return f"{HERE / 'apps_for_tests.py'}:{variable}"


# -- echo: one stage that returns its input -------------------------------------------------------------------------
echo = shoal.App("echo")


@echo.stage(vcpu=0.25, memory_mb=64)
def identity(x: Any) -> Any:
    return x


# -- chain3: a -> b -> c on arrays ------------------------------------------------------------------------------------
chain3 = shoal.App("chain3")


@chain3.stage(vcpu=0.25, memory_mb=64)
def a(x: Any) -> np.ndarray:
    return np.asarray(x) + 1


@chain3.stage(after=a, vcpu=0.25, memory_mb=64)
def b(x: np.ndarray) -> np.ndarray:
    return x * 2


@chain3.stage(after=b, vcpu=0.25, memory_mb=64)
def c(x: np.ndarray) -> np.ndarray:
    return x - 3


def chain3_reference(x: Any) -> np.ndarray:
    return (np.asarray(x) + 1) * 2 - 3


# -- diamond: src -> (left, right) -> merge ---------------------------------------------------------------------------
diamond = shoal.App("diamond")


@diamond.stage(vcpu=0.25, memory_mb=64)
def src(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


@diamond.stage(after=src, vcpu=0.25, memory_mb=64)
def left(x: np.ndarray) -> np.ndarray:
    return x * 10


@diamond.stage(after=src, vcpu=0.25, memory_mb=64)
def right(x: np.ndarray) -> np.ndarray:
    return -x


@diamond.stage(after=[left, right], vcpu=0.25, memory_mb=64)
def merge(lft: np.ndarray, rgt: np.ndarray) -> dict[str, Any]:
    return {"sum": lft + rgt, "left": lft, "right": rgt, "n": int(lft.size)}


# -- boom: raises on "boom", kills its own process on "die", else echoes -------------------------------------------
boom = shoal.App("boom")


@boom.stage(vcpu=0.25, memory_mb=64)
def fragile(x: Any) -> Any:
    if x == "boom":
        raise ValueError("kaboom")
    if x == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    return x


# -- sleepy: sleeps for its input (seconds), then returns it ----------------------------------------------------------
sleepy = shoal.App("sleepy")


@sleepy.stage(vcpu=0.25, memory_mb=64)
def nap(x: Any) -> Any:
    time.sleep(float(x))
    return x


# -- slow_load: a 0.3 s model load (the cold start) -------------------------------------------------------------------
slow_load = shoal.App("slow_load")
LOAD_S = 0.3


def _load_slowly() -> dict[str, float]:
    time.sleep(LOAD_S)
    return {"scale": 3.0}


@slow_load.stage(load=_load_slowly, vcpu=0.25, memory_mb=64)
def scaled(model: dict[str, float], x: Any) -> Any:
    return np.asarray(x, dtype=np.float64) * model["scale"]


# -- bad_load: the model load raises ----------------------------------------------------------------------------------
bad_load = shoal.App("bad_load")


def _load_broken() -> None:
    raise FileNotFoundError("weights.onnx is missing")


@bad_load.stage(load=_load_broken, vcpu=0.25, memory_mb=64)
def never(model: Any, x: Any) -> Any:
    return x


# -- gpu_ask: a stage that asks for half a GPU ------------------------------------------------------------------------
gpu_ask = shoal.App("gpu_ask")


@gpu_ask.stage(vcpu=0.25, memory_mb=64, gpu=0.5, gpu_memory_mb=512)
def on_gpu(x: Any) -> Any:
    return {"x": x, "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}


# -- concurrent: two stages that each run two requests at once (shoal.local tests) -----------------------------------
concurrent = shoal.App("concurrent")


@concurrent.stage(vcpu=0.25, memory_mb=64, max_concurrency=2)
def slow_square(x: Any) -> Any:
    time.sleep(0.02)
    return np.asarray(x, dtype=np.int64) ** 2


@concurrent.stage(after=slow_square, vcpu=0.25, memory_mb=64, max_concurrency=2)
def plus_one(x: np.ndarray) -> Any:
    time.sleep(0.02)
    return x + 1


# -- paced: the diamond with a few milliseconds of sleep per stage, so that requests are under way at any moment -----
paced = shoal.App("paced")


@paced.stage(vcpu=0.25, memory_mb=64)
def p_src(x: Any) -> np.ndarray:
    time.sleep(0.004)
    return np.asarray(x, dtype=np.float64)


@paced.stage(after=p_src, vcpu=0.25, memory_mb=64)
def p_left(x: np.ndarray) -> np.ndarray:
    time.sleep(0.004)
    return x * 10


@paced.stage(after=p_src, vcpu=0.25, memory_mb=64)
def p_right(x: np.ndarray) -> np.ndarray:
    time.sleep(0.004)
    return -x


@paced.stage(after=[p_left, p_right], vcpu=0.25, memory_mb=64)
def p_merge(lft: np.ndarray, rgt: np.ndarray) -> np.ndarray:
    return lft + rgt  # 9 x


def paced_reference(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float64) * 9


def profile_inputs(size: str) -> list[float]:
    """Inputs for ``shoal profile`` / ``shoal measure`` of the numeric apps here (echo, chain3, diamond, paced)."""
    return [1.0] * {"small": 1, "medium": 16, "large": 256}[size]
