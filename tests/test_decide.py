"""Unit tests of ``openai_ws._session.attempt.decide``: every recovery rule on plain values."""

from __future__ import annotations

import copy
from typing import Any, Dict, Optional

import attrs
import pytest

from openai_ws._protocol.routing import CONNECTION_LIMIT, CloseKind, Pending
from openai_ws._session.attempt import (
    Collect,
    Deliver,
    Fallback,
    Raise,
    Resend,
    Skip,
    decide,
)
from openai_ws._session.inbox import Failure, Inbox, Lost, Rejected
from openai_ws._session.options import SessionOptions
from openai_ws._session.request import Mode, RequestState
from openai_ws.errors import (
    APIError,
    BadRequestError,
    ConnectionClosedError,
    InternalServerError,
    PreviousResponseNotFoundError,
    ProtocolError,
    RateLimitError,
    ReplayUnsafeError,
)
from openai_ws.events import ResponseCompleted, ResponseOutputTextDelta

BODY: Dict[str, Any] = {"model": "m", "input": "hi", "store": False}


def _opts(**overrides: Any) -> SessionOptions:
    return SessionOptions(
        url="ws://x",
        headers={},
        ssl_context=None,
        proxy=None,
        connect_timeout=1.0,
        request_timeout=None,
        event_timeout=None,
        **overrides,
    )


def _request(mode: Mode = Mode.EVENTS, **fields: Any) -> RequestState:
    return RequestState(
        key=1,
        body=copy.deepcopy(BODY),
        mode=mode,
        inbox=Inbox(max_events=10, max_bytes=10_000),
        **fields,
    )


def _decide(
    item: Any,
    request: RequestState,
    opts: Optional[SessionOptions] = None,
    *,
    now: float = 0.0,
    deadline: Optional[float] = None,
    has_http: bool = False,
    jitter: float = 0.0,
) -> Any:
    return decide(
        item,
        request,
        opts or _opts(),
        now=now,
        deadline=deadline,
        has_http=has_http,
        jitter=jitter,
    )


def _response(status: str = "completed") -> Dict[str, Any]:
    return {
        "id": "resp_1",
        "object": "response",
        "created_at": 1,
        "status": status,
        "model": "m",
        "output": [],
    }


def delta(text: Any = "hel") -> Dict[str, Any]:
    return {
        "type": "response.output_text.delta",
        "item_id": "msg_1",
        "output_index": 0,
        "content_index": 0,
        "delta": text,
        "sequence_number": 1,
    }


def completed() -> Dict[str, Any]:
    return {"type": "response.completed", "sequence_number": 5, "response": _response()}


def item_done() -> Dict[str, Any]:
    return {
        "type": "response.output_item.done",
        "output_index": 0,
        "sequence_number": 4,
        "item": {
            "type": "message",
            "id": "msg_1",
            "role": "assistant",
            "status": "completed",
            "content": [],
        },
    }


def error(
    status: Optional[int],
    code: Optional[str] = None,
    message: str = "nope",
    headers: Optional[Dict[str, str]] = None,
) -> Dict[str, Any]:
    payload: Dict[str, Any] = {"type": "error", "code": code, "message": message}
    if headers is not None:
        payload["headers"] = headers
    raw: Dict[str, Any] = {"type": "error", "error": payload}
    if status is not None:
        raw["status"] = status
    return raw


def _snapshot(request: RequestState) -> Dict[str, Any]:
    return {
        "key": request.key,
        "body": copy.deepcopy(request.body),
        "mode": request.mode,
        "inbox": id(request.inbox),
        "inbox_len": len(request.inbox),
        "pending": None if request.pending is None else attrs.asdict(request.pending),
        "abandoned": request.abandoned,
        "delivered": request.delivered,
        "replays": request.replays,
        "retries": request.retries,
        "collected": copy.deepcopy(request.collected),
    }


# -- events ---------------------------------------------------------------------


