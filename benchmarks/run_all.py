"""Run every benchmark, one after another, each in its own interpreter; results land in results/*.json.

.venv/bin/python benchmarks/run_all.py            # everything: about 10 minutes on 2 cores, plus idle waits
.venv/bin/python benchmarks/run_all.py hop_cost   # some of them
"""

from __future__ import annotations

import subprocess
import sys
import time

from _common import BENCH, PY, ROOT, console

#: name: (script, arguments)
BENCHMARKS = {
    "http_noop": ("http_noop", []),
    "hop_cost": ("hop_cost", []),
    "hop_cost_malloc_tuned": ("hop_cost", ["--malloc-tuned", "--only", "local"]),
    "cold_start": ("cold_start", []),
}


def main() -> int:
    names = sys.argv[1:] or list(BENCHMARKS)
    unknown = set(names) - set(BENCHMARKS)
    if unknown:
        console.print(f"[red]unknown benchmark(s): {', '.join(sorted(unknown))}; choose from {', '.join(BENCHMARKS)}")
        return 2
    failed = []
    for name in names:
        console.rule(f"[bold]{name}")
        t0 = time.monotonic()
        script, extra = BENCHMARKS[name]
        rc = subprocess.run([PY, str(BENCH / f"{script}.py"), *extra], cwd=ROOT, check=False).returncode
        console.print(f"[dim]{name}: exit {rc} after {time.monotonic() - t0:.0f} s[/]")
        if rc:
            failed.append(name)
    if failed:
        console.print(f"[red]failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
