"""benchmarks/granularity.py's report: a document whose arms leave out fine (``--fixed coarse``) is still reported."""

from __future__ import annotations

import gzip
import json


def test_a_run_without_fine_is_reported_with_its_comparison_not_run(granularity, kept_results, tmp_path, monkeypatch):
    """Stop 23's image run (``--fixed coarse --explore``, 600 s) crashed in its report after the runs: fine was not
    among its arms. Its kept document is reported, the comparisons it has not said as not run."""
    doc = json.loads(gzip.decompress((kept_results / "granularity_s23i.json.gz").read_bytes()))
    assert "fixed fine" not in doc["workloads"][0]["summary"]
    monkeypatch.setattr(granularity, "RESULTS", tmp_path)
    monkeypatch.setattr(granularity, "OUT", "report")
    granularity._report(doc)
    row = next(line for line in (tmp_path / "report.md").read_text().splitlines() if "(fixed coarse) |" in line)
    cells = [c.strip() for c in row.split("|")[1:-1]]
    assert cells[:2] == ["image", "steady"] and cells[3] == "not run" and cells[6] == "not run"
    assert cells[2].endswith("% (fixed coarse)") and cells[4].endswith("%")
    assert (tmp_path / "report_arms.png").stat().st_size > 0 and (tmp_path / "report_timelines.png").exists()