def test_delta_in_events_mode_is_delivered_typed_and_not_final():
    """A text delta in EVENTS mode is handed over as a typed, non-final event."""
    action = _decide(delta("hel"), _request(Mode.EVENTS, delivered=1))
    assert isinstance(action, Deliver)
    assert action.final is False
    assert isinstance(action.event, ResponseOutputTextDelta)
    assert action.event.delta == "hel"
    assert action.event.item_id == "msg_1"


def test_delta_in_result_mode_is_skipped_untyped():
    """In RESULT mode a non-terminal delta is skipped, not flagged as malformed."""
    action = _decide(delta(), _request(Mode.RESULT, delivered=1))
    assert action == Skip()
    assert action.malformed is None


def test_malformed_delta_in_result_mode_is_skipped_without_typing():
    """In RESULT mode non-terminal events are never typed, so a bad one is not reported."""
    assert _decide(delta(123), _request(Mode.RESULT, delivered=1)) == Skip()


def test_output_item_done_in_result_mode_is_collected_as_is():
    """In RESULT mode a finished output item is collected as the very same dict."""
    raw = item_done()
    action = _decide(raw, _request(Mode.RESULT, delivered=1))
    assert isinstance(action, Collect)
    assert action.item is raw


def test_output_item_done_in_events_mode_is_delivered():
    """In EVENTS mode a finished output item is delivered, not collected."""
    action = _decide(item_done(), _request(Mode.EVENTS, delivered=1))
    assert isinstance(action, Deliver)
    assert action.final is False


@pytest.mark.parametrize("mode", [Mode.EVENTS, Mode.RESULT])
def test_completed_is_delivered_as_final(mode):
    """response.completed is delivered typed and final, in both modes."""
    action = _decide(completed(), _request(mode, delivered=1))
    assert isinstance(action, Deliver)
    assert action.final is True
    assert isinstance(action.event, ResponseCompleted)
    assert action.event.response.id == "resp_1"
    assert action.event.response.status == "completed"


def test_malformed_non_terminal_event_is_skipped_with_a_reason():
    """A delta whose delta is a number is skipped and the reason names the field."""
    action = _decide(delta(123), _request(Mode.EVENTS, delivered=1))
    assert isinstance(action, Skip)
    assert action.malformed is not None
    assert "delta" in action.malformed


@pytest.mark.parametrize("mode", [Mode.EVENTS, Mode.RESULT])
def test_malformed_terminal_event_raises_a_protocol_error(mode):
    """A response.completed with a broken response ends the request with ProtocolError."""
    raw = completed()
    raw["response"]["id"] = 5
    action = _decide(raw, _request(mode, delivered=1))
    assert isinstance(action, Raise)
    assert isinstance(action.error, ProtocolError)


def test_unknown_event_type_is_delivered_not_skipped():
    """An event type the library does not know is still delivered (as an unknown event)."""
    action = _decide({"type": "response.future_thing", "x": 1}, _request(Mode.EVENTS, delivered=1))
    assert isinstance(action, Deliver)
    assert action.final is False
    assert action.event.type == "response.future_thing"


# -- error events ---------------------------------------------------------------


def test_rate_limit_before_any_event_is_retried_after_the_backoff():
    """A 429 with no hint and nothing delivered is resent on the retries counter."""
    action = _decide(error(429, "rate_limit_exceeded"), _request(), jitter=0.0)
    assert isinstance(action, Resend)
    assert action.counter == "retries"
    assert action.delay == 0.5  # the error backoff's first step
    assert "rate_limit_exceeded" in action.why


def test_rate_limit_uses_the_hint_in_the_error_headers():
    """A retry-after-ms in the error's headers is the delay of the retry."""
    item = error(429, "rate_limit_exceeded", headers={"retry-after-ms": "1500"})
    action = _decide(item, _request(), jitter=0.9)
    assert action == Resend(1.5, "retries", action.why)


