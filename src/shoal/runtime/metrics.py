"""Prometheus metrics of one runtime, served by the gateway at ``/metrics``.

Each :class:`Metrics` has its own ``CollectorRegistry`` (never the process-global default), so that several runtimes
in one process, as in the tests, do not clash over series names.
"""

from __future__ import annotations

import contextlib
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from shoal.runtime.meter import RequestRecord

__all__ = ["LATENCY_BUCKETS", "Metrics"]

#: Seconds, 1 ms to 30 s: dense where interactive inference SLOs sit (tens to hundreds of ms), sparse beyond.
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.5,
    0.75,
    1.0,
    1.5,
    2.5,
    5.0,
    10.0,
    20.0,
    30.0,
)


class Metrics:
    """The runtime's Prometheus series. Cheap to update from the event loop; ``render`` is for the scrape."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "shoal_requests_total", "Requests answered, by app and status", ["app", "status"], registry=r
        )
        self.latency = Histogram(
            "shoal_request_latency_seconds",
            "End-to-end request latency as the gateway saw it",
            ["app"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.stage_exec = Histogram(
            "shoal_stage_exec_seconds",
            "Execution time of one stage inside its instance",
            ["app", "stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.cold_starts = Counter("shoal_cold_starts_total", "Instances cold-started", ["function"], registry=r)
        self.instances = Gauge(
            "shoal_instances", "Instances by state (starting, ready)", ["function", "state"], registry=r
        )
        self.queue_length = Gauge("shoal_queue_length", "Requests waiting for an instance", ["function"], registry=r)
        self.in_flight = Gauge("shoal_in_flight", "Requests running in instances", ["function"], registry=r)
        # The meter keeps cumulative dollars; they only grow, so they are counters advanced by the difference.
        self.user_bill = Counter("shoal_user_bill_usd_total", "User bill so far (pay-per-use model), USD", registry=r)
        self.resource_cost = Counter(
            "shoal_resource_cost_usd_total", "Resource cost so far (allocated instance-seconds), USD", registry=r
        )
        self._last_bill = 0.0
        self._last_cost = 0.0
        # Labelled children, looked up once: prometheus_client's labels() costs ~5 us a call, on every request.
        self._children: dict[tuple[str, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (metric._name, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def observe_request(self, rec: RequestRecord) -> None:
        """Count the request by status and observe its latency and each stage's execution time."""
        self._child(self.requests, rec.app, str(rec.status)).inc()
        self._child(self.latency, rec.app).observe(rec.latency_s)
        for stage, seconds in rec.exec_s.items():
            self._child(self.stage_exec, rec.app, stage).observe(seconds)

    def cold_start(self, function: str) -> None:
        """Count one cold start of ``function``."""
        self.cold_starts.labels(function=function).inc()

    def set_pool(self, function: str, starting: int, ready: int, queued: int, in_flight: int) -> None:
        """Set the pool gauges of ``function`` to the pool's current state."""
        self.instances.labels(function=function, state="starting").set(starting)
        self.instances.labels(function=function, state="ready").set(ready)
        self.queue_length.labels(function=function).set(queued)
        self.in_flight.labels(function=function).set(in_flight)

    def forget_function(self, function: str) -> None:
        """Drop the pool series of a function that a plan switch removed, so it does not linger at its last value."""
        for gauge, labels in (
            (self.instances, (function, "starting")),
            (self.instances, (function, "ready")),
            (self.queue_length, (function,)),
            (self.in_flight, (function,)),
        ):
            with contextlib.suppress(KeyError):  # older prometheus_client raises on an absent series
                gauge.remove(*labels)
            self._children.pop((gauge._name, *labels), None)

    def set_costs(self, bill_usd: float, cost_usd: float) -> None:
        """Bring the dollar counters up to the meter's cumulative totals (a total below the last one is ignored)."""
        if bill_usd > self._last_bill:
            self.user_bill.inc(bill_usd - self._last_bill)
            self._last_bill = bill_usd
        if cost_usd > self._last_cost:
            self.resource_cost.inc(cost_usd - self._last_cost)
            self._last_cost = cost_usd

    def render(self) -> tuple[bytes, str]:
        """The exposition body and its content type, for the gateway's ``/metrics`` response."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
