"""Ray Serve serving the same no-op: a deployment that returns its JSON input, behind Ray Serve's HTTP proxy.

    .venv/bin/python benchmarks/peers/ray_noop.py --mode fixed   # num_replicas=1, Ray's defaults otherwise
    .venv/bin/python benchmarks/peers/ray_noop.py --mode auto    # num_replicas="auto": Ray's default autoscaling
    curl -s -H 'content-type: application/json' -d '[1]' 127.0.0.1:8000/

Ray runs with ``ray.init(num_cpus=2, include_dashboard=False)``; the proxy listens on 127.0.0.1:8000. Every
``--status-every`` seconds the driver writes the deployment's replica states to ``--status-file`` (JSON), so the
benchmark can report how many replicas served the load. SIGINT or SIGTERM shuts Serve and Ray down.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
from pathlib import Path
from typing import Any

import ray
from ray import serve
from starlette.requests import Request


@serve.deployment
class Noop:
    async def __call__(self, request: Request) -> Any:
        return await request.json()


def replica_states() -> dict[str, Any]:
    st = serve.status()
    for app in st.applications.values():
        for name, dep in app.deployments.items():
            replicas = {str(k): v for k, v in dep.replica_states.items()}
            return {"deployment": name, "status": str(dep.status), "replicas": replicas}
    return {}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=("fixed", "auto"), default="fixed")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--status-file", type=Path, default=None)
    ap.add_argument("--status-every", type=float, default=1.0)
    args = ap.parse_args()

    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": args.port})
    # fixed: one replica and Ray's default max_ongoing_requests (5). auto: Ray's default autoscaling config
    # (min 1, max 100, target_ongoing_requests 2); each replica asks for Ray's default of 1 CPU, so at most 2 fit.
    dep = Noop.options(num_replicas=1 if args.mode == "fixed" else "auto")
    serve.run(dep.bind(), name="noop", route_prefix="/", blocking=False)
    config = {"mode": args.mode, "num_replicas": 1 if args.mode == "fixed" else "auto"}
    print(json.dumps({"ready": True, **config}), flush=True)
    try:
        while not stop.wait(args.status_every):
            if args.status_file is not None:
                doc = {**config, **replica_states()}
                tmp = args.status_file.with_suffix(".tmp")
                tmp.write_text(json.dumps(doc))
                tmp.replace(args.status_file)
    finally:
        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    main()