def test_rate_limit_uses_the_hint_in_the_message():
    """Without a header, "try again in 2s" in the message sets the delay."""
    item = error(429, "rate_limit_exceeded", message="Please try again in 2s.")
    action = _decide(item, _request())
    assert isinstance(action, Resend)
    assert action.delay == 2.0


def test_retry_backoff_grows_with_the_request_retries():
    """The second retry of a 5xx waits twice as long as the first."""
    action = _decide(error(500, "server_error"), _request(retries=1), _opts(max_retries=5))
    assert isinstance(action, Resend)
    assert action.counter == "retries"
    assert action.delay == 1.0


def test_rate_limit_at_max_retries_raises():
    """A 429 when the request already used every retry ends it with RateLimitError."""
    opts = _opts(max_retries=2)
    action = _decide(error(429, "rate_limit_exceeded"), _request(retries=2), opts)
    assert isinstance(action, Raise)
    assert isinstance(action.error, RateLimitError)
    assert action.error.status == 429


def test_rate_limit_with_max_retries_zero_raises():
    """With retries disabled a 429 is raised at once."""
    action = _decide(error(429, "rate_limit_exceeded"), _request(), _opts(max_retries=0))
    assert isinstance(action, Raise)
    assert isinstance(action.error, RateLimitError)


def test_rate_limit_whose_delay_passes_the_deadline_raises():
    """A retry that would wait past the request's deadline is not made."""
    item = error(429, "rate_limit_exceeded", headers={"retry-after-ms": "5000"})
    action = _decide(item, _request(), now=0.0, deadline=0.1)
    assert isinstance(action, Raise)
    assert isinstance(action.error, RateLimitError)
    assert action.error.headers.get("retry-after-ms") == "5000"


def test_rate_limit_whose_message_delay_passes_the_deadline_raises():
    """A delay read from the message is checked against the deadline too."""
    item = error(429, "rate_limit_exceeded", message="Please try again in 5s.")
    action = _decide(item, _request(), now=10.0, deadline=12.0)
    assert isinstance(action, Raise)
    assert isinstance(action.error, RateLimitError)


def test_rate_limit_within_the_deadline_is_retried():
    """A delay that ends before the deadline is retried."""
    item = error(429, "rate_limit_exceeded", headers={"retry-after-ms": "5000"})
    action = _decide(item, _request(), now=10.0, deadline=15.5)
    assert isinstance(action, Resend)
    assert action.delay == 5.0


def test_top_level_error_headers_are_read():
    """Headers sent beside the error object (top level) carry the hint as well."""
    item = error(503, "server_error")
    item["headers"] = {"Retry-After": "3"}
    action = _decide(item, _request())
    assert isinstance(action, Resend)
    assert action.delay == 3.0


def test_error_after_events_were_delivered_is_not_retried():
    """A 5xx once the caller has events is raised: a retry could answer twice."""
    action = _decide(error(500, "server_error"), _request(delivered=3))
    assert isinstance(action, Raise)
    assert isinstance(action.error, InternalServerError)


def test_insufficient_quota_is_raised():
    """A 429 insufficient_quota is out of credit and not retried."""
    action = _decide(error(429, "insufficient_quota"), _request())
    assert isinstance(action, Raise)
    assert isinstance(action.error, RateLimitError)
    assert action.error.code == "insufficient_quota"


def test_bad_request_is_raised_with_the_request_body():
    """A 400 is raised as BadRequestError carrying a copy of the caller's body."""
    request = _request()
    action = _decide(error(400, "invalid_value", message="bad field"), request)
    assert isinstance(action, Raise)
    assert type(action.error) is BadRequestError
    assert action.error.message == "bad field"
    assert action.error.request == request.body
    assert action.error.request is not request.body


