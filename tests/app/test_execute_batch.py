"""run_batch: the in-instance executor that calls batch=True stages once for several requests."""

import numpy as np
import pytest

from shoal.app import INPUT, App, StageFailed, run_batch


def make_app():
    app = App("b")
    calls = []

    @app.stage()
    def prep(x):
        return np.asarray(x, dtype=np.float64)

    @app.stage(after=prep, batch=True, load=lambda: 10.0)
    def model(scale, x):
        calls.append(x.shape)
        if np.any(x < 0):
            raise ValueError("negative input")
        return {"y": x * scale, "rows": np.full(x.shape[0], x.shape[0])}

    return app, calls


def run(app, inputs):
    states = {"model": 10.0}
    return run_batch(app, list(app.stages), [{INPUT: x} for x in inputs], states)


def test_requests_of_one_shape_share_one_call_and_get_their_own_rows_back():
    """Three requests of 1, 2 and 1 rows of width 3: one call of 4 rows, split back 1/2/1."""
    app, calls = make_app()
    xs = [np.ones((1, 3)), np.full((2, 3), 2.0), np.full((1, 3), 3.0)]
    out = run(app, xs)
    assert calls == [(4, 3)]
    for x, (values, timings) in zip(xs, out, strict=True):
        np.testing.assert_array_equal(values["model"]["y"], x * 10)
        assert list(values["model"]["rows"]) == [4] * len(x)
        assert set(timings) == {"prep", "model"}


def test_requests_of_different_shapes_are_called_in_separate_groups():
    app, calls = make_app()
    out = run(app, [np.ones((1, 3)), np.ones((1, 5)), np.ones((1, 3))])
    assert sorted(calls) == [(1, 5), (2, 3)]
    assert [v["model"]["y"].shape for v, _ in out] == [(1, 3), (1, 5), (1, 3)]


def test_a_failing_batched_call_fails_only_the_requests_in_it():
    app, _ = make_app()
    out = run(app, [np.ones((1, 3)), -np.ones((1, 3)), np.ones((1, 4))])
    assert isinstance(out[0][0], StageFailed) and isinstance(out[1][0], StageFailed)
    assert out[0][0].stage == "model" and "negative" in str(out[0][0])
    np.testing.assert_array_equal(out[2][0]["model"]["y"], np.full((1, 4), 10.0))


def test_a_single_request_calls_the_stage_with_its_own_array():
    app, calls = make_app()
    ((values, _),) = run(app, [np.ones((2, 3))])
    assert calls == [(2, 3)]
    assert values["model"]["y"].shape == (2, 3)


def test_a_batched_stage_must_return_one_row_per_input_row():
    app = App("bad")

    @app.stage(batch=True)
    def model(x):
        return x.sum(keepdims=True)

    out = run_batch(app, ["model"], [{INPUT: np.ones((1, 2))}, {INPUT: np.ones((1, 2))}], {})
    assert all(isinstance(v, StageFailed) for v, _ in out)
    with pytest.raises(ValueError, match="one row per input row"):
        raise out[0][0].error
