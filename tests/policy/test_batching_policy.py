"""The dynamic-batching policy: full batches go at once, partial ones when the oldest request has waited enough."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.policy.batching import BatchDecision, decide_batch


def decide(**kw):
    args = dict(now=10.0, queued=1, oldest_arrival=10.0, free_slots=1, max_batch_size=4, max_wait_s=0.005)
    args.update(kw)
    return decide_batch(**args)


def test_no_batching_sends_each_request_at_once():
    assert decide(max_batch_size=1, max_wait_s=0.0) == BatchDecision(1)


def test_a_partial_batch_waits_for_the_oldest_requests_deadline():
    """Two requests wait, the batch holds four: the instance waits until the oldest has waited 5 ms."""
    assert decide(queued=2, now=10.001) == BatchDecision(0, wake_at=pytest.approx(10.005))


def test_a_partial_batch_goes_once_the_deadline_passes():
    assert decide(queued=2, now=10.005) == BatchDecision(2)


def test_a_full_batch_goes_at_once_and_takes_no_more_than_the_maximum():
    assert decide(queued=9, now=10.0) == BatchDecision(4)


def test_nothing_goes_without_a_free_instance_or_requests():
    assert decide(free_slots=0, queued=9) == BatchDecision(0)
    assert decide(queued=0) == BatchDecision(0)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        decide(max_batch_size=0)


@given(
    queued=st.integers(0, 100),
    size=st.integers(1, 32),
    wait=st.floats(0, 1),
    elapsed=st.floats(0, 2),
    slots=st.integers(0, 4),
)
def test_never_takes_more_than_queued_or_the_batch_size(queued, size, wait, elapsed, slots):
    d = decide_batch(
        now=elapsed, queued=queued, oldest_arrival=0.0, free_slots=slots, max_batch_size=size, max_wait_s=wait
    )
    assert 0 <= d.take <= min(queued, size)
    if d.take == 0 and queued and slots:
        assert d.wake_at is not None and d.wake_at > elapsed - 1e-9
