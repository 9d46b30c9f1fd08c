"""Dynamic batching on the real runtime: concurrent requests to a batch=True stage share calls, correctly."""

import numpy as np

import shoal
from shoal import FunctionConfig, Plan


def batched_app():
    app = shoal.App("batched")

    @app.stage(batch=True)
    def model(x):
        # Each row says how many rows the call had, so the test can see the batches.
        return np.concatenate([x * 2, np.full((x.shape[0], 1), x.shape[0], dtype=x.dtype)], axis=1)

    return app


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer():
    """One instance, batches of up to 4 waiting up to 0.5 s: eight requests go in two calls of four."""
    app = batched_app()
    cfg = FunctionConfig(max_batch_size=4, max_batch_wait_s=0.5, max_instances=1, min_instances=1)
    with shoal.local(app, Plan.coarse(app, default=cfg)) as svc:
        svc.invoke(np.zeros((1, 2)))  # the instance is warm before the burst
        futures = [svc.submit(np.full((1, 2), float(i))) for i in range(8)]
        results = [f.result(timeout=30) for f in futures]
    for i, r in enumerate(results):
        np.testing.assert_array_equal(r.output[:, :2], np.full((1, 2), 2.0 * i))
        assert r.timing["functions"]["model"]["batch"] == r.output[0, 2]
    assert max(r.timing["functions"]["model"]["batch"] for r in results) == 4


def test_without_batching_every_request_is_called_alone():
    app = batched_app()
    with shoal.local(app, Plan.coarse(app, default=FunctionConfig(max_instances=1))) as svc:
        results = [f.result(timeout=30) for f in [svc.submit(np.ones((1, 2))) for _ in range(5)]]
    assert {r.timing["functions"]["model"]["batch"] for r in results} == {1}
    assert {float(r.output[0, 2]) for r in results} == {1.0}


def test_a_lone_request_waits_at_most_the_batch_delay():
    """With room for 8 and nobody else coming, the request still goes, once its 50 ms wait is over."""
    app = batched_app()
    cfg = FunctionConfig(max_batch_size=8, max_batch_wait_s=0.05, min_instances=1)
    with shoal.local(app, Plan.coarse(app, default=cfg)) as svc:
        r = svc.call(np.ones((1, 2)), timeout=30)
    assert r.timing["functions"]["model"]["batch"] == 1
    np.testing.assert_array_equal(r.output[:, :2], np.full((1, 2), 2.0))
