"""``shoal status`` printing a real runtime's status: functions, a switch's draining pools, adaptive decisions."""

from __future__ import annotations

import io

from apps_for_tests import paced
from rich.console import Console

import shoal
from shoal.policy.granularity import Candidate
from shoal.report import print_status
from shoal.testing import wait_until


def test_status_shows_the_plan_and_the_adaptive_loops_last_decision():
    with shoal.local(paced, "fine") as svc:
        svc.invoke([1.0])
        loop = svc.adapt(
            ["coarse"], lambda load, plans: [Candidate("fine", 1.0, 2.0), Candidate("coarse", 1.0, 1.0)], window_s=0.2
        )
        wait_until(lambda: len(loop.history) >= 1, timeout=10)
        doc = svc.status()
    out = io.StringIO()
    print_status(doc, Console(file=out, width=200))
    text = out.getvalue()
    assert "paced  plan=" in text and "p_src" in text
    assert "adaptive: at t=" in text and "coarse" in text
