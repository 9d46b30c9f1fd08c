"""The zoo's models are valid ONNX, run in ONNX Runtime with the expected shapes, and are seeded deterministically."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
import pytest

from shoal.zoo import GraphBuilder, available_gpu_provider, mobilenet_v2_like, onnx_session, resnet18_like, small_cnn
from shoal.zoo.session import threads_from_env

# Narrow variants keep the suite fast; the topology (and so the code under test) is the same as full width.
MODELS: dict[str, tuple[Callable[..., bytes], dict, int]] = {
    "small_cnn": (small_cnn, {"num_classes": 10}, 64),
    "resnet18_like": (resnet18_like, {"num_classes": 20, "width": 16}, 64),
    "resnet18_like_folded": (resnet18_like, {"num_classes": 20, "width": 16, "fold_bn": True}, 64),
    "mobilenet_v2_like": (mobilenet_v2_like, {"num_classes": 20, "width_mult": 0.5}, 64),
}


def _run(model: bytes, batch: int, size: int, seed: int = 1) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((batch, 3, size, size)).astype(np.float32)
    return onnx_session(model).run(["logits"], {"input": x})[0]


@pytest.fixture(scope="module", params=sorted(MODELS))
def built(request: pytest.FixtureRequest) -> tuple[str, bytes]:
    fn, kwargs, _ = MODELS[request.param]
    return request.param, fn(**kwargs)


def test_model_is_valid_onnx_with_dynamic_batch(built: tuple[str, bytes]) -> None:
    _, model = built
    proto = onnx.load_from_string(model)
    onnx.checker.check_model(proto, full_check=True)
    (inp,) = proto.graph.input
    (out,) = proto.graph.output
    assert (inp.name, out.name) == ("input", "logits")
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert inp.type.tensor_type.shape.dim[0].dim_param == "N"
    assert inp.type.tensor_type.shape.dim[1].dim_value == 3


def test_batch_of_two_gives_finite_logits_per_image(built: tuple[str, bytes]) -> None:
    name, model = built
    _, kwargs, size = MODELS[name]
    y = _run(model, batch=2, size=size)
    assert y.shape == (2, kwargs["num_classes"]) and y.dtype == np.float32
    assert np.isfinite(y).all() and y.std() > 0
    assert not np.allclose(y[0], y[1]), "different images should give different logits"


def test_batch_rows_match_single_images(built: tuple[str, bytes]) -> None:
    """Batching must not change a request's answer: the runtime batches requests of different clients together."""
    name, model = built
    size = MODELS[name][2]
    x = np.random.default_rng(3).standard_normal((2, 3, size, size)).astype(np.float32)
    sess = onnx_session(model)
    both = sess.run(["logits"], {"input": x})[0]
    one = sess.run(["logits"], {"input": x[1:]})[0]
    np.testing.assert_allclose(both[1:], one, rtol=1e-4, atol=1e-4)


def test_height_and_width_are_dynamic() -> None:
    model = small_cnn(num_classes=7)
    assert _run(model, batch=1, size=32).shape == (1, 7)
    assert _run(model, batch=1, size=96).shape == (1, 7)


def test_full_size_resnet18_has_resnet18_parameter_count() -> None:
    proto = onnx.load_from_string(resnet18_like())
    n = sum(int(np.prod(t.dims)) for t in proto.graph.initializer)
    # torchvision's resnet18 has 11,689,512 parameters; BatchNorm running stats add 9,600 here.
    assert 11_650_000 < n < 11_750_000
    assert sum(node.op_type == "Conv" for node in proto.graph.node) == 20  # 1 stem + 16 in blocks + 3 downsample


def test_mobilenet_uses_depthwise_convolutions() -> None:
    proto = onnx.load_from_string(mobilenet_v2_like(num_classes=10, width_mult=0.5))
    groups = [a.i for n in proto.graph.node if n.op_type == "Conv" for a in n.attribute if a.name == "group"]
    assert sum(g > 1 for g in groups) == 17  # one depthwise conv per inverted residual block


@pytest.mark.parametrize("fn", [small_cnn, mobilenet_v2_like])
def test_same_seed_same_bytes_and_outputs(fn: Callable[..., bytes]) -> None:
    kwargs = {"num_classes": 10} | ({"width_mult": 0.5} if fn is mobilenet_v2_like else {})
    a, b = fn(seed=5, **kwargs), fn(seed=5, **kwargs)
    assert a == b
    np.testing.assert_array_equal(_run(a, 2, 64), _run(b, 2, 64))


def test_different_seeds_different_weights() -> None:
    a, b = resnet18_like(num_classes=10, width=8, seed=0), resnet18_like(num_classes=10, width=8, seed=1)
    assert a != b
    assert not np.allclose(_run(a, 2, 64), _run(b, 2, 64))


def test_thread_count_comes_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    model = small_cnn()
    monkeypatch.delenv("SHOAL_THREADS", raising=False)
    opts = onnx_session(model).get_session_options()
    assert (opts.intra_op_num_threads, opts.inter_op_num_threads) == (1, 1)
    monkeypatch.setenv("SHOAL_THREADS", "3")
    assert onnx_session(model).get_session_options().intra_op_num_threads == 3
    assert onnx_session(model, threads=2).get_session_options().intra_op_num_threads == 2


def test_session_is_sequential_on_cpu_here() -> None:
    sess = onnx_session(small_cnn())
    import onnxruntime as ort

    assert sess.get_session_options().execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    if available_gpu_provider() is None:
        assert sess.get_providers() == ["CPUExecutionProvider"]


def test_gpu_memory_without_cuda_falls_back_to_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    if available_gpu_provider() is not None:
        pytest.skip("this machine has CUDA")
    monkeypatch.setenv("SHOAL_GPU_MEMORY_MB", "1024")
    assert onnx_session(small_cnn(), gpu=True).get_providers() == ["CPUExecutionProvider"]


@pytest.mark.parametrize(("raw", "threads"), [("", 1), ("1", 1), ("4", 4), ("0.5", 1), ("1.5", 2)])
def test_threads_from_env_rounds_fractional_shares_up(raw: str, threads: int) -> None:
    assert threads_from_env({"SHOAL_THREADS": raw}) == threads


@pytest.mark.parametrize("raw", ["0", "-1", "many", "nan", "inf"])
def test_threads_from_env_refuses_nonsense(raw: str) -> None:
    with pytest.raises(ValueError, match="SHOAL_THREADS"):
        threads_from_env({"SHOAL_THREADS": raw})


def test_builder_refuses_bad_layers() -> None:
    g = GraphBuilder("bad")
    x = g.input("input", 3)
    with pytest.raises(ValueError, match="group"):
        g.conv(x, 8, 3, group=2)
    with pytest.raises(ValueError, match="bn"):
        g.conv(x, 8, 3, bn="maybe")
    with pytest.raises(ValueError, match="cannot add"):
        g.add(x, g.conv(x, 8, 1))
    with pytest.raises(ValueError, match="needs an input and an output"):
        g.model()
    with pytest.raises(ValueError, match="num_classes"):
        small_cnn(num_classes=0)
