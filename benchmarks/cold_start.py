"""Cold start to first response of a function whose model is a real CNN, in-process through ``shoal.local``.

Two models, each served under plan coarse (one function): the example image pipeline (``small_cnn``, 64x64 images)
and a one-stage ResNet-18 (``resnet18_like``, 1000 classes, fed 1x3x64x64). Two ways to reach an empty pool:

* ``fresh``: a new service (HostConfig defaults, min_instances 0) per repeat; the first request finds no instance.
* ``scale_to_zero``: one service with a short keep-alive (FunctionConfig(keep_alive_s=0.3), HostConfig(tick_s=0.05,
  stable_window_s=1, panic_window_s=0.5)); before each request the benchmark waits until the pool is empty.

Reported per request: client latency, the model's load time as the instance measured it (Instance.load_s), the
first request's stage execution, and the instance's spawn-to-ready time less load (fork from the zygote, applying
the CPU share, connecting). Target: latency - load <= 150 ms. For context: bare interpreter start-ups.

    .venv/bin/python benchmarks/cold_start.py
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from typing import Any

import numpy as np
from _common import BENCH, PY, ROOT, Interference, console, fmt, machine_info, save, summary, table, wait_quiet

sys.path.insert(0, str(BENCH / "apps"))
sys.path.insert(0, str(ROOT / "examples"))
import image_pipeline
import resnet

import shoal
from shoal.runtime.host import HostConfig

MODELS = {
    "small_cnn (image pipeline)": (image_pipeline.app, lambda: np.full((64, 64, 3), 128, np.uint8)),
    "resnet18_like": (resnet.app, lambda: np.zeros((1, 3, 64, 64), np.float32)),
}
FAST = HostConfig(tick_s=0.05, stable_window_s=1.0, panic_window_s=0.5)


def first_call(svc: Any, x: np.ndarray) -> dict[str, float]:
    """Send one request to a pool with no instance; return the breakdown (ms)."""
    assert not svc.host.instances, "the pool is not empty"
    with Interference() as other:
        t0 = time.perf_counter()
        res = svc.call(x)
        wall = (time.perf_counter() - t0) * 1e3
    (inst,) = svc.host.instances.values()
    t = res.timing
    load = inst.load_s * 1e3
    ready = (inst.ready_at - inst.started_at) * 1e3
    exec_ms = sum(t["exec_ms"].values())
    warm = []
    for _ in range(5):
        t1 = time.perf_counter()
        svc.call(x)
        warm.append((time.perf_counter() - t1) * 1e3)
    return {
        "latency_ms": wall,
        "load_ms": load,
        "latency_minus_load_ms": wall - load,
        "exec_ms": exec_ms,
        "latency_minus_load_exec_ms": wall - load - exec_ms,
        "spawn_to_ready_minus_load_ms": ready - load,
        "timing_cold_start_ms": t["cold_start_ms"],
        "timing_total_ms": t["total_ms"],
        "warm_latency_ms": float(np.median(warm)),
        "other_cores": other.other_cores,
    }


def fresh(app: shoal.App, x: np.ndarray, repeats: int) -> list[dict[str, float]]:
    out = []
    for _ in range(repeats):
        with shoal.local(app, "coarse", HostConfig()) as svc:
            out.append(first_call(svc, x))
    return out


def scale_to_zero(app: shoal.App, x: np.ndarray, repeats: int) -> list[dict[str, float]]:
    plan = shoal.Plan.parse(app, "coarse", default=shoal.FunctionConfig(keep_alive_s=0.3))
    out = []
    with shoal.local([(app, plan)], config=FAST) as svc:
        for _ in range(repeats):
            deadline = time.monotonic() + 30
            while any(f["instances"] for a in svc.status()["apps"] for f in a["functions"]):
                if time.monotonic() > deadline:
                    raise TimeoutError("the pool did not scale to zero within 30 s")
                time.sleep(0.05)
            time.sleep(0.2)  # let the retired instance's process leave
            out.append(first_call(svc, x))
    return out


def interpreter(code: str, repeats: int) -> dict[str, Any]:
    walls = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([PY, "-c", code], check=True, cwd=ROOT)
        walls.append((time.perf_counter() - t0) * 1e3)
    return {"command": f'{PY} -c "{code}"', "wall_ms": summary(walls), "runs": walls}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--modes", nargs="*", default=["fresh", "scale_to_zero"])
    args = ap.parse_args()
    res: dict[str, Any] = {"models": {}, "interpreter": {}}
    busy = wait_quiet()
    for name, (app, make_x) in MODELS.items():
        res["models"][name] = {}
        for mode in args.modes:
            console.rule(f"{name}: {mode}")
            runs = (fresh if mode == "fresh" else scale_to_zero)(app, make_x(), args.repeats)
            for i, r in enumerate(runs):
                console.print(
                    f"  {i + 1}: latency {r['latency_ms']:.1f} ms = load {r['load_ms']:.1f} + "
                    f"{r['latency_minus_load_ms']:.1f} (exec {r['exec_ms']:.1f}, spawn-to-ready less load "
                    f"{r['spawn_to_ready_minus_load_ms']:.1f}); warm {r['warm_latency_ms']:.2f} ms; "
                    f"other work {r['other_cores']:.2f} cores"
                )
            res["models"][name][mode] = {"runs": runs, **{k: summary([r[k] for r in runs]) for k in runs[0]}}
    console.rule("interpreter start-ups (no zygote)")
    code = {
        "import numpy, onnxruntime": "import numpy, onnxruntime",
        "import + build + open small_cnn": (
            "from shoal.zoo import onnx_session, small_cnn; onnx_session(small_cnn(100))"
        ),
    }
    for label, c in code.items():
        res["interpreter"][label] = interpreter(c, args.repeats)
        console.print(f"  {label}: {fmt(res['interpreter'][label]['wall_ms'], 1)} ms")
    doc = {
        "benchmark": "cold_start",
        "machine": machine_info(),
        "settings": vars(args) | {"fast_config": repr(FAST), "keep_alive_s": 0.3, "background_busy": busy},
        "results": res,
    }
    save("cold_start", doc)
    rows = []
    for name, modes in res["models"].items():
        for mode, s in modes.items():
            rows.append(
                [
                    f"{name} / {mode}",
                    fmt(s["latency_ms"], 1),
                    fmt(s["load_ms"], 1),
                    fmt(s["latency_minus_load_ms"], 1),
                    fmt(s["exec_ms"], 1),
                    fmt(s["spawn_to_ready_minus_load_ms"], 1),
                    fmt(s["warm_latency_ms"], 2),
                ]
            )
    cols = ["model / path", "1st response ms", "load ms", "minus load", "exec", "spawn→ready less load", "warm ms"]
    table(f"Cold start, {args.repeats} repeats: median (min-max); target: minus load <= 150 ms", cols, rows)


if __name__ == "__main__":
    main()