def test_error_without_status_or_known_code_is_a_plain_api_error():
    """An error event with neither status nor a known code raises a plain APIError."""
    action = _decide(error(None, "weird"), _request())
    assert isinstance(action, Raise)
    assert type(action.error) is APIError


def test_connection_limit_is_replayed_at_once():
    """The socket-age-limit error is resent on a new socket, without delay."""
    action = _decide(error(None, CONNECTION_LIMIT), _request())
    assert isinstance(action, Resend)
    assert action.counter == "replays"
    assert action.delay == 0.0


def test_connection_limit_is_replayed_with_retries_used_up():
    """The age-limit rule counts replays, not retries: it holds with no retries left."""
    opts = _opts(max_retries=2)
    action = _decide(error(400, CONNECTION_LIMIT), _request(retries=2), opts)
    assert isinstance(action, Resend)
    assert action.counter == "replays"
    assert action.delay == 0.0


def test_connection_limit_after_delivered_events_is_not_replayed():
    """A started request hit by the age-limit error is not replayed (it could answer twice)."""
    action = _decide(error(400, CONNECTION_LIMIT), _request(delivered=3))
    assert isinstance(action, Raise)


def test_connection_limit_at_max_replays_raises():
    """Once the replays are used up the age-limit error is raised."""
    opts = _opts(max_replays=3)
    action = _decide(error(None, CONNECTION_LIMIT), _request(replays=3), opts)
    assert isinstance(action, Raise)
    assert isinstance(action.error, APIError)
    assert action.error.code == CONNECTION_LIMIT


def test_previous_response_not_found_explains_store_false():
    """previous_response_not_found is raised with a message explaining store=false."""
    item = error(400, "previous_response_not_found", message="Previous response not found.")
    action = _decide(item, _request())
    assert isinstance(action, Raise)
    assert isinstance(action.error, PreviousResponseNotFoundError)
    message = action.error.message
    assert message.startswith("Previous response not found.")
    assert "store=false" in message
    assert "previous_response_id" in message


def test_malformed_error_event_is_a_raise_decision():
    """A malformed error event (status not an integer) gives Raise(ProtocolError)."""
    item = error(429, "rate_limit_exceeded")
    item["status"] = "429"
    action = _decide(item, _request())
    assert isinstance(action, Raise)
    assert isinstance(action.error, ProtocolError)


# -- notes ----------------------------------------------------------------------


def test_failure_raises_the_same_exception():
    """A Failure note re-raises exactly the exception it carries."""
    exc = RuntimeError("boom")
    action = _decide(Failure(exc), _request())
    assert isinstance(action, Raise)
    assert action.error is exc


def test_rejected_lane_is_resent_without_counting():
    """A refused stream_id is resent at once on no counter."""
    action = _decide(Rejected(), _request(replays=10, retries=10))
    assert isinstance(action, Resend)
    assert action.counter is None
    assert action.delay == 0.0


def test_silent_close_with_http_falls_back_and_remembers():
    """A silent close before any event goes over HTTP, remembering the request's shape."""
    action = _decide(Lost(CloseKind.SILENT, 1000, ""), _request(), has_http=True)
    assert isinstance(action, Fallback)
    assert action.remember is True


def test_silent_close_without_http_is_replayed():
    """Without an HTTP transport a silent close is replayed on a new socket."""
    action = _decide(Lost(CloseKind.SILENT, 1000, ""), _request(), has_http=False)
    assert isinstance(action, Resend)
    assert action.counter == "replays"
    assert action.delay == 0.0


def test_abnormal_close_is_replayed_at_once_the_first_time():
    """The first abnormal close is replayed without delay, even with HTTP available."""
    action = _decide(Lost(CloseKind.ABNORMAL, 1006, ""), _request(), has_http=True)
    assert isinstance(action, Resend)
    assert action.counter == "replays"
    assert action.delay == 0.0
    assert "1006" in action.why


