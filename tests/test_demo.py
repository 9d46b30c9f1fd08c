"""`make demo` runs `shoal demo`: it must serve, drive load and report for both plans, with every request answered."""

import io

from rich.console import Console

from shoal.demo import run_demo


def test_demo_serves_both_plans_and_reports_what_happened():
    out = io.StringIO()
    rows = run_demo(seconds=1.0, rate=8.0, console=Console(file=out, width=140))
    assert [r["plan"] for r in rows] == ["fine", "coarse"]
    for r in rows:
        assert r["requests"] > 0 and r["ok"] == r["requests"]
        assert r["cost_usd"] > 0 and r["bill_usd"] > 0
        assert r["timing"]["exec_ms"].keys() == {"preprocess", "backbone", "head"}
    text = out.getvalue()
    assert "What happened" in text and "resource cost" in text.lower()
