"""Shared helpers of the benchmarks: servers as subprocesses, wrk and its output, statistics, machine facts, results.

Every benchmark writes ``results/NAME.json`` at the repository root (git-ignored) and prints a table.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"
BENCH = ROOT / "benchmarks"
# Result documents that BENCHMARKS.md cites, committed (results/ is not): a 2-core machine runs one or two of the
# granularity experiment's workloads per session, and later sessions merge them into one table (``--merge``).
KEPT = BENCH / "results"
PY = sys.executable
SHOAL = str(Path(PY).with_name("shoal"))
WRK = "wrk"
console = Console(width=150)

PACKAGES = ("shoal", "numpy", "onnxruntime", "onnx", "starlette", "uvicorn", "uvloop", "httptools", "httpx", "ray")


# -- machine ------------------------------------------------------------------------------------------------------
def machine_info() -> dict[str, Any]:
    """The runtime's machine facts (shoal.runtime.devices), plus the load generator's version and the date."""
    from shoal.runtime.devices import machine_facts

    facts = machine_facts(PACKAGES)
    ram_gib = facts.pop("memory_gib")
    out = ""
    if shutil.which(WRK):  # only the HTTP benchmarks drive wrk; the others record that it is missing
        wrk = subprocess.run([WRK, "-v"], capture_output=True, text=True, check=False)
        out = (wrk.stdout + wrk.stderr).strip()
    return {
        **facts,
        "ram_gib": ram_gib,
        "wrk": out.splitlines()[0] if out else None,
        "date": dt.datetime.now().isoformat(timespec="seconds"),
    }


def _cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot; busy is user + nice + system, what processes are charged
    (interrupt and softirq time, which loopback networking adds in bulk, is left out: no process is charged it)."""
    v = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    return v[0] + v[1] + v[2], sum(v[:8])


def busy_fraction(seconds: float = 1.0) -> float:
    """How busy the machine's CPUs were over the next ``seconds`` (0 to 1)."""
    b0, t0 = _cpu_times()
    time.sleep(seconds)
    b1, t1 = _cpu_times()
    return (b1 - b0) / max(1, t1 - t0)


def wait_quiet(limit: float = 0.10, patience_s: float = 120.0) -> float:
    """Wait (up to ``patience_s``) until other work leaves the CPUs below ``limit`` busy; returns the last reading.

    The benchmarks share two cores with whatever else runs here; a busy reading is recorded with the results.
    """
    deadline = time.monotonic() + patience_s
    while True:
        b = busy_fraction(1.0)
        if b <= limit or time.monotonic() > deadline:
            if b > limit:
                console.print(f"[yellow]warning: the machine is {b:.0%} busy with other work; figures may suffer[/]")
            return round(b, 3)
        console.print(f"[dim]machine {b:.0%} busy with other work; waiting[/]")


class Interference:
    """``with Interference() as i: ...``; then ``i.other_cores``: CPU cores that processes outside this process tree
    used on average during the block (another user's tests, say, but kernel threads count too). Near 0 means the
    figures are this benchmark's own."""

    def __enter__(self) -> Interference:
        self._busy, _ = _cpu_times()
        self._own = self._own_cpu()
        self._t = time.monotonic()
        return self

    @staticmethod
    def _own_cpu() -> float:
        t = os.times()
        return tree_cpu_s(os.getpid()) + t.children_user + t.children_system

    def __exit__(self, *exc: object) -> None:
        busy = (_cpu_times()[0] - self._busy) / os.sysconf("SC_CLK_TCK")
        own = self._own_cpu() - self._own
        self.other_cores = round(max(0.0, busy - own) / max(1e-9, time.monotonic() - self._t), 3)


# -- statistics ---------------------------------------------------------------------------------------------------
def summary(xs: Sequence[float]) -> dict[str, float]:
    """Median, min, max and the interquartile range of ``xs``."""
    xs = sorted(xs)
    if len(xs) >= 2:
        q1, _, q3 = statistics.quantiles(xs, n=4, method="inclusive")
    else:
        q1 = q3 = xs[0]
    return {"median": statistics.median(xs), "min": xs[0], "max": xs[-1], "q1": q1, "q3": q3, "n": len(xs)}


def percentile(xs: Sequence[float], p: float) -> float:
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, round(p / 100 * (len(xs) - 1))))
    return xs[k]


def fmt(s: dict[str, float], digits: int = 2) -> str:
    """``median (min-max)``."""
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"


