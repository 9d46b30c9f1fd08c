"""One stage that returns its input unchanged.

It stands for nothing a user would deploy: benchmarks use it to measure the platform's own overhead (gateway,
queueing, data plane) with no model time mixed in.

Serve it with ``shoal serve examples/noop.py``.
"""

from __future__ import annotations

from typing import Any

import shoal

app = shoal.App("noop", slo="p99:20ms")


@app.stage(vcpu=0.25, memory_mb=128)
def identity(x: Any) -> Any:
    return x
