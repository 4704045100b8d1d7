"""Tests of the reader-to-caller handoff (``_session/inbox.py``): order, bounds, wake-ups."""

from __future__ import annotations

import threading
import time
from typing import Any, List

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from openai_ws._session.inbox import Failure, Inbox
from openai_ws.errors import ConsumerTooSlowError, ProtocolError, RequestTimeoutError


def test_inbox_delivers_in_order_and_ends_with_terminal() -> None:
    """Items come out in order; nothing is accepted after the terminal item."""
    inbox = Inbox(max_events=10, max_bytes=1000)
    assert inbox.put("a", 1)
    assert inbox.put("b", 1, terminal=True)
    assert not inbox.put("c", 1)
    assert inbox.get_all() == ["a", "b"]
    assert inbox.closed


def test_inbox_timeout_loses_nothing() -> None:
    """A timed-out get raises TimeoutError and a later get still sees the item."""
    inbox = Inbox(max_events=10, max_bytes=1000)
    with pytest.raises(TimeoutError):
        inbox.get_all(time.monotonic() + 0.01)
    with pytest.raises(RequestTimeoutError):
        inbox.get_all(time.monotonic() - 1)
    inbox.put("late", 4)
    assert inbox.get_all(time.monotonic() + 1) == ["late"]


def test_inbox_overflow_fails_only_the_consumer() -> None:
    """Too many queued events fail the inbox with ConsumerTooSlowError, never block."""
    inbox = Inbox(max_events=3, max_bytes=10_000)
    results = [inbox.put(i, 1) for i in range(5)]
    assert results == [True, True, True, False, False]
    (item,) = inbox.get_all()
    assert isinstance(item, Failure) and isinstance(item.exc, ConsumerTooSlowError)


def test_inbox_byte_bound() -> None:
    """The byte bound trips before the event bound when events are large."""
    inbox = Inbox(max_events=100, max_bytes=10)
    assert inbox.put("a", 6)
    assert not inbox.put("b", 6)
    (item,) = inbox.get_all()
    assert isinstance(item, Failure)


def test_inbox_wakes_a_blocked_waiter() -> None:
    """A put from another thread wakes a consumer blocked without a deadline."""
    inbox = Inbox(max_events=10, max_bytes=1000)
    got: list = []
    thread = threading.Thread(target=lambda: got.extend(inbox.get_all()))
    thread.start()
    time.sleep(0.05)
    inbox.fail(RuntimeError("x"))
    thread.join(2)
    assert not thread.is_alive()
    assert isinstance(got[0], Failure)


def test_deferred_items_wake_the_consumer_on_wake() -> None:
    """A deferred put leaves the consumer asleep until wake(); terminal items wake at once."""
    inbox = Inbox(max_events=10, max_bytes=1000)
    got: list = []
    thread = threading.Thread(target=lambda: got.append(inbox.get_all()))
    thread.start()
    time.sleep(0.05)
    inbox.put("a", 1, defer=True)
    inbox.put("b", 1, defer=True)
    time.sleep(0.05)
    assert got == []  # still asleep: nobody said wake
    inbox.wake()
    thread.join(2)
    assert got == [["a", "b"]]
    waiter = threading.Thread(target=lambda: got.append(inbox.get_all()))
    waiter.start()
    time.sleep(0.05)
    inbox.put("end", 1, terminal=True, defer=True)
    waiter.join(2)
    assert not waiter.is_alive() and got[-1] == ["end"]


@pytest.mark.parametrize("terminal", [False, True])
def test_an_event_bigger_than_the_whole_byte_bound_is_reported_too_big(terminal: bool) -> None:
    """One event costing more than max_bytes fails the request as too big, not too slow."""
    inbox = Inbox(max_events=100, max_bytes=1000)
    assert inbox.put("small", 10)
    assert not inbox.put("huge", 5000, terminal=terminal)
    (item,) = inbox.get_all()  # the queued events are dropped with it
    assert isinstance(item, Failure)
    assert isinstance(item.exc, ProtocolError)
    assert not isinstance(item.exc, ConsumerTooSlowError)
    assert "max_queue_bytes=1000" in str(item.exc) and "5000" in str(item.exc)
    assert inbox.closed and not inbox.put("later", 1)


def wait_for_first_batch(inbox: Inbox, puts: list) -> list:
    """Start a blocked consumer, make the puts, and return what it was woken with."""
    got: list = []
    thread = threading.Thread(target=lambda: got.append(inbox.get_all()))
    thread.start()
    time.sleep(0.05)
    for item, nbytes in puts:
        inbox.put(item, nbytes, defer=True)
    thread.join(2)
    if thread.is_alive():  # not woken: end it so the test fails cleanly
        inbox.fail(RuntimeError("never woken"))
        thread.join(2)
    return got[0]


def test_a_result_consumer_is_woken_when_its_queue_is_half_full_of_events() -> None:
    """A wake_on_terminal consumer is woken at half the event bound, so a long answer fits."""
    inbox = Inbox(max_events=10, max_bytes=10_000, wake_on_terminal=True)
    got = wait_for_first_batch(inbox, [(i, 1) for i in range(5)])
    assert got == [0, 1, 2, 3, 4]


def test_a_result_consumer_is_woken_when_its_queue_is_half_full_of_bytes() -> None:
    """The same at half the byte bound."""
    inbox = Inbox(max_events=100, max_bytes=100, wake_on_terminal=True)
    got = wait_for_first_batch(inbox, [("a", 30), ("b", 30)])
    assert got == ["a", "b"]


@settings(max_examples=400, deadline=None)
@given(
    max_events=st.integers(1, 8),
    max_bytes=st.integers(1, 80),
    before=st.lists(st.integers(0, 12), max_size=6),
    runs=st.lists(st.lists(st.integers(0, 12), max_size=8), max_size=4),
    closed=st.booleans(),
)
@example(max_events=1, max_bytes=60, before=[], runs=[[0, 0]], closed=False)  # one event over
@example(max_events=9, max_bytes=10, before=[4], runs=[[3, 3, 1]], closed=False)  # one byte over
def test_put_events_is_the_same_as_one_deferred_put_per_event(
    max_events: int, max_bytes: int, before: List[int], runs: List[List[int]], closed: bool
) -> None:
    """The reader's run form (``put_events``) leaves an inbox exactly as a deferred put of
    each event would: the same items, the same bound failure, the same answers."""
    batched = Inbox(max_events=max_events, max_bytes=max_bytes)
    single = Inbox(max_events=max_events, max_bytes=max_bytes)
    for inbox in (batched, single):
        for n, cost in enumerate(before):
            inbox.put(("before", n), cost)
        if closed:
            inbox.put("end", 0, terminal=True)
    for r, costs in enumerate(runs):
        items = [(r, n) for n in range(len(costs))]
        one_by_one = [single.put(item, cost, defer=True) for item, cost in zip(items, costs)]
        assert batched.put_events(items, costs) == all(one_by_one)
    assert batched.closed == single.closed
    assert len(batched) == len(single)
    if len(single):
        got, want = batched.get_all(0), single.get_all(0)
        assert [_shape(x) for x in got] == [_shape(x) for x in want]


def _shape(item: Any) -> Any:
    """An item, or a failure's exception type and text (the objects differ)."""
    if isinstance(item, Failure):
        return type(item.exc), str(item.exc)
    return item
