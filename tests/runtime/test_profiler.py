"""``shoal profile`` on a tiny two-stage app: through the Python API and the CLI, on the real runtime.

No timing is asserted: only that every point was measured and that the file is a valid profile.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from shoal.app import INPUT, App, run_stages
from shoal.cli import cli
from shoal.predict import Profile, read_profile, validate_profile
from shoal.runtime.profiler import ProfileOptions, default_gpu_table, group_app, load_target, profile_app

TINY = """
import numpy as np
import shoal

tiny = shoal.App("tiny", slo="p99:50ms")


@tiny.stage(vcpu=0.5, memory_mb=64)
def scale(x):
    return np.asarray(x, np.float32) * 2


def weights():
    return np.arange(64, dtype=np.float32).reshape(16, 4)


@tiny.stage(after=scale, load=weights, vcpu=1, memory_mb=64, batch=True)
def project(w, x):
    return x @ w


GPU_MODELS = {"project": "resnet18_like"}


def profile_inputs(size):
    return np.ones(({"small": 1, "medium": 4, "large": 32}[size], 16), np.float32)
"""

LIGHT = ("numpy", "msgpack", "threadpoolctl")  # no ONNX Runtime in the zygote: starts faster


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("profile") / "tiny_app.py"
    path.write_text(TINY)
    return path


@pytest.fixture(scope="module")
def profile(tiny_file: Path) -> Profile:
    target = load_target(f"{tiny_file}:tiny")
    opts = ProfileOptions(
        preload=LIGHT, hop_bytes=(1 << 10, 1 << 20), settle_s=0.05, gpu_table=default_gpu_table()
    ).quick()
    seen: list[tuple[int, int, str]] = []
    prof = profile_app(
        target.app,
        target.inputs,
        opts,
        gpu_models=target.gpu_models,
        source=str(tiny_file),
        on_point=lambda done, total, label: seen.append((done, total, label)),
    )
    assert [d for d, _, _ in seen] == list(range(len(seen))) and seen[0][1] == len(seen)
    return prof


def test_every_stage_is_measured_at_each_vcpu_batch_and_input_size(profile: Profile) -> None:
    sizes = ("small", "medium", "large")
    got = {(p.name, p.vcpu, p.batch, p.input_size) for p in profile.stages}
    want = {("scale", 1.0, 1, s) for s in sizes} | {("project", 1.0, b, s) for b in (1, 4) for s in sizes}
    assert got == want
    assert all(p.plan == "fine" and p.latency_ms.n == 3 for p in profile.stages)
    rows4 = profile.point("project", batch=4, input_size="large")
    assert rows4 is not None and rows4.batching == "rows"
    assert rows4.input_bytes > 4 * 32 * 16 * 4  # four copies of the 32-row input, as the data plane carries them
    assert rows4.output_bytes > 4 * 32 * 4 * 4
    assert all(p.peak_rss_mb > 0 and p.busy_ms.median > 0 for p in profile.points)


def test_the_coarse_function_is_measured_with_dynamic_batching(profile: Profile) -> None:
    got = {(p.name, p.plan, p.batch, p.batching) for p in profile.functions}
    assert got == {("scale+project", "coarse", b, "requests") for b in (1, 4)}
    assert all(p.stages == ("scale", "project") for p in profile.functions)


def test_hops_and_the_file_validate(profile: Profile, tmp_path: Path) -> None:
    assert [h.bytes for h in profile.hops] == [1 << 10, 1 << 20]
    assert all(h.extra_hops == 1 and h.fine_ms.n == 9 for h in profile.hops)
    assert profile.machine["cores"] >= 1 and profile.settings.vcpus == (1.0,)
    back = validate_profile(json.loads(profile.dumps()))
    assert back == profile


def test_gpu_rows_come_from_the_shared_table_for_mapped_stages(profile: Profile) -> None:
    if default_gpu_table() is None:
        pytest.skip("../shared/gpu-profiles/rapp_v100_latency.csv is not here")
    assert profile.gpu, profile.notes
    assert {g.stage for g in profile.gpu} == {"project"} and {g.model for g in profile.gpu} == {"resnet18"}
    assert {g.batch for g in profile.gpu} == {1, 2, 4, 8}
    assert all(g.source == "measured elsewhere: RaPP V100 table" and g.latency_ms > 0 for g in profile.gpu)


def test_the_cli_writes_a_valid_profile_and_prints_it_as_json(tiny_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "tiny.json"
    args = ["profile", f"{tiny_file}:tiny", "--quick", "--no-hops", "--plan", "coarse", "--out", str(out)]
    r = CliRunner().invoke(cli, [*args, "--output", "json"])
    assert r.exit_code == 0, r.output
    printed = validate_profile(json.loads(r.stdout))
    written = read_profile(out)
    assert printed == written
    assert {(p.name, p.batch) for p in written.stages} == {("scale", 1), ("project", 1), ("project", 4)}
    assert {p.plan for p in written.functions} == {"coarse"} and not written.hops


def test_the_cli_says_how_to_give_inputs_when_there_are_none(tmp_path: Path) -> None:
    path = tmp_path / "no_inputs.py"
    path.write_text(TINY.split("GPU_MODELS")[0])
    r = CliRunner().invoke(cli, ["profile", str(path), "--quick"])
    assert r.exit_code == 2
    assert "profile_inputs" in r.output


def diamond() -> App:
    """a -> (b, c) -> d, with values that show which argument went where."""
    app = App("diamond")
    app.stage(lambda x: x + 1, name="a")
    app.stage(lambda a: a * 10, name="b", after="a")
    app.stage(lambda a: a * 100, name="c", after="a")
    app.stage(lambda b, c: (b, c), name="d", after=("b", "c"))
    return app


def text_like() -> App:
    """tokenize -> encode, and (tokenize, encode) -> classify: the shape of examples/text_pipeline.py."""
    app = App("text_like")
    app.stage(lambda x: np.arange(3) + x, name="tokenize")
    app.stage(lambda t: t * 10, name="encode", after="tokenize")
    app.stage(lambda t, e: (t.tolist(), e.tolist()), name="classify", after=("tokenize", "encode"))
    return app


@pytest.mark.parametrize(
    ("make", "group", "expect"),
    [
        (diamond, ["d"], lambda v: v["d"]),  # fan-in: the request carries [b, c]
        (diamond, ["b", "d"], lambda v: v["d"]),  # d takes b from inside the group and c from the request
        (diamond, ["a", "b"], lambda v: [v["a"], v["b"]]),  # two outputs: a goes on to c, b to d
        (diamond, ["a", "b", "c", "d"], lambda v: v["d"]),
        (text_like, ["classify"], lambda v: v["classify"]),
        (text_like, ["encode", "classify"], lambda v: v["classify"]),  # one outside value, used twice
    ],
)
def test_a_group_runs_alone_as_it_runs_in_the_app(make: Any, group: list[str], expect: Any) -> None:
    app = make()
    values = run_stages(app, list(app.stages), {INPUT: np.int64(1)}, {})
    wrapper, ext = group_app(app, group, "w")
    payload = values[ext[0]] if len(ext) == 1 else [values[u] for u in ext]
    assert wrapper.run(payload) == expect(values)
