"""The event kernel: time order, ties in scheduling order, heap events before arrivals at the same time."""

import pytest

from shoal.sim.kernel import Kernel


def test_events_run_in_time_order_and_ties_in_scheduling_order():
    k = Kernel()
    log = []
    for t, name in [(2.0, "c"), (1.0, "a"), (2.0, "d"), (1.0, "b"), (0.5, "first")]:
        k.at(t, log.append, name)
    k.run(until=10.0)
    assert log == ["first", "a", "b", "c", "d"]
    assert k.now == 10.0 and k.events == 5


def test_source_arrivals_merge_after_heap_events_at_equal_times():
    k = Kernel()
    log = []
    k.at(1.0, lambda _: log.append("heap@1"))
    k.at(3.0, lambda _: log.append("heap@3"))
    k.run(until=2.5, source=[0.5, 1.0, 2.0, 2.6], on_arrival=lambda i: log.append(f"arr{i}@{k.now}"))
    assert log == ["arr0@0.5", "heap@1", "arr1@1.0", "arr2@2.0"]  # 2.6 and the 3.0 event lie past `until`


def test_callbacks_schedule_more_events_and_runs_repeat_exactly():
    def trace():
        k = Kernel()
        log = []

        def ping(n):
            log.append((k.now, n))
            if n < 5:
                k.after(0.1 * n, ping, n + 1)
                k.after(0.1 * n, ping, n + 10)

        k.at(0.0, ping, 0)
        k.run(until=5.0)
        return log

    assert trace() == trace()
    assert len(trace()) == 11


def test_refuses_the_past():
    k = Kernel()
    k.at(1.0, lambda _: None)
    k.run(until=1.0)
    with pytest.raises(ValueError, match="past"):
        k.at(0.5, lambda _: None)
