"""A private ``redis-server`` for a training job or a test: started on a free port, persisting only on ``SAVE``.

It is a child process of the caller; :meth:`RedisServer.restart` kills it hard and starts it again on the same port,
which is how the tests put a Redis restart in the middle of a job.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

from shoal.train.store import StoreError

__all__ = ["RedisServer", "free_port", "redis_server"]


def free_port() -> int:
    """A free TCP port *below* the kernel's ephemeral range.

    Not ``bind(0)``: that hands out an ephemeral port, and while our server restarts, a client reconnecting to it can
    be given that very port as its own local port and connect to itself (TCP simultaneous open), or another test
    can take it. Both happened in the restart test before this.
    """
    low = 32768
    with contextlib.suppress(OSError, ValueError), open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low = int(f.read().split()[0])
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(10000, max(low, 10001))
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise StoreError("no free port below the ephemeral range for redis-server")


class RedisServer:
    """A ``redis-server`` child process on 127.0.0.1 that persists only when asked (``SAVE``), into ``dir``."""

    def __init__(self, port: int | None = None, dir: str | None = None, binary: str = "redis-server") -> None:
        exe = shutil.which(binary)
        if exe is None:
            raise StoreError(f"{binary} is not installed (apt-get install redis-server), or pass a Redis URL")
        self.exe = exe
        self.port = port or free_port()
        self._own_dir = dir is None
        self.dir = dir or tempfile.mkdtemp(prefix="shoal-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> None:
        args = [self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir]
        args += ["--save", "", "--appendonly", "no", "--dbfilename", "dump.rdb", "--protected-mode", "yes"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise StoreError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        """Kill the server hard (no save) and start it again on the same port: it loads the last ``SAVE``."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
        self.start()

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def redis_server(port: int | None = None) -> Iterator[RedisServer]:
    """A private redis-server for the duration of a ``with`` block."""
    srv = RedisServer(port)
    try:
        srv.start()
        yield srv
    finally:
        srv.close()
