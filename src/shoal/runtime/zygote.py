"""The zygote: a template process that has already imported the heavy libraries, and forks instances on demand.

A cold start then pays for ``fork`` and for loading the model, not for importing NumPy or ONNX Runtime (Android's
zygote, and SOCK's "zygote" for serverless Python, do the same). The zygote is forked from the parent before the
parent starts any thread, so it holds the applications in memory as the parent loaded them; each instance it forks
gets one end of a socket pair that the parent passed over (SCM_RIGHTS), and talks to the parent directly.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Mapping
from typing import Any

import msgpack

from shoal.app import App
from shoal.runtime.memory import keep_freed_memory

__all__ = ["DEFAULT_PRELOAD", "Zygote", "ZygoteError"]

log = logging.getLogger("shoal.zygote")

#: Imported once by the zygote, so that no instance pays for them. ``onnx`` alone is ~60 ms (BENCHMARKS.md, cold start).
DEFAULT_PRELOAD = ("numpy", "onnxruntime", "onnx", "threadpoolctl", "msgpack", "shoal.zoo", "shoal.runtime.instance")


class ZygoteError(RuntimeError):
    """The zygote could not be started, or is gone."""


class Zygote:
    """Parent-side handle of the zygote process."""

    def __init__(self, apps: Mapping[str, App], preload: tuple[str, ...] = DEFAULT_PRELOAD) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child; covered by every runtime test
            parent.close()
            code = 0
            try:
                _zygote_main(child, dict(apps), preload)
            except BaseException:
                code = 1
            os._exit(code)
        child.close()
        self.pid = pid
        self.sock = parent
        hello = parent.recv(65536)
        if not hello:
            raise ZygoteError("the zygote exited while preloading; run with --log-level debug to see why")
        self.preloaded: list[str] = msgpack.unpackb(hello)["preloaded"]

    def spawn(self, spec: dict[str, Any]) -> socket.socket:
        """Fork an instance described by ``spec``; returns the parent's end of its socket."""
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            socket.send_fds(self.sock, [msgpack.packb(spec)], [theirs.fileno()])
        except OSError as e:
            mine.close()
            raise ZygoteError(f"the zygote is gone ({e}); restart the server") from e
        finally:
            theirs.close()
        return mine

    def close(self) -> None:
        try:
            self.sock.close()
        finally:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)


def _zygote_main(sock: socket.socket, apps: dict[str, App], preload: tuple[str, ...]) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # instances are reaped by the kernel
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; we leave when it closes us
    keep_freed_memory()  # inherited by every instance forked from here
    done = []
    for mod in preload:
        try:
            importlib.import_module(mod)
            done.append(mod)
        except ImportError:
            pass
    sock.send(msgpack.packb({"preloaded": done}))
    while True:
        msg, fds, _flags, _addr = socket.recv_fds(sock, 65536, 1)
        if not msg:
            return  # the parent closed us: instances notice on their own sockets and leave too
        spec = msgpack.unpackb(msg)
        pid = os.fork()
        if pid == 0:
            sock.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            inst = socket.socket(fileno=fds[0])
            code = 0
            try:
                from shoal.runtime.instance import instance_main

                instance_main(inst, apps[spec["app"]], spec)
            except BaseException:
                code = 1
            os._exit(code)
        for fd in fds:
            os.close(fd)
