"""The floor: a bare Starlette endpoint that parses the JSON body and returns it, served as ``shoal serve`` serves.

Same uvicorn settings as ``shoal.runtime.server.serve``: httptools, uvloop, access log off, one worker, lifespan on.

    .venv/bin/python benchmarks/peers/bare_starlette.py --port 8200
    curl -s -H 'content-type: application/json' -d '[1]' localhost:8200/
"""

from __future__ import annotations

import argparse
import json

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


async def echo(request: Request) -> Response:
    return Response(json.dumps(json.loads(await request.body()), separators=(",", ":")), media_type="application/json")


async def health(request: Request) -> Response:
    return JSONResponse({"ok": True})


app = Starlette(routes=[Route("/", echo, methods=["POST"]), Route("/healthz", health, methods=["GET"])])

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=8200)
    args = ap.parse_args()
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
        lifespan="on",
    )