def test_later_abnormal_closes_back_off():
    """From the second replay on, the replay waits the session's backoff."""
    opts = _opts(backoff_initial=0.25, backoff_max=8.0)
    lost = Lost(CloseKind.ABNORMAL, None, "")
    first = _decide(lost, _request(replays=1), opts, jitter=0.0)
    second = _decide(lost, _request(replays=2), opts, jitter=0.0)
    jittered = _decide(lost, _request(replays=2), opts, jitter=0.999)
    assert isinstance(second, Resend)
    assert second.counter == "replays"
    assert first.delay == 0.25
    assert second.delay == 0.5
    assert 0.75 * 0.5 <= jittered.delay < 0.5


def test_replay_backoff_is_bounded_by_backoff_max():
    """However many replays, the delay never exceeds backoff_max."""
    opts = _opts(backoff_initial=0.25, backoff_max=2.0, max_replays=50)
    action = _decide(Lost(CloseKind.ABNORMAL, 1011, ""), _request(replays=40), opts)
    assert isinstance(action, Resend)
    assert 0 < action.delay <= 2.0
    assert action.delay == 2.0


def test_close_at_max_replays_raises_connection_closed():
    """When the replays are used up the close is raised as ConnectionClosedError."""
    opts = _opts(max_replays=3)
    action = _decide(Lost(CloseKind.ABNORMAL, 1011, "overloaded"), _request(replays=3), opts)
    assert isinstance(action, Raise)
    assert type(action.error) is ConnectionClosedError
    assert action.error.code == 1011
    assert action.error.reason == "overloaded"
    assert "4 times" in str(action.error)


def test_silent_close_at_max_replays_without_http_raises():
    """A silent close with no HTTP and no replays left is raised too."""
    opts = _opts(max_replays=0)
    action = _decide(Lost(CloseKind.SILENT, 1000, ""), _request(), opts, has_http=False)
    assert isinstance(action, Raise)
    assert isinstance(action.error, ConnectionClosedError)


def test_close_after_delivered_events_is_replay_unsafe():
    """A close after the caller got events raises ReplayUnsafeError with the count."""
    lost = Lost(CloseKind.ABNORMAL, 1006, "gone")
    action = _decide(lost, _request(delivered=3), has_http=True)
    assert isinstance(action, Raise)
    assert type(action.error) is ReplayUnsafeError
    assert action.error.events_received == 3
    assert action.error.code == 1006
    assert action.error.reason == "gone"
    assert action.error.response_id is None


def test_silent_close_after_events_is_replay_unsafe_even_with_http():
    """A started request is never completed again over HTTP after a silent close."""
    action = _decide(Lost(CloseKind.SILENT, 1000, ""), _request(delivered=1), has_http=True)
    assert isinstance(action, Raise)
    assert isinstance(action.error, ReplayUnsafeError)


def test_close_after_events_the_stream_has_not_taken_is_replayed():
    """Events routed but not yet taken by the consumer do not make a replay unsafe."""
    pending = Pending(key=1, lane=None, events=1, response_id="resp_9")
    action = _decide(Lost(CloseKind.ABNORMAL, None, ""), _request(pending=pending))
    assert isinstance(action, Resend)
    assert action.counter == "replays"


def test_close_after_events_of_a_send_is_replayed():
    """A send() whose socket ended mid-answer goes again: its caller has seen nothing."""
    pending = Pending(key=1, lane=None, events=5, response_id="resp_9")
    request = _request(Mode.RESULT, delivered=2, pending=pending)
    action = _decide(Lost(CloseKind.ABNORMAL, 1011, ""), request)
    assert isinstance(action, Resend)
    silent = _decide(Lost(CloseKind.SILENT, 1000, ""), request, has_http=True)
    assert isinstance(silent, Fallback) and not silent.remember  # it did not cause the close


