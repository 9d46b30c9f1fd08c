"""The profile file: it reads back what was written, refuses a bad file naming the field, and checks its version."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shoal.predict import (
    SCHEMA,
    AppInfo,
    GpuPoint,
    HopPoint,
    Point,
    Profile,
    ProfileError,
    Settings,
    Spread,
    StageInfo,
    read_gpu_table,
    read_profile,
    table_model,
    validate_profile,
    write_profile,
)


def spread(median: float) -> Spread:
    return Spread(median=median, p10=median * 0.9, p90=median * 1.2, cv=0.05, n=10)


def point(kind: str, name: str, plan: str, batch: int = 1) -> Point:
    return Point(
        kind=kind,
        name=name,
        plan=plan,
        stages=(name,) if kind == "stage" else ("a", "b"),
        vcpu=1.0,
        batch=batch,
        batching="rows" if kind == "stage" else "requests",
        input_size="medium",
        input_bytes=4096,
        latency_ms=spread(2.0 * batch),
        busy_ms=spread(1.5 * batch),
        output_bytes=512,
        load_ms=40.0,
        cold_start_ms=55.0,
        peak_rss_mb=80.5,
    )


def make_profile() -> Profile:
    return Profile(
        created="2025-01-01T00:00:00+00:00",
        machine={"cpu": "Test CPU", "cores": 2, "memory_gb": 8.0},
        app=AppInfo(
            "tiny",
            "p99:200ms",
            "tiny.py",
            (StageInfo("a", (), False, 0.5, 64, 0.0), StageInfo("b", ("a",), True, 1.0, 64, 0.25, 900, 4)),
        ),
        settings=Settings(10, 2, (1.0, 2.0), (1, 4), ("small", "medium"), ("fine", "coarse"), (1024,), "test"),
        stages=(point("stage", "a", "fine"), point("stage", "b", "fine"), point("stage", "b", "fine", batch=4)),
        functions=(point("function", "a+b", "coarse"),),
        hops=(HopPoint(1024, 0.25, 1, spread(0.5), spread(0.25)),),
        gpu=(GpuPoint("b", "resnet18", 1, 100, 100, 9.39),),
        notes=("a note",),
    )


def test_a_profile_reads_back_equal(tmp_path: Path) -> None:
    prof = make_profile()
    path = write_profile(prof, tmp_path / "sub" / "tiny.json")
    doc = json.loads(path.read_text())
    assert doc["schema"] == SCHEMA == "shoal.profile/1"
    assert doc["stages"][0]["stage"] == "a" and doc["functions"][0]["function"] == "a+b"
    assert doc["gpu"][0]["source"] == "measured elsewhere: RaPP V100 table"
    back = read_profile(path)
    assert back == prof
    assert back.point("b", batch=4) == prof.stages[2]
    assert back.point("a+b", plan="coarse") == prof.functions[0]
    assert back.point("b", vcpu=2.0) is None


def test_the_profile_rebuilds_the_applications_graph_without_its_code() -> None:
    from shoal.app import Plan

    app = make_profile().app.graph()
    assert app.name == "tiny" and str(app.slo) == "p99:200ms" and list(app.stages) == ["a", "b"]
    b = app["b"]
    assert b.after == ("a",) and b.batch
    assert (b.resources.gpu, b.resources.gpu_memory_mb, b.resources.max_concurrency) == (0.25, 900, 4)
    assert len(Plan.parse(app, "coarse").functions) == 1 and len(Plan.parse(app, "fine").functions) == 2
    with pytest.raises(RuntimeError, match="built from a profile: it can be planned, not run"):
        b.fn(1)


def test_a_profile_written_before_stage_limits_were_recorded_reads_with_the_defaults(tmp_path: Path) -> None:
    doc = make_profile().to_dict()
    for st in doc["app"]["stages"]:
        del st["gpu_memory_mb"], st["max_concurrency"]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(doc))
    b = read_profile(path).app.stages[1]
    assert (b.gpu_memory_mb, b.max_concurrency) == (0, 1)


@pytest.mark.parametrize(
    ("change", "names"),
    [
        (lambda d: d["stages"][1]["latency_ms"].__setitem__("p10", "fast"), "stages[1].latency_ms.p10"),
        (lambda d: d["functions"][0].pop("vcpu"), "functions[0].vcpu: missing"),
        (lambda d: d["stages"][0].__setitem__("batch", 0), "stages[0].batch: must be >= 1"),
        (lambda d: d["stages"][0].__setitem__("batching", "magic"), "stages[0].batching"),
        (lambda d: d["stages"][0]["latency_ms"].__setitem__("p10", 99.0), "stages[0].latency_ms: need p10 <= median"),
        (lambda d: d["hops"][0].__setitem__("bytes", 1.5), "hops[0].bytes: expected an integer"),
        (lambda d: d["gpu"][0].pop("source"), "gpu[0].source: missing"),
        (lambda d: d["app"]["stages"][1].__setitem__("batch", "yes"), "app.stages[1].batch"),
        (lambda d: d["app"]["stages"][1].__setitem__("max_concurrency", 0), "app.stages[1].max_concurrency"),
        (lambda d: d["machine"].pop("cpu"), "machine.cpu: missing"),
        (lambda d: d.__setitem__("stages", {}), "stages: expected a list"),
        (lambda d: d.pop("settings"), "settings: missing"),
    ],
)
def test_a_bad_file_is_refused_naming_the_field(tmp_path: Path, change, names: str) -> None:
    doc = make_profile().to_dict()
    change(doc)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ProfileError, match=names.replace("[", r"\[").replace("]", r"\]")) as e:
        read_profile(path)
    assert str(path) in str(e.value)


@pytest.mark.parametrize(
    ("schema", "says"),
    [
        ("shoal.profile/2", "version '2' .* not supported: this Shoal reads shoal.profile/1; upgrade Shoal"),
        ("shoal.profile/0", "version '0' .* profile the application again"),
        ("other.profile/1", "is not a Shoal profile"),
        (None, "schema: missing"),
    ],
)
def test_the_schema_version_is_checked(schema: str | None, says: str) -> None:
    doc = make_profile().to_dict()
    doc["schema"] = schema
    if schema is None:
        del doc["schema"]
    with pytest.raises(ProfileError, match=says):
        validate_profile(doc)


def test_a_file_that_is_not_json_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text("{not json")
    with pytest.raises(ProfileError, match="is not JSON"):
        read_profile(path)
    with pytest.raises(ProfileError, match="cannot read profile"):
        read_profile(tmp_path / "missing.json")


def test_spread_gives_median_percentiles_and_cv() -> None:
    s = Spread.of([1.0, 2.0, 3.0, 4.0, 5.0])
    assert (s.median, s.p10, s.p90, s.n) == (3.0, 1.4, 4.6, 5)
    assert s.cv == pytest.approx(1.5811 / 3, abs=1e-3)
    assert Spread.of([7.0]).cv == 0.0
    with pytest.raises(ValueError):
        Spread.of([])


def test_gpu_rows_come_from_the_table_for_mapped_models(tmp_path: Path) -> None:
    table = tmp_path / "gpu.csv"
    lines = ["model,batch,sm_percent,quota_percent,latency_ms"]
    grid = [(b, s, q) for b in (1, 2, 4, 8) for s in (5, 25, 50, 100) for q in (10, 50, 100)]
    lines += [f"resnet18,{b},{s},{q},{b + s / 100 + q / 1000}" for b, s, q in grid]
    table.write_text("\n".join(lines) + "\n")
    rows, notes = read_gpu_table(table, {"backbone": "resnet18", "other": "vgg11"})
    assert len(rows) == 4 * 3 * 2  # batches x SM 25/50/100 x quota 50/100
    assert {r.stage for r in rows} == {"backbone"}
    assert {(r.sm_percent, r.quota_percent) for r in rows} == {(s, q) for s in (25, 50, 100) for q in (50, 100)}
    assert all(r.source == "measured elsewhere: RaPP V100 table" for r in rows)
    assert any("vgg11" in n for n in notes)
    assert table_model("resnet18_like") == "resnet18" and table_model("small_cnn") is None
    assert table_model("mobilenet_v2_like") == "mobilenet_v2" and table_model("densenet121") == "densenet121"
