"""Trace readers: each format from a small file written here, and the shared real samples."""

from pathlib import Path

import numpy as np
import pytest

from shoal.workload.traces import (
    Trace,
    TraceError,
    arrivals_from_counts,
    read_azure_functions_2019,
    read_azure_functions_2021,
    read_azure_llm_2023,
    read_counts_2019,
    sample_functions,
)

SHARED = Path(__file__).resolve().parents[3] / "shared" / "traces"


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_2019_original_layout_reads_counts_by_column_name(tmp_path):
    p = _write(
        tmp_path / "invocations_per_function_md.anon.d01.csv",
        ["HashOwner,HashApp,HashFunction,Trigger,1,2,3", "o,a,f,http,2,0,1", "o,a,g,timer,0,3,0"],
    )
    names, counts = read_counts_2019(p)
    assert names == ("a/f", "a/g")
    assert counts.tolist() == [[2, 0, 1], [0, 3, 0]]


def test_2019_sampled_layout_and_even_spread(tmp_path):
    p = _write(tmp_path / "inv.csv", ["HashFunction,HashApp,HashOwner,minute_1,minute_2", "f,a,o,2,1", "g,a,o,0,4"])
    tr = read_azure_functions_2019(p)
    assert len(tr) == 7 and tr.span_s == 120.0
    # two arrivals in minute 1, evenly at 15 s and 45 s; one in minute 2 at 90 s
    assert tr.of("a/f").tolist() == [15.0, 45.0, 90.0]
    assert tr.of(1).tolist() == [67.5, 82.5, 97.5, 112.5]
    assert np.all(np.diff(tr.times) >= 0)


def test_poisson_spread_keeps_counts_per_minute_and_is_seeded():
    counts = np.array([[5, 0, 7], [1, 2, 0]])
    t1, f1 = arrivals_from_counts(counts, spread="poisson", seed=3)
    t2, f2 = arrivals_from_counts(counts, spread="poisson", seed=3)
    assert np.array_equal(t1, t2) and np.array_equal(f1, f2)
    for f in range(2):
        hist = np.histogram(t1[f1 == f], bins=[0, 60, 120, 180])[0]
        assert hist.tolist() == counts[f].tolist()
    t3, _ = arrivals_from_counts(counts, spread="poisson", seed=4)
    assert not np.array_equal(t1, t3)


def test_2021_arrival_is_end_minus_duration(tmp_path):
    p = _write(
        tmp_path / "a.csv",
        ["app,func,end_timestamp,duration", "A,x,10.0,9.0", "A,y,11.0,9.0", "B,x,5.5,0.5"],
    )
    tr = read_azure_functions_2021(p)
    assert tr.times.tolist() == [0.0, 1.0, 4.0]  # starts 1, 2, 5 re-based to 0
    assert [tr.functions[i] for i in tr.func] == ["A/x", "A/y", "B/x"]
    assert tr.extra["duration_s"].tolist() == [9.0, 9.0, 0.5]


def test_llm_2023_timestamps_and_tokens(tmp_path):
    p = _write(
        tmp_path / "llm.csv",
        [
            "TIMESTAMP,ContextTokens,GeneratedTokens",
            "2023-11-16 18:17:04.0319600,3180,8",
            "2023-11-16 18:17:03.9799600,4808,10",
            "2023-11-16 18:18:03.9799600,100,1",
        ],
    )
    tr = read_azure_llm_2023(p)
    assert tr.times[0] == 0.0
    assert tr.times[1] == pytest.approx(0.052)
    assert tr.times[2] == pytest.approx(60.0)
    assert tr.extra["context_tokens"].tolist() == [4808, 3180, 100]


def test_compression_and_rate_scaling():
    tr = Trace("t", ("f",), np.arange(0.0, 100.0, 1.0), np.zeros(100, np.int32), 100.0)
    fast = tr.compressed(4)
    assert fast.span_s == 25.0 and fast.times[-1] == 99 / 4
    double = tr.rate_scaled(2.0, seed=1)
    assert len(double) == 200 and double.times.max() < 100.0 and np.all(np.diff(double.times) >= 0)
    half = tr.rate_scaled(0.5, seed=1)
    assert 30 < len(half) < 70
    assert np.array_equal(tr.rate_scaled(2.5, seed=2).times, tr.rate_scaled(2.5, seed=2).times)


def test_sampling_more_functions_than_the_trace_has_shifts_the_repeats():
    tr = Trace("t", ("a", "b"), np.array([1.0, 2.0, 3.0]), np.array([0, 1, 0], np.int32), 10.0)
    s = sample_functions(tr, 5, seed=0)
    assert len(set(s.functions)) == 5
    per_original = {"a": 2, "b": 1}
    assert len(s) == sum(per_original[name.split("#")[0]] for name in s.functions)
    assert s.times.max() < 10.0


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(TraceError, match="no such trace"):
        read_azure_functions_2019(tmp_path / "nope.csv")
    bad = _write(tmp_path / "bad.csv", ["HashFunction,HashApp,HashOwner,x", "f,a,o,1"])
    with pytest.raises(TraceError, match="per-minute"):
        read_counts_2019(bad)


@pytest.mark.skipif(not SHARED.is_dir(), reason="the shared traces are not on this machine")
def test_reads_the_real_shared_samples():
    tr = read_azure_functions_2019(SHARED / "azure-functions-2019-sample" / "100_inv.csv")
    assert len(tr.functions) == 100 and tr.span_s == 86_400.0 and len(tr) > 100_000
    tr21 = read_azure_functions_2021(SHARED / "azure-functions-2021-sample" / "Azure2021_200.csv")
    assert len(tr21) == 199 and tr21.times[0] == 0.0
    llm = read_azure_llm_2023(SHARED / "azure-llm-2023" / "AzureLLMInferenceTrace_code.csv")
    assert 8_800 < len(llm) < 8_900 and 3000 < llm.span_s < 3700
