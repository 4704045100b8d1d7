"""Pure tests of the routing core (``_protocol/routing.py``): lanes, routing, close classes."""

from __future__ import annotations

from typing import Any, Optional

from openai_ws._protocol.routing import (
    MAX_LANE_NAMES,
    CloseKind,
    ConnectionCore,
    classify_close,
    is_lane_rejection,
)

# Events reach the core decoded but untyped: plain dicts, as here.


def _response(rid: str, status: str = "in_progress") -> dict:
    return {
        "id": rid,
        "object": "response",
        "created_at": 1,
        "status": status,
        "model": "m",
        "output": [],
    }


def created(rid: str, lane: Optional[str] = None) -> Any:
    raw: dict = {"type": "response.created", "sequence_number": 0, "response": _response(rid)}
    if lane is not None:
        raw["stream_id"] = lane
    return raw


def delta(text: str, lane: Optional[str] = None) -> Any:
    raw: dict = {
        "type": "response.output_text.delta",
        "item_id": "msg_1",
        "output_index": 0,
        "content_index": 0,
        "delta": text,
        "logprobs": [],
        "sequence_number": 1,
    }
    if lane is not None:
        raw["stream_id"] = lane
    return raw


def completed(rid: str, lane: Optional[str] = None) -> Any:
    raw: dict = {
        "type": "response.completed",
        "sequence_number": 2,
        "response": _response(rid, "completed"),
    }
    if lane is not None:
        raw["stream_id"] = lane
    return raw


def error(code: str, param: Optional[str] = None, lane: Optional[str] = None) -> Any:
    raw: dict = {
        "type": "error",
        "status": 400,
        "error": {"type": "invalid_request_error", "code": code, "message": code, "param": param},
    }
    if lane is not None:
        raw["stream_id"] = lane
    return raw


# -- lanes ----------------------------------------------------------------------


def test_concurrent_requests_get_distinct_lanes() -> None:
    """Requests in flight at the same time never share a lane while names remain."""
    core = ConnectionCore(use_lanes=True)
    lanes = [core.open(i).lane for i in range(10)]
    assert len(set(lanes)) == 10
    assert all(lane is not None for lane in lanes)


def test_idle_lanes_are_reused_and_names_are_capped() -> None:
    """Finished lanes are reused and no more than 32 names are ever made."""
    core = ConnectionCore(use_lanes=True)
    for round_ in range(5):
        opened = [core.open(round_ * 100 + i) for i in range(20)]
        for p in opened:
            assert core.route(created(f"r{p.key}", p.lane)) is not None
            route = core.route(completed(f"r{p.key}", p.lane))
            assert route is not None and route.terminal
    assert len(core.lane_names) <= MAX_LANE_NAMES
    many = [core.open(1000 + i) for i in range(40)]
    assert len({p.lane for p in many}) == MAX_LANE_NAMES


def test_continuation_goes_to_the_lane_caching_its_parent() -> None:
    """A previous_response_id that is an idle lane's latest response picks that lane."""
    core = ConnectionCore(use_lanes=True)
    a, b = core.open(1), core.open(2)
    for p, rid in ((a, "resp_a"), (b, "resp_b")):
        core.route(created(rid, p.lane))
        core.route(completed(rid, p.lane))
    follow = core.open(3, previous_response_id="resp_b")
    assert follow.lane == b.lane
    fresh = core.open(4)
    assert fresh.lane not in (b.lane,)


def test_tagged_events_route_to_the_head_of_their_lane() -> None:
    """Interleaved events of two lanes each reach their own request."""
    core = ConnectionCore(use_lanes=True)
    a, b = core.open(1), core.open(2)
    assert core.route(delta("x", b.lane)).pending is b  # type: ignore[union-attr]
    assert core.route(delta("y", a.lane)).pending is a  # type: ignore[union-attr]
    route = core.route(completed("r", a.lane))
    assert route is not None and route.pending is a and route.terminal
    assert [p.key for p in core.inflight] == [2]


def test_event_for_an_unknown_lane_is_unroutable() -> None:
    """An event tagged with a lane nobody uses belongs to no request."""
    core = ConnectionCore(use_lanes=True)
    core.open(1)
    assert core.route(delta("x", "nobody")) is None


def test_default_lane_is_fifo() -> None:
    """Without lanes, untagged events go to the oldest unfinished request."""
    core = ConnectionCore(use_lanes=False)
    a, b = core.open(1), core.open(2)
    assert a.lane is None and b.lane is None
    assert core.route(delta("x")).pending is a  # type: ignore[union-attr]
    core.route(completed("r1"))
    assert core.route(delta("y")).pending is b  # type: ignore[union-attr]


