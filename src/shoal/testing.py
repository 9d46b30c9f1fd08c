"""Helpers for testing Shoal applications against a real server, as starlette's TestClient does for web apps.

>>> with ServerProcess("my_app.py", "fine") as srv:  # doctest: +SKIP
...     r = srv.client.post("/apps/my_app/invoke", json=[1, 2, 3])
...     assert r.status_code == 200

:class:`ServerProcess` runs ``shoal serve`` as a real subprocess on 127.0.0.1 with a free port: the same gateway,
zygote, instances and shared memory as in production, nothing mocked. On exit it stops the server the way an
operator does (SIGTERM) and, by default, checks that no instance process and no shared-memory segment outlived it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx

__all__ = ["ServerError", "ServerProcess", "descendants", "free_port", "pid_alive", "wait_until"]

T = TypeVar("T")

_SHM_DIR = "/dev/shm"


class ServerError(RuntimeError):
    """The server did not come up, or did not go away cleanly."""


def wait_until(
    predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.02, message: str = "condition"
) -> T:
    """Poll ``predicate`` until it returns something truthy, and return that; raise TimeoutError after ``timeout``.

    Exceptions the predicate raises propagate: write predicates that return False while the condition is not met.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for: {message}")
        time.sleep(interval)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now (the kernel's choice for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (an exited process nobody has reaped yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if not Path("/proc").is_dir():  # not Linux: trust kill(0)
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # gone meanwhile
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _children() -> dict[int, list[int]]:
    """Parent pid -> child pids, from /proc (empty where there is no /proc)."""
    kids: dict[int, list[int]] = {}
    for entry in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = Path(entry).read_text().rpartition(")")[2].split()
        except OSError:
            continue
        kids.setdefault(int(fields[1]), []).append(int(entry.split("/")[2]))
    return kids


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` in the process tree (its zygote and instances, for a Shoal server)."""
    kids = _children()
    out: list[int] = []
    stack = list(kids.get(pid, []))
    while stack:
        p = stack.pop()
        out.append(p)
        stack.extend(kids.get(p, []))
    return out


class ServerProcess:
    """``shoal serve APP --plan PLAN [extra args]`` as a subprocess on 127.0.0.1, for the length of a ``with`` block.

    ``extra_cli_args`` go to ``shoal serve`` as written (for example ``"--max-instances", "1"``). ``token`` is sent
    as a bearer token by :attr:`client` (and passed to the server with ``--token``). With ``check_clean`` (the
    default), leaving the block also checks that the server's instance processes and shared-memory segments are
    gone; the check is skipped when the block raised, so that it never hides the block's own error.
    """

    def __init__(
        self,
        app_ref: str,
        plan: str = "coarse",
        *extra_cli_args: str,
        port: int | None = None,
        token: str | None = None,
        startup_timeout: float = 30.0,
        stop_timeout: float = 10.0,
        check_clean: bool = True,
        env: dict[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> None:
        self.app_ref = app_ref
        self.plan = plan
        self.extra_cli_args: Sequence[str] = tuple(str(a) for a in extra_cli_args)
        self.port = port or free_port()
        self.token = token
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.check_clean = check_clean
        self.env = env
        self.cwd = cwd
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self._stderr: Any = None
        self._client: httpx.Client | None = None
        self._last_text = ""

    # -- life cycle -----------------------------------------------------------------------------------------------
    @property
    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "shoal.cli", "serve", self.app_ref, "--plan", self.plan, "--port", str(self.port)]
        if self.token is not None:
            cmd += ["--token", self.token]
        return cmd + list(self.extra_cli_args)

    def start(self) -> ServerProcess:
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        # A file, not a pipe: a chatty server never blocks on a full pipe. Closed by stop().
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        # Its own session: Ctrl-C at the test runner's terminal must not reach it, and a hard stop can kill the group.
        self.proc = subprocess.Popen(
            self.command,
            stdin=subprocess.DEVNULL,
            stdout=self._stderr,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.cwd,
            start_new_session=True,
        )
        try:
            wait_until(self._healthy, self.startup_timeout, 0.05, f"{self.url}/healthz to answer")
        except BaseException as e:
            self._kill_group()
            text = self.stderr_text()
            self._close_files()
            if isinstance(e, TimeoutError | ServerError):
                raise ServerError(
                    f"`{' '.join(self.command)}` did not come up within {self.startup_timeout:g} s "
                    f"(exit code {self.proc.returncode}); its output:\n{text}"
                ) from None
            raise
        headers = {"authorization": f"Bearer {self.token}"} if self.token is not None else {}
        self._client = httpx.Client(base_url=self.url, headers=headers, timeout=60.0)
        return self

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise ServerError(f"the server exited with code {self.proc.returncode}")
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self, check_clean: bool | None = None) -> None:
        """SIGTERM the server, SIGKILL its whole process group if it has not left after ``stop_timeout`` s."""
        if self.proc is None:
            return
        check = self.check_clean if check_clean is None else check_clean
        tree = descendants(self.proc.pid)
        pid = self.proc.pid
        problems: list[str] = []
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(self.stop_timeout)
                except subprocess.TimeoutExpired:
                    problems.append(f"the server did not stop within {self.stop_timeout:g} s of SIGTERM; killed it")
                    self._kill_group()
            if check:
                try:
                    wait_until(
                        lambda: not [p for p in tree if pid_alive(p)], self.stop_timeout, 0.05, "instances to exit"
                    )
                except TimeoutError:
                    problems.append(f"processes outlived the server: {[p for p in tree if pid_alive(p)]}")
                try:
                    wait_until(lambda: not self.segments(pid), self.stop_timeout, 0.05, "segments to be unlinked")
                except TimeoutError:
                    problems.append(f"shared-memory segments outlived the server: {self.segments(pid)}")
        finally:
            for p in tree:  # never leave strays behind, whatever the check says
                if pid_alive(p):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(p, signal.SIGKILL)
            for path in self.segment_paths(pid):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            self._close_files()
        if problems:
            raise ServerError("; ".join(problems) + "\nserver output:\n" + self._last_text)

    def _kill_group(self) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(self.stop_timeout)

    def _close_files(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._stderr is not None:
            self._last_text = self.stderr_text()
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, etype: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop(check_clean=None if etype is None else False)

    # -- reading --------------------------------------------------------------------------------------------------
    @property
    def pid(self) -> int:
        if self.proc is None:
            raise ServerError("the server is not running")
        return self.proc.pid

    @property
    def client(self) -> httpx.Client:
        """An ``httpx.Client`` with ``base_url`` set to the server (and its bearer token, if any)."""
        if self._client is None:
            raise ServerError("the server is not running; use ServerProcess in a with block")
        return self._client

    def invoke(self, app: str, value: Any, **kw: Any) -> httpx.Response:
        """POST ``value`` as JSON to ``/apps/APP/invoke``."""
        return self.client.post(f"/apps/{app}/invoke", json=value, **kw)

    def status(self) -> dict[str, Any]:
        """The server's ``GET /status`` document."""
        return self.client.get("/status").raise_for_status().json()

    def instances(self, app: str | None = None) -> list[dict[str, Any]]:
        """Every instance in :meth:`status`, each with its ``app`` and ``function`` added."""
        out = []
        for a in self.status()["apps"]:
            if app is not None and a["app"] != app:
                continue
            for f in a["functions"]:
                out += [i | {"app": a["app"], "function": f["function"]} for i in f["instances"]]
        return out

    def stderr_text(self) -> str:
        """Everything the server wrote to stdout and stderr so far."""
        if self._stderr is None:
            return self._last_text
        self._stderr.flush()
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    @staticmethod
    def segment_paths(pid: int) -> list[str]:
        """The shared-memory files of the server ``pid`` and of its instances (their names carry its pid)."""
        return glob.glob(os.path.join(_SHM_DIR, f"shoal-p{pid}-*")) + glob.glob(
            os.path.join(_SHM_DIR, f"shoal-i{pid}-*")
        )

    def segments(self, pid: int | None = None) -> list[str]:
        return sorted(os.path.basename(p) for p in self.segment_paths(pid or self.pid))
