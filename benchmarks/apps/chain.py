"""Three cheap stages on a float64 vector: x+1, then *2, then -3. The hop-cost benchmark serves it fine and coarse.

The arithmetic costs a fraction of a millisecond on a 1 MB array, so what differs between plans is the data hop.

    shoal serve benchmarks/apps/chain.py --plan fine
"""

from __future__ import annotations

import numpy as np

import shoal


def make_chain(name: str = "chain") -> shoal.App:
    app = shoal.App(name, slo="p99:50ms", input=shoal.ArraySpec((None,), "float64"))

    @app.stage(vcpu=0.5, memory_mb=256)
    def add1(x: np.ndarray) -> np.ndarray:
        return x + 1

    @app.stage(after=add1, vcpu=0.5, memory_mb=256)
    def mul2(x: np.ndarray) -> np.ndarray:
        return x * 2

    @app.stage(after=mul2, vcpu=0.5, memory_mb=256)
    def sub3(x: np.ndarray) -> np.ndarray:
        return x - 3

    return app


app = make_chain()