def test_stream_replay_unsafe_error_chains_the_transport_cause():
    """The transport's recorded error travels with the decision, to be chained."""
    cause = OSError("connection reset by peer")
    action = _decide(Lost(CloseKind.ABNORMAL, None, "", cause), _request(delivered=1))
    assert isinstance(action, Raise) and action.cause is cause


def test_protocol_close_culprit_goes_over_http_once():
    """The request blamed for a 1008 close is not sent on a socket again but over HTTP."""
    lost = Lost(CloseKind.PROTOCOL, 1008, "policy", culprit=True)
    action = _decide(lost, _request(), has_http=True)
    assert isinstance(action, Fallback) and not action.remember
    without_http = _decide(lost, _request())
    assert isinstance(without_http, Raise)
    assert isinstance(without_http.error, ConnectionClosedError)
    assert "1008" in str(without_http.error) and "policy violation" in str(without_http.error)


def test_protocol_close_bystander_is_replayed():
    """Another request on a socket closed with 1009 is replayed as after a drop."""
    lost = Lost(CloseKind.PROTOCOL, 1009, "", culprit=False)
    assert isinstance(_decide(lost, _request(), has_http=True), Resend)


def test_our_own_size_limit_is_a_typed_error_not_http():
    """A message over our max_message_size (we closed with 1009) is not retried over HTTP."""
    lost = Lost(CloseKind.PROTOCOL, 1009, "too big", ValueError("a frame of 9 bytes"), culprit=True)
    action = _decide(lost, _request(Mode.RESULT), has_http=True)
    assert isinstance(action, Raise)
    assert isinstance(action.error, ConnectionClosedError)


def test_pending_without_events_does_not_block_a_replay():
    """A pending record with no events yet leaves the request replayable."""
    pending = Pending(key=1, lane="a", events=0)
    action = _decide(Lost(CloseKind.ABNORMAL, None, ""), _request(pending=pending))
    assert isinstance(action, Resend)


def test_unexpected_item_is_an_assertion():
    """An item of no known kind is a programming error, not a decision."""
    with pytest.raises(AssertionError):
        _decide(object(), _request())


# -- purity ---------------------------------------------------------------------


def _cases():
    pending = Pending(key=1, lane=None, events=2, response_id="resp_1")
    limit = error(None, CONNECTION_LIMIT)
    return [
        (delta(), _request(Mode.EVENTS, delivered=1), {}),
        (delta(), _request(Mode.RESULT, delivered=1), {}),
        (delta(123), _request(Mode.EVENTS, delivered=1), {}),
        (item_done(), _request(Mode.RESULT, delivered=1, collected=[item_done()]), {}),
        (completed(), _request(Mode.RESULT, delivered=2), {}),
        (error(429, "rate_limit_exceeded"), _request(retries=1), {}),
        (error(429, "rate_limit_exceeded"), _request(retries=2), {}),
        (error(400, "previous_response_not_found"), _request(), {}),
        (limit, _request(replays=2), {}),
        (Failure(ValueError("x")), _request(), {}),
        (Rejected(), _request(), {}),
        (Lost(CloseKind.SILENT, 1000, ""), _request(), {"has_http": True}),
        (Lost(CloseKind.ABNORMAL, 1006, ""), _request(replays=4), {}),
        (Lost(CloseKind.ABNORMAL, 1006, ""), _request(replays=10), {}),
        (Lost(CloseKind.ABNORMAL, 1006, ""), _request(delivered=2), {}),
        (Lost(CloseKind.ABNORMAL, 1006, ""), _request(pending=pending), {}),
    ]


@pytest.mark.parametrize(("item", "request_state", "kwargs"), _cases())
def test_decide_never_changes_the_request_or_the_item(item, request_state, kwargs):
    """decide leaves the request's counters, state and the item itself untouched."""
    before = _snapshot(request_state)
    item_before = copy.deepcopy(item) if type(item) is dict else None
    _decide(item, request_state, **kwargs)
    assert _snapshot(request_state) == before
    if item_before is not None:
        assert item == item_before