# -- processes ----------------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 60.0, method: str = "GET", body: bytes | None = None) -> None:
    """Wait until ``url`` answers 2xx."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            req = urllib.request.Request(url, data=body, method=method, headers={"content-type": "application/json"})
            with urllib.request.urlopen(req, timeout=5) as r:
                if 200 <= r.status < 300:
                    return
        except (urllib.error.URLError, OSError) as e:
            last = e
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout:g}s: {last}")


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


@contextlib.contextmanager
def server(
    cmd: list[str],
    ready_url: str,
    timeout: float = 90.0,
    method: str = "GET",
    body: bytes | None = None,
    log_name: str = "server",
) -> Iterator[subprocess.Popen]:
    """Run ``cmd`` in its own process group until the block ends; stop it with SIGINT, then SIGTERM, then SIGKILL."""
    RESULTS.mkdir(exist_ok=True)
    log = open(RESULTS / f"{log_name}.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        try:
            wait_http(ready_url, timeout, method, body)
        except TimeoutError:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd[:3]} exited with {proc.returncode}; see results/{log_name}.log") from None
            raise
        yield proc
    finally:
        stop_group(proc)
        log.close()


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, start time) of a process, or None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[1]), fields[19]
    except (OSError, ValueError, IndexError):
        return None


def descendants(pid: int) -> list[tuple[int, str]]:
    """(pid, start time) of every process below ``pid`` (Ray starts its workers in process groups of their own)."""
    children: dict[int, list[tuple[int, str]]] = {}
    for d in Path("/proc").glob("[0-9]*"):
        st = _stat(int(d.name))
        if st is not None:
            children.setdefault(st[0], []).append((int(d.name), st[1]))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c[0])
    return out


def stop_group(proc: subprocess.Popen, grace: float = 20.0) -> None:
    """Stop the process group that ``proc`` leads (it was started with ``start_new_session``), and its descendants."""
    below = descendants(proc.pid)
    for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(wait)
            break
        except subprocess.TimeoutExpired:
            continue
    time.sleep(0.5)
    with contextlib.suppress(ProcessLookupError):  # stragglers of the group (instances)
        os.killpg(proc.pid, signal.SIGKILL)
    for pid, started in below:  # stragglers outside it (Ray workers), by id, if still the same process
        st = _stat(pid)
        if st is not None and st[1] == started:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and the live processes below it."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for p in [pid, *(c for c, _ in descendants(pid))]:
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


# -- wrk ----------------------------------------------------------------------------------------------------------
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not m:
        raise ValueError(f"cannot read wrk duration {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def lua_post(body: str | Path, content_type: str, accept: str | None = None) -> Path:
    """A wrk script that POSTs ``body`` (a string, or the bytes of a file) with the given headers."""
    body_expr = f'io.open("{body}", "rb"):read("*a")' if isinstance(body, Path) else json.dumps(body)
    lines = ['wrk.method = "POST"', f"wrk.body = {body_expr}", f'wrk.headers["Content-Type"] = "{content_type}"']
    if accept:
        lines.append(f'wrk.headers["Accept"] = "{accept}"')
    fd, path = tempfile.mkstemp(suffix=".lua", prefix="shoal-bench-")
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    return Path(path)


def parse_wrk(out: str) -> dict[str, Any]:
    """Requests/s, latency percentiles (ms), request count and errors from ``wrk --latency`` output."""
    res: dict[str, Any] = {"latency_ms": {}, "errors": 0, "non_2xx": 0}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not m:
        raise ValueError(f"no Requests/sec in wrk output:\n{out}")
    res["rps"] = float(m.group(1))
    m = re.search(r"(\d+) requests in ([\d.]+\w+)", out)
    if m:
        res["requests"] = int(m.group(1))
        res["duration_s"] = _ms(m.group(2)) / 1e3
    for p, v in re.findall(r"^\s+(\d+)%\s+([\d.]+\w+)\s*$", out, re.M):
        res["latency_ms"][f"p{p}"] = _ms(v)
    m = re.search(r"^\s+Latency\s+([\d.]+\w+)\s+([\d.]+\w+)\s+([\d.]+\w+)", out, re.M)
    if m:
        res["latency_ms"]["mean"], res["latency_ms"]["stdev"], res["latency_ms"]["max"] = map(_ms, m.groups())
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        res["errors"] = sum(map(int, m.groups()))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        res["non_2xx"] = int(m.group(1))
    return res


def wrk(url: str, script: Path, threads: int, conns: int, duration_s: float) -> dict[str, Any]:
    cmd = [WRK, f"-t{threads}", f"-c{conns}", f"-d{duration_s:g}s", "--latency", "-s", str(script), url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=duration_s + 60).stdout
    res = parse_wrk(out)
    res["command"] = " ".join(cmd)
    return res


# -- output -------------------------------------------------------------------------------------------------------
def result_path(name: str) -> Path:
    """results/NAME.json where this checkout made it, else the committed benchmarks/results/NAME.json.gz (kept with
    ``gzip -c results/NAME.json > benchmarks/results/NAME.json.gz``)."""
    made = RESULTS / f"{name}.json"
    kept = KEPT / f"{name}.json.gz"
    return made if made.exists() or not kept.exists() else kept


def load_result(name: str) -> dict[str, Any]:
    """The result document ``result_path(name)`` names."""
    path = result_path(name)
    text = gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()
    return json.loads(text)


def save(name: str, doc: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    console.print(f"[dim]wrote {path.relative_to(ROOT)}[/]")
    return path


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    t = Table(title=title)
    for c in columns:
        t.add_column(c, justify="right" if c != columns[0] else "left")
    for r in rows:
        t.add_row(*(str(x) for x in r))
    console.print(t)