def test_server_ignoring_stream_id_switches_to_send_order() -> None:
    """Untagged answers to tagged requests are attributed in send order, lanes turn off."""
    core = ConnectionCore(use_lanes=True)
    a, b = core.open(1), core.open(2)
    route = core.route(created("r1"))
    assert route is not None and route.pending is a
    assert core.lanes_ignored and not core.use_lanes
    core.route(completed("r1"))
    assert core.route(created("r2")).pending is b  # type: ignore[union-attr]
    c = core.open(3)
    assert c.lane is None


def test_server_rejecting_stream_id_hands_back_each_request() -> None:
    """Each untagged stream_id rejection goes to the oldest unstarted tagged request."""
    core = ConnectionCore(use_lanes=True)
    a, b = core.open(1), core.open(2)
    first = core.route(error("unknown_parameter", param="stream_id"))
    assert first is not None and first.rejected and first.pending is a
    assert core.lanes_rejected and not core.use_lanes
    replay = core.open(1)
    assert replay.lane is None
    second = core.route(error("unknown_parameter", param="stream_id"))
    assert second is not None and second.rejected and second.pending is b
    assert core.route(created("r1")).pending is replay  # type: ignore[union-attr]


def test_untagged_error_goes_to_oldest_unstarted_request() -> None:
    """A connection-level error is the reply to the oldest request with no events."""
    core = ConnectionCore(use_lanes=True)
    a, b = core.open(1), core.open(2)
    core.route(created("r1", a.lane))
    route = core.route(error("websocket_connection_limit_reached"))
    assert route is not None and route.pending is b and route.terminal


def test_lane_rejection_detection() -> None:
    """Only untagged errors about stream_id count as a lane rejection."""
    assert is_lane_rejection(error("unknown_parameter", param="stream_id"))
    assert not is_lane_rejection(error("unknown_parameter", param="stream_id", lane="x"))
    assert not is_lane_rejection(error("previous_response_not_found", "previous_response_id"))
    assert not is_lane_rejection(delta("stream_id"))


def test_drain_returns_every_unfinished_request() -> None:
    """When the socket goes, every request still in flight is handed back once."""
    core = ConnectionCore(use_lanes=True)
    opened = [core.open(i) for i in range(3)]
    core.route(completed("r", opened[1].lane))
    assert [p.key for p in core.drain()] == [0, 2]
    assert core.drain() == []


def test_close_classification() -> None:
    """1000 from the server is silent, our own close is ours, anything else abnormal."""
    assert classify_close(1000, initiated_by_us=False) is CloseKind.SILENT
    assert classify_close(1000, initiated_by_us=True) is CloseKind.OURS
    for code in (None, 1001, 1006, 1011):
        assert classify_close(code, initiated_by_us=False) is CloseKind.ABNORMAL


def test_lanes_caching_unstored_responses_are_reused_last() -> None:
    """When every name is taken, a lane holding a store=false response is evicted last."""
    core = ConnectionCore(use_lanes=True, max_names=3)
    precious = core.open(1, unstored=True)
    core.route(created("resp_keep", precious.lane))
    core.route(completed("resp_keep", precious.lane))
    for key in (2, 3):
        p = core.open(key)
        core.route(created(f"resp_{key}", p.lane))
        core.route(completed(f"resp_{key}", p.lane))
    # Every lane is idle and caches a response; the precious one finished
    # first, so it is the stalest, yet the others are reused instead.
    for key in range(10, 16):
        p = core.open(key)
        assert p.lane != precious.lane
        core.route(created(f"resp_{key}", p.lane))
        core.route(completed(f"resp_{key}", p.lane))
    follow = core.open(99, previous_response_id="resp_keep", unstored=True)
    assert follow.lane == precious.lane


def test_caches_tells_where_a_continuation_finds_its_parent() -> None:
    """caches(id): the lane that made the response is idle and holds it; not after reuse."""
    core = ConnectionCore(use_lanes=True, max_names=1)
    a = core.open(1)
    core.route(created("r1", a.lane))
    core.route(completed("r1", a.lane))
    assert core.caches("r1") and not core.caches("r0")
    b = core.open(2)  # the only lane is busy now
    assert not core.caches("r1")
    core.route(created("r2", b.lane))
    core.route(completed("r2", b.lane))
    assert not core.caches("r1") and core.caches("r2")  # the lane moved on


def test_caches_on_the_default_lane_and_on_a_lane_ignoring_server() -> None:
    """Without lanes the default lane's latest answer is cached while nothing else runs."""
    core = ConnectionCore(use_lanes=False)
    core.open(1)
    core.route(created("r1"))
    core.route(completed("r1"))
    assert core.caches("r1")
    core.open(2)
    assert not core.caches("r1")
    ignoring = ConnectionCore(use_lanes=True, lanes_ignored=True)
    ignoring.open(1, stream_id="mine")
    ignoring.route(created("r9"))
    ignoring.route(completed("r9"))
    assert ignoring.caches("r9")
