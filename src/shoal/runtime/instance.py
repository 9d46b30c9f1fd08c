"""The body of an instance: an OS process, forked from the zygote, that runs one function's stages.

It applies its resource share, loads its stages' models (the cold start), says it is ready, then serves ``run``
frames until told to stop or until the parent goes away. A stage that raises answers that request with an error
and leaves the instance usable.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from shoal.app import App, InputError, StageFailed, run_batch
from shoal.runtime.dataplane import DataError, SegmentPool
from shoal.runtime.framing import pack_frame, recv_frame

__all__ = ["instance_main"]


def apply_shares(spec: dict[str, Any]) -> None:
    """Enforce the CPU share (affinity and thread pools) and, where CUDA exists, the GPU share."""
    cpus = spec.get("cpus")
    if cpus:
        os.sched_setaffinity(0, cpus)
    threads = str(spec.get("threads", 1))
    for var in ("SHOAL_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = threads
    try:  # BLAS was loaded by the zygote already, so its environment variables come too late: set it directly
        from threadpoolctl import threadpool_limits

        threadpool_limits(int(threads))
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        pass
    os.environ["SHOAL_VCPU"] = str(spec.get("vcpu", 1.0))
    gpu = spec.get("gpu_device")
    if gpu is not None:
        # Not measured on hardware: these machines have no GPU. See docs/runtime.md, "GPU shares".
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
        os.environ["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] = str(max(1, round(100 * spec["gpu"])))
        os.environ["SHOAL_GPU_MEMORY_MB"] = str(spec.get("gpu_memory_mb", 0))
    else:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""


class _Server:
    def __init__(self, sock: socket.socket, app: App, spec: dict[str, Any]) -> None:
        self.sock = sock
        self.app = app
        self.stages: list[str] = spec["stages"]
        self.pool = SegmentPool(spec["instance_id"])
        self.send_lock = threading.Lock()
        self.states: dict[str, Any] = {}

    def send(self, msg: dict[str, Any]) -> None:
        frame = pack_frame(msg, self.pool)
        with self.send_lock:
            self.sock.sendall(frame)

    def load(self) -> float:
        t0 = time.perf_counter()
        for name in self.stages:
            stage = self.app[name]
            if stage.load is not None:
                self.states[name] = stage.load()
        return time.perf_counter() - t0

    def handle(self, msg: dict[str, Any]) -> None:
        """Run one batch of requests (a batch of one when the function does not batch) and reply once."""
        t0 = time.perf_counter()
        want = msg["want"]
        results = run_batch(self.app, self.stages, [it["inputs"] for it in msg["items"]], self.states)
        items = []
        for values, timings in results:
            if isinstance(values, StageFailed):
                items.append({"exec": timings, **_error(values.stage, values.error)})
            else:
                items.append({"ok": True, "outputs": {k: values[k] for k in want}, "exec": timings})
        reply = {"op": "done", "id": msg["id"], "items": items, "busy_s": time.perf_counter() - t0}
        try:
            self.send(reply)
        except DataError as e:  # an output the data plane cannot carry: the last stage produced it
            bad = _error(self.stages[-1], e)
            reply["items"] = [{"exec": it["exec"], **bad} for it in items]
            self.send(reply)


def _error(stage: str, err: BaseException) -> dict[str, Any]:
    return {
        "ok": False,
        "stage": stage,
        "etype": type(err).__name__,
        "message": str(err)[:2000],
        "input_error": isinstance(err, (InputError, DataError)),
    }


def instance_main(sock: socket.socket, app: App, spec: dict[str, Any]) -> None:
    """Run an instance until stopped. Never returns normally into the caller's code: the caller ``os._exit``s."""
    apply_shares(spec)
    server = _Server(sock, app, spec)
    try:
        load_s = server.load()
    except Exception as e:
        server.send({"op": "failed", "etype": type(e).__name__, "message": str(e)[:2000]})
        return
    server.send({"op": "ready", "pid": os.getpid(), "load_s": load_s})
    workers = int(spec.get("max_concurrency", 1))
    executor = ThreadPoolExecutor(workers, thread_name_prefix="stage") if workers > 1 else None
    try:
        while True:
            msg = recv_frame(sock)
            if msg is None or msg.get("op") == "stop":
                break
            if msg.get("free"):
                server.pool.free(msg["free"])
            if msg.get("op") == "run":
                if executor is None:
                    server.handle(msg)
                else:
                    executor.submit(server.handle, msg)
    finally:
        if executor is not None:
            executor.shutdown(wait=True)
        server.pool.close()
