"""Prometheus metrics: the expected series, per-runtime registries, and monotone dollar counters."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from shoal.runtime.meter import RequestRecord
from shoal.runtime.metrics import Metrics


def rec(status: int = 200, latency_s: float = 0.042) -> RequestRecord:
    return RequestRecord(
        request_id="r1",
        app="pipe",
        plan="coarse",
        t_arrival=0.0,
        latency_s=latency_s,
        ok=status == 200,
        status=status,
        queue_wait_s=0.0,
        cold_start_s=0.0,
        exec_s={"pre": 0.01, "model": 0.03},
        hop_s=0.002,
        functions=["all"],
        billed_s={"all": 0.04},
    )


def samples(m: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, _ = m.render()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(body.decode())
        for s in fam.samples
    }


def test_render_contains_the_expected_series() -> None:
    m = Metrics()
    m.observe_request(rec())
    m.observe_request(rec())
    m.observe_request(rec(status=503, latency_s=2.0))
    m.cold_start("all")
    m.set_pool("all", starting=1, ready=2, queued=3, in_flight=4)
    m.set_costs(bill_usd=0.5, cost_usd=1.25)
    body, ctype = m.render()
    assert ctype == CONTENT_TYPE_LATEST
    text = body.decode()
    for name in (
        "shoal_requests_total",
        "shoal_request_latency_seconds_bucket",
        "shoal_stage_exec_seconds_bucket",
        "shoal_cold_starts_total",
        "shoal_instances",
        "shoal_queue_length",
        "shoal_in_flight",
        "shoal_user_bill_usd_total",
        "shoal_resource_cost_usd_total",
    ):
        assert name in text, name
    s = samples(m)
    assert s[("shoal_requests_total", (("app", "pipe"), ("status", "200")))] == 2
    assert s[("shoal_requests_total", (("app", "pipe"), ("status", "503")))] == 1
    assert s[("shoal_request_latency_seconds_count", (("app", "pipe"),))] == 3
    assert s[("shoal_request_latency_seconds_bucket", (("app", "pipe"), ("le", "0.05")))] == 2
    assert s[("shoal_request_latency_seconds_bucket", (("app", "pipe"), ("le", "0.001")))] == 0
    assert s[("shoal_request_latency_seconds_bucket", (("app", "pipe"), ("le", "30.0")))] == 3
    assert s[("shoal_stage_exec_seconds_count", (("app", "pipe"), ("stage", "model")))] == 3
    assert s[("shoal_cold_starts_total", (("function", "all"),))] == 1
    assert s[("shoal_instances", (("function", "all"), ("state", "starting")))] == 1
    assert s[("shoal_instances", (("function", "all"), ("state", "ready")))] == 2
    assert s[("shoal_queue_length", (("function", "all"),))] == 3
    assert s[("shoal_in_flight", (("function", "all"),))] == 4
    assert s[("shoal_user_bill_usd_total", ())] == 0.5
    assert s[("shoal_resource_cost_usd_total", ())] == 1.25


def test_costs_only_advance() -> None:
    m = Metrics()
    m.set_costs(1.0, 2.0)
    m.set_costs(3.0, 2.5)
    m.set_costs(2.0, 1.0)  # a smaller total (a restarted meter) does not move a counter backwards
    s = samples(m)
    assert s[("shoal_user_bill_usd_total", ())] == 3.0
    assert s[("shoal_resource_cost_usd_total", ())] == 2.5


def test_each_runtime_has_its_own_registry_and_functions_can_be_forgotten() -> None:
    a, b = Metrics(), Metrics()  # the same series names twice in one process must not clash
    a.cold_start("f")
    assert ("shoal_cold_starts_total", (("function", "f"),)) not in samples(b)
    a.set_pool("f", 0, 1, 0, 0)
    a.forget_function("f")
    a.forget_function("never-seen")
    assert not any(name in {"shoal_instances", "shoal_queue_length"} for name, _ in samples(a))
