"""The HTTP gateway against a real ``shoal serve`` process: formats, headers, refusals and faults.

Every test talks to a real server (uvicorn, zygote, instance processes, shared memory) through real HTTP; faults
are real too (SIGKILL, a stage that raises, a load that fails, a stage that runs past its timeout).
"""

from __future__ import annotations

import io
import json
import os
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
from apps_for_tests import chain3_reference, ref
from prometheus_client.parser import text_string_to_metric_families

from shoal.runtime.dataplane import EXT_SHM, decode_client, encode_client
from shoal.runtime.server import is_loopback
from shoal.testing import ServerProcess, wait_until

NPY = "application/x-npy"
MSGPACK = "application/msgpack"
IMAGE_APP = str(Path(__file__).resolve().parents[2] / "examples" / "image_pipeline.py")


def npy_bytes(arr: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


def function_status(srv: ServerProcess, app: str, function: str) -> dict[str, Any]:
    for a in srv.status()["apps"]:
        if a["app"] == app:
            for f in a["functions"]:
                if f["function"] == function:
                    return f
    raise AssertionError(f"no function {app}/{function} in /status")


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture(scope="module")
def echo_srv() -> Iterator[ServerProcess]:
    with ServerProcess(ref("echo"), "coarse", "--max-body-mb", "1") as srv:
        yield srv


@pytest.fixture(scope="module", params=["fine", "coarse"])
def chain_srv(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    with ServerProcess(ref("chain3"), request.param) as srv:
        yield srv


# -- formats --------------------------------------------------------------------------------------------------------
def test_json_in_json_out_with_timing_headers(echo_srv: ServerProcess) -> None:
    value = {"a": [1, 2.5, None, True], "b": {"c": "text"}}
    r = echo_srv.invoke("echo", value)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    doc = r.json()
    assert doc["output"] == value
    rid = r.headers["x-request-id"]
    assert rid and doc["request_id"] == rid
    timing = json.loads(r.headers["x-shoal-timing"])
    assert timing == doc["timing"]
    for key in ("queue_ms", "cold_start_ms", "hop_ms", "total_ms"):
        assert isinstance(timing[key], int | float) and timing[key] >= 0, key
    assert set(timing["exec_ms"]) == {"identity"}
    assert timing["exec_ms"]["identity"] >= 0
    assert "server-timing" in r.headers


def test_client_request_id_is_echoed(echo_srv: ServerProcess) -> None:
    r = echo_srv.invoke("echo", 1, headers={"x-request-id": "my-req-42"})
    assert r.status_code == 200
    assert r.headers["x-request-id"] == "my-req-42"
    assert r.json()["request_id"] == "my-req-42"
    bad = echo_srv.client.post("/apps/echo/invoke", content=b"{", headers={"x-request-id": "my-req-43"})
    assert bad.status_code == 400
    assert bad.headers["x-request-id"] == "my-req-43" and bad.json()["request_id"] == "my-req-43"


def test_npy_round_trip_through_echo(echo_srv: ServerProcess) -> None:
    x = np.arange(12, dtype=np.int16).reshape(3, 4)
    r = echo_srv.client.post("/apps/echo/invoke", content=npy_bytes(x), headers={"content-type": NPY})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == NPY  # the reply takes the request's type when Accept says nothing
    y = np.load(io.BytesIO(r.content), allow_pickle=False)
    assert y.dtype == x.dtype
    np.testing.assert_array_equal(y, x)
    assert "exec_ms" in json.loads(r.headers["x-shoal-timing"])


def test_msgpack_round_trip_through_echo(echo_srv: ServerProcess) -> None:
    value = {"img": np.arange(6, dtype=np.uint8).reshape(2, 3), "meta": {"k": [1, "two", 3.0]}}
    r = echo_srv.client.post(
        "/apps/echo/invoke", content=encode_client(value), headers={"content-type": MSGPACK, "accept": MSGPACK}
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == MSGPACK
    doc = decode_client(r.content)
    out = doc["output"]
    np.testing.assert_array_equal(out["img"], value["img"])
    assert out["img"].dtype == np.uint8
    assert out["meta"] == value["meta"]
    assert doc["request_id"] == r.headers["x-request-id"]


def test_chain3_npy_1mb_matches_numpy(chain_srv: ServerProcess) -> None:
    x = np.random.default_rng(7).standard_normal(1 << 17)  # 1 MiB of float64
    r = chain_srv.client.post("/apps/chain3/invoke", content=npy_bytes(x), headers={"content-type": NPY, "accept": NPY})
    assert r.status_code == 200, r.text
    y = np.load(io.BytesIO(r.content), allow_pickle=False)
    assert y.dtype == np.float64 and y.shape == x.shape
    np.testing.assert_array_equal(y, chain3_reference(x))
    timing = json.loads(r.headers["x-shoal-timing"])
    assert set(timing["exec_ms"]) == {"a", "b", "c"}
    assert len(timing["functions"]) == (3 if timing["plan"] == "fine" else 1)


def test_chain3_msgpack_matches_numpy(chain_srv: ServerProcess) -> None:
    x = np.random.default_rng(8).integers(-1000, 1000, size=(64, 33), dtype=np.int32)
    r = chain_srv.client.post(
        "/apps/chain3/invoke", content=encode_client(x), headers={"content-type": MSGPACK, "accept": MSGPACK}
    )
    assert r.status_code == 200, r.text
    out = decode_client(r.content)["output"]
    np.testing.assert_array_equal(out, chain3_reference(x))
    assert out.dtype == chain3_reference(x).dtype


def test_chain3_json_list(chain_srv: ServerProcess) -> None:
    r = chain_srv.invoke("chain3", [1, 2, 3])
    assert r.status_code == 200, r.text
    assert r.json()["output"] == [1, 3, 5]


# -- refusals ---------------------------------------------------------------------------------------------------------
def test_malformed_json_is_400_naming_the_problem(echo_srv: ServerProcess) -> None:
    r = echo_srv.client.post("/apps/echo/invoke", content=b'{"a": [1, 2', headers={"content-type": "application/json"})
    assert r.status_code == 400
    err = r.json()["error"]
    assert "malformed" in err and "json" in err.lower()
    assert r.json()["request_id"] == r.headers["x-request-id"]


class _Trap:
    """Unpickling this creates the file at ``path``: proof of whether a server unpickled a body."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


def test_pickled_npy_is_refused_and_not_unpickled(echo_srv: ServerProcess, tmp_path: Path) -> None:
    control = tmp_path / "control"
    loaded = np.load(io.BytesIO(npy_bytes(np.array([_Trap(control)], dtype=object), True)), allow_pickle=True)
    loaded[0].close()
    assert control.exists()  # the trap works: unpickling it does create its file

    marker = tmp_path / "server-unpickled-me"
    body = npy_bytes(np.array([_Trap(marker), 1], dtype=object), allow_pickle=True)
    r = echo_srv.client.post("/apps/echo/invoke", content=body, headers={"content-type": NPY})
    assert r.status_code == 400
    assert "malformed" in r.json()["error"]
    assert not marker.exists()


def test_msgpack_shm_reference_from_client_is_400(echo_srv: ServerProcess) -> None:
    ext = msgpack.ExtType(EXT_SHM, msgpack.packb(["shoal-p1-deadbeef0000", "<f8", [4]]))
    body = msgpack.packb({"x": ext}, use_bin_type=True)
    r = echo_srv.client.post("/apps/echo/invoke", content=body, headers={"content-type": MSGPACK})
    assert r.status_code == 400
    assert "extension type 2" in r.json()["error"]


def test_body_over_the_limit_is_413(echo_srv: ServerProcess) -> None:
    big = b"0" * ((1 << 20) + 1)  # the server runs with --max-body-mb 1
    r = echo_srv.client.post("/apps/echo/invoke", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert str(1 << 20) in r.json()["error"]

    def chunks() -> Iterator[bytes]:  # no content-length: the limit is enforced while streaming
        for _ in range(20):
            yield b"0" * (64 << 10)

    r = echo_srv.client.post("/apps/echo/invoke", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert echo_srv.invoke("echo", "still fine").status_code == 200


def test_unknown_app_is_404(echo_srv: ServerProcess) -> None:
    r = echo_srv.invoke("nope", 1)
    assert r.status_code == 404
    assert "nope" in r.json()["error"] and "echo" in r.json()["error"]


def test_unsupported_content_type_is_415(echo_srv: ServerProcess) -> None:
    r = echo_srv.client.post("/apps/echo/invoke", content=b"hello", headers={"content-type": "text/plain"})
    assert r.status_code == 415
    assert "text/plain" in r.json()["error"]


def test_npy_accept_for_a_dict_output_is_406(echo_srv: ServerProcess) -> None:
    r = echo_srv.invoke("echo", {"not": "an array"}, headers={"accept": NPY})
    assert r.status_code == 406
    assert r.json()["request_id"] == r.headers["x-request-id"]


def test_wrong_shape_for_array_spec_is_400() -> None:
    with ServerProcess(IMAGE_APP, "fine") as srv:
        img = np.zeros((16, 16, 4), np.uint8)
        r = srv.client.post("/apps/image/invoke", content=npy_bytes(img), headers={"content-type": NPY})
        assert r.status_code == 400
        assert "(16, 16, 4)" in r.json()["error"] and "3)" in r.json()["error"]
        r = srv.client.post(
            "/apps/image/invoke", content=npy_bytes(img[..., :3].astype(np.float32)), headers={"content-type": NPY}
        )
        assert r.status_code == 400
        assert "float32" in r.json()["error"]
        # The shape fits the spec, but the stage itself refuses it (InputError): still the client's fault, 400.
        r = srv.client.post(
            "/apps/image/invoke", content=npy_bytes(np.zeros((4, 4, 3), np.uint8)), headers={"content-type": NPY}
        )
        assert r.status_code == 400
        assert r.json()["stage"] == "preprocess" and "8x8" in r.json()["error"]


# -- read-outs --------------------------------------------------------------------------------------------------------
def test_metrics_serves_request_counter(echo_srv: ServerProcess) -> None:
    assert echo_srv.invoke("echo", 1).status_code == 200
    r = echo_srv.client.get("/metrics")
    assert r.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    assert "shoal_requests" in families  # the parser strips _total from counter names
    ok = [
        s
        for s in families["shoal_requests"].samples
        if s.name == "shoal_requests_total" and s.labels == {"app": "echo", "status": "200"}
    ]
    assert ok and ok[0].value >= 1


def test_apps_lists_the_deployment(echo_srv: ServerProcess) -> None:
    assert echo_srv.client.get("/apps").json() == {"echo": {"plan": "coarse", "slo": "p99:200ms"}}


def test_gpu_ask_runs_on_cpu_with_a_note() -> None:
    with ServerProcess(ref("gpu_ask")) as srv:
        status = srv.status()
        if status["gpus"]:
            pytest.skip("this machine has a GPU")
        assert any("gpu_ask/on_gpu" in n and "runs on CPU" in n for n in status["notes"]), status["notes"]
        r = srv.invoke("gpu_ask", 3)
        assert r.status_code == 200
        assert r.json()["output"] == {"x": 3, "cuda_visible_devices": ""}


# -- faults -----------------------------------------------------------------------------------------------------------
def test_stage_error_is_500_and_the_instance_stays_usable() -> None:
    # target 1: at the default 0.7 a fresh pool with one request in flight asks for a second instance (Knative's
    # panic rule), and the test counts cold starts to show the failing instance was not replaced
    with ServerProcess(ref("boom"), "coarse", "--target-concurrency", "1") as srv:
        warm = srv.invoke("boom", "hello")
        assert warm.status_code == 200 and warm.json()["output"] == "hello"
        first = warm.json()["timing"]["functions"]["fragile"]["instance"]
        cold_starts = function_status(srv, "boom", "fragile")["cold_starts"]

        r = srv.invoke("boom", "boom", headers={"x-request-id": "req-boom"})
        assert r.status_code == 500
        doc = r.json()
        assert doc["request_id"] == "req-boom" and r.headers["x-request-id"] == "req-boom"
        assert doc["stage"] == "fragile"
        assert "kaboom" in doc["error"] and "ValueError" in doc["error"] and "fragile" in doc["error"]

        again = srv.invoke("boom", "after")
        assert again.status_code == 200 and again.json()["output"] == "after"
        timing = again.json()["timing"]
        assert timing["functions"]["fragile"]["instance"] == first
        assert timing["cold_start_ms"] == 0
        fn = function_status(srv, "boom", "fragile")
        assert fn["cold_starts"] == cold_starts
        assert [i["id"] for i in fn["instances"]] == [first]


def test_kill9_mid_request_is_retried_on_another_instance() -> None:
    with ServerProcess(ref("sleepy")) as srv, ThreadPoolExecutor(1) as pool:
        pending = pool.submit(srv.invoke, "sleepy", 2.0)
        busy = wait_until(
            lambda: [i for i in srv.instances("sleepy") if i["in_flight"] == 1 and i["pid"]],
            timeout=30,
            message="an instance running the request",
        )
        victim = busy[0]
        os.kill(victim["pid"], signal.SIGKILL)
        r = pending.result(timeout=60)
        assert r.status_code == 200, r.text
        assert r.json()["output"] == 2.0
        served_by = r.json()["timing"]["functions"]["nap"]["instance"]
        assert served_by != victim["id"]
        ids = wait_until(
            lambda: [i["id"] for i in srv.instances("sleepy") if i["id"] != victim["id"]] or None,
            message="a replacement instance",
        )
        assert served_by in ids
        assert victim["id"] not in [i["id"] for i in srv.instances("sleepy")]
        assert gone(victim["pid"])


def test_second_death_is_503() -> None:
    with ServerProcess(ref("boom")) as srv:
        r = srv.invoke("boom", "die")  # the stage SIGKILLs its own process: on the first try and on the retry
        assert r.status_code == 503, r.text
        assert "died" in r.json()["error"]
        assert function_status(srv, "boom", "fragile")["cold_starts"] >= 2
        ok = srv.invoke("boom", "alive")
        assert ok.status_code == 200 and ok.json()["output"] == "alive"


def test_queue_full_is_429_with_retry_after() -> None:
    with (
        ServerProcess(ref("sleepy"), "coarse", "--max-instances", "1", "--queue-limit", "1") as srv,
        ThreadPoolExecutor(2) as pool,
    ):
        assert srv.invoke("sleepy", 0.01).status_code == 200  # one warm instance, the most it may have
        # 1.5 s each: time enough to see the first run and the second queue before the third is sent.
        running = pool.submit(srv.invoke, "sleepy", 1.5)
        wait_until(lambda: function_status(srv, "sleepy", "nap")["in_flight"] == 1, message="the first to run")
        queued = pool.submit(srv.invoke, "sleepy", 1.5)
        wait_until(lambda: function_status(srv, "sleepy", "nap")["queued"] == 1, message="the second to queue")
        refused = srv.invoke("sleepy", 1.5)
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        assert "queued" in refused.json()["error"]
        assert running.result(timeout=60).status_code == 200
        second = queued.result(timeout=60)
        assert second.status_code == 200
        assert second.json()["timing"]["queue_ms"] > 0
        assert function_status(srv, "sleepy", "nap")["cold_starts"] == 1


def test_timeout_is_504_and_the_instance_is_recycled() -> None:
    # target 1: at the default 0.7 the warm-up request's cold start can panic the pool to a second instance
    with ServerProcess(ref("sleepy"), "coarse", "--timeout", "0.5", "--target-concurrency", "1") as srv:
        warm = srv.invoke("sleepy", 0.01)
        assert warm.status_code == 200
        (inst,) = srv.instances("sleepy")
        r = srv.invoke("sleepy", 5)
        assert r.status_code == 504, r.text
        assert "timeout" in r.json()["error"]
        wait_until(lambda: gone(inst["pid"]), message=f"instance pid {inst['pid']} to exit")
        after = srv.invoke("sleepy", 0.01)
        assert after.status_code == 200
        assert after.json()["timing"]["functions"]["nap"]["instance"] != inst["id"]


def test_load_failure_is_503_naming_the_error() -> None:
    with ServerProcess(ref("bad_load")) as srv:
        r = srv.invoke("bad_load", 1)
        assert r.status_code == 503
        err = r.json()["error"]
        assert "FileNotFoundError" in err and "weights.onnx is missing" in err
        assert "weights.onnx is missing" in function_status(srv, "bad_load", "never")["last_error"]


# -- security ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("bind", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.20", False),
        ("example.com", False),
        ("", False),
    ],
)
def test_is_loopback(bind: str, loopback: bool) -> None:
    assert is_loopback(bind) is loopback


def test_token_guards_read_outs() -> None:
    with ServerProcess(ref("echo"), token="secret") as srv:
        import httpx

        for path in ("/status", "/metrics"):
            assert httpx.get(srv.url + path).status_code == 401
            assert httpx.get(srv.url + path, headers={"authorization": "Bearer wrong"}).status_code == 401
            assert srv.client.get(path).status_code == 200  # the client sends the token
        assert httpx.get(srv.url + "/healthz").status_code == 200
        assert srv.status()["apps"][0]["app"] == "echo"


def test_an_unsafe_client_request_id_is_replaced_not_echoed(echo_srv: ServerProcess) -> None:
    """The id goes back in a header and in the JSON body: anything but a plain token is replaced by our own."""
    r = echo_srv.client.post("/apps/echo/invoke", json=[1], headers={"x-request-id": 'bad"id\\x'})
    assert r.status_code == 200
    rid = r.headers["x-request-id"]
    assert rid != 'bad"id\\x' and r.json()["request_id"] == rid
