"""Conversations: delta when the parent is cached or stored, whole context otherwise.

On the scripted fake transport, so each test sees exactly which frames left:
the delta (``previous_response_id`` + new items) or the whole history.
"""

from __future__ import annotations

import json
import threading
from typing import Any, Dict, List

import pytest
from fake_transport import FakeHTTP, FakeServer, FakeTransport, answer, error_event, options
from fake_transport import response as response_object

import openai_ws
from openai_ws import Conversation, InputMessage, OutputMessage, ResponseCompleted
from openai_ws.session import Session


class Counter:
    def __init__(self) -> None:
        self.n = 0

    def next(self) -> int:
        self.n += 1
        return self.n


def text_of(frame: Dict[str, Any]) -> str:
    """The text of the last user message a create carries."""
    items = frame["input"]
    if isinstance(items, str):
        return items
    last = [i for i in items if i.get("role") == "user"][-1]
    content = last["content"]
    return content if isinstance(content, str) else content[0]["text"]


def script_answering(ids: Counter) -> Any:
    """Answer each create with ``re:<its last user text>``, on its lane."""

    def script(transport: FakeTransport, frame: Dict[str, Any]) -> None:
        rid = f"resp_{ids.next()}"
        transport.push(*answer(rid, f"re:{text_of(frame)}", frame.get("stream_id")))

    return script


@pytest.fixture
def server() -> FakeServer:
    return FakeServer(script_answering(Counter()))


def test_turns_after_the_first_send_only_the_new_items(server: FakeServer) -> None:
    """On one socket each turn continues the cached parent with only its new items."""
    with Session(options(), transport=server.factory) as session:
        conv = session.conversation(model="m", store=False)
        assert conv.send("one").output_text == "re:one"
        assert conv.send("two").output_text == "re:two"
        assert conv.send("three").output_text == "re:three"
    first, second, third = server.sent
    assert "previous_response_id" not in first
    assert second["previous_response_id"] == "resp_1" and len(second["input"]) == 1
    assert third["previous_response_id"] == "resp_2" and len(third["input"]) == 1
    assert second["stream_id"] == first["stream_id"]  # the lane that caches the parent
    assert len(conv.items) == 6 and isinstance(conv.items[1], OutputMessage)


def test_a_dropped_socket_between_turns_sends_the_whole_context(server: FakeServer) -> None:
    """store=false: after the socket drops, the next turn carries the whole history."""
    with Session(options(), transport=server.factory) as session:
        conv = session.conversation(model="m", store=False)
        conv.send("one")
        conv.send("two")
        server.last.close_with(1011)
        server.last.released.wait(2)
        assert conv.send("three").output_text == "re:three"
    third = server.sent[-1]
    assert "previous_response_id" not in third
    texts = [
        i["content"] if i["role"] == "user" else i["content"][0]["text"] for i in third["input"]
    ]
    assert texts == ["one", "re:one", "two", "re:two", "three"]


def test_a_stored_parent_is_continued_on_a_new_socket(server: FakeServer) -> None:
    """store=true: the parent exists server-side, so a new socket still gets the delta."""
    with Session(options(), transport=server.factory) as session:
        conv = session.conversation(model="m")
        conv.send("one")
        server.last.close_with(1011)
        server.last.released.wait(2)
        conv.send("two")
    assert server.sent[-1]["previous_response_id"] == "resp_1"
    assert len(server.sent[-1]["input"]) == 1


def test_a_silent_close_sends_the_whole_context_over_http() -> None:
    """Turn 3 with a decimal temperature closes the socket: it completes over HTTP, whole."""
    ids = Counter()
    answer_normally = script_answering(ids)

    def script(transport: FakeTransport, frame: Dict[str, Any]) -> None:
        if isinstance(frame.get("temperature"), float):
            transport.close_with(1000)
        else:
            answer_normally(transport, frame)

    server = FakeServer(script)
    http = FakeHTTP(lambda body: f"re:{text_of(body)}")
    with Session(options(), http=lambda: http, transport=server.factory) as session:  # type: ignore[arg-type,return-value]
        conv = session.conversation(model="m", store=False)
        conv.send("one")
        conv.send("two")
        assert conv.send("three", temperature=0.7).output_text == "re:three"
        assert conv.send("four").output_text == "re:four"
    (body,) = http.bodies
    assert "previous_response_id" not in body and len(body["input"]) == 5
    assert body["temperature"] == 0.7
    fourth = server.sent[-1]
    # resp_http exists only over HTTP and was not stored: the fourth turn goes whole.
    assert "previous_response_id" not in fourth and len(fourth["input"]) == 7


def test_previous_response_not_found_resends_the_whole_context_once() -> None:
    """A parent the server lost is answered by re-sending the whole history, once."""
    ids = Counter()
    answer_normally = script_answering(ids)

    def script(transport: FakeTransport, frame: Dict[str, Any]) -> None:
        if frame.get("previous_response_id") and text_of(frame) == "two":
            transport.push(
                error_event(
                    400,
                    "previous_response_not_found",
                    f"Previous response with id '{frame['previous_response_id']}' not found.",
                    param="previous_response_id",
                    lane=frame.get("stream_id"),
                )
            )
        else:
            answer_normally(transport, frame)

    server = FakeServer(script)
    with Session(options(), transport=server.factory) as session:
        conv = session.conversation(model="m", store=False)
        conv.send("one")
        assert conv.send("two").output_text == "re:two"
    assert [("previous_response_id" in f) for f in server.sent] == [False, True, False]


def test_to_dict_and_from_dict_resume_in_a_new_session(server: FakeServer) -> None:
    """A saved conversation resumes in another session; store=false sends the whole context."""
    with Session(options(), transport=server.factory) as session:
        conv = session.conversation(model="m", store=False, instructions="be brief")
        conv.send("one")
        conv.send("two")
        saved = json.loads(json.dumps(conv.to_dict()))
    with Session(options(), transport=server.factory) as again:
        resumed = Conversation.from_dict(again, saved)
        assert [type(i) for i in resumed.items] == [type(i) for i in conv.items]
        assert resumed.usage == conv.usage
        assert resumed.send("three").output_text == "re:three"
    last = server.sent[-1]
    assert "previous_response_id" not in last and len(last["input"]) == 5
    assert last["instructions"] == "be brief"


def test_fork_branches_from_the_current_point(server: FakeServer) -> None:
    """Two branches of one history each continue from it; they do not see each other."""
    with Session(options(), transport=server.factory) as session:
        trunk = session.conversation(model="m", store=False)
        trunk.send("root")
        branch = trunk.fork()
        trunk.send("left")
        branch.send("right")
    assert len(trunk.items) == len(branch.items) == 4
    assert trunk.items[2] != branch.items[2]
    right = server.sent[-1]
    # The lane moved on to "left": the branch's parent is no longer cached there.
    assert "previous_response_id" not in right and len(right["input"]) == 3


def test_one_thread_at_a_time(server: FakeServer) -> None:
    """A second thread using a busy conversation gets a clear RuntimeError."""
    release = threading.Event()

    def slow(transport: FakeTransport, frame: Dict[str, Any]) -> None:
        def later() -> None:
            release.wait(5)
            transport.push(*answer("resp_slow", "done", frame.get("stream_id")))

        threading.Thread(target=later).start()

    server.script = slow
    with Session(options(), transport=server.factory) as session:
        conv = session.conversation(model="m")
        worker = threading.Thread(target=lambda: conv.send("hold"))
        worker.start()
        while not server.sent:
            threading.Event().wait(0.005)
        with pytest.raises(RuntimeError, match="one thread at a time"):
            conv.send("meanwhile")
        release.set()
        worker.join(5)


def test_usage_adds_up_over_turns(server: FakeServer) -> None:
    """conv.usage sums the usage of every turn."""
    with Session(options(), transport=server.factory) as session:
        conv = session.conversation(model="m")
        for text in ("a", "b", "c"):
            conv.send(text)
    assert conv.usage.responses == 3
    assert conv.usage.input_tokens == 3 and conv.usage.total_tokens == 6


def test_stream_records_the_turn_when_it_completes(server: FakeServer) -> None:
    """A streamed turn joins the history once its terminal event arrived."""
    with Session(options(), transport=server.factory) as session:
        conv = session.conversation(model="m", store=False)
        conv.send("one")
        with conv.stream("two") as events:
            kinds = [type(e) for e in events]
        assert kinds[-1] is ResponseCompleted
        assert len(conv.items) == 4 and conv.last_response is not None
        conv.send("three")
    assert server.sent[-1]["previous_response_id"] == conv.responses[1].id


def test_stream_cut_after_events_keeps_the_last_complete_turn() -> None:
    """A stream that loses its socket mid-answer raises; the history is the last whole turn."""
    ids = Counter()
    answer_normally = script_answering(ids)

    def script(transport: FakeTransport, frame: Dict[str, Any]) -> None:
        if text_of(frame) == "cut":
            transport.push(*answer("resp_cut", "re:cut", frame.get("stream_id"))[:2])
            transport.close_with(1011)
        else:
            answer_normally(transport, frame)

    server = FakeServer(script)
    with Session(options(), transport=server.factory) as session:
        conv = session.conversation(model="m", store=False)
        conv.send("one")
        with pytest.raises(openai_ws.ReplayUnsafeError):
            for _ in conv.stream("cut"):
                pass
        assert len(conv.items) == 2
        assert conv.send("again").output_text == "re:again"


def test_run_keeps_calls_and_outputs_in_the_history() -> None:
    """conv.run runs the tools; every call and its output join the history."""
    turn = Counter()

    def script(transport: FakeTransport, frame: Dict[str, Any]) -> None:
        n = turn.next()
        lane = frame.get("stream_id")
        if n == 1:
            call = {
                "type": "function_call",
                "id": "fc_1",
                "call_id": "call_1",
                "name": "add",
                "arguments": '{"a": 2, "b": 3}',
                "status": "completed",
            }
            done = response_object("resp_1")
            done["output"] = [call]
            events: List[Dict[str, Any]] = [
                {"type": "response.created", "response": response_object("resp_1", "in_progress")},
                {"type": "response.output_item.done", "output_index": 0, "item": call},
                {"type": "response.completed", "response": done},
            ]
            for event in events:
                if lane is not None:
                    event["stream_id"] = lane
            transport.push(*events)
        else:
            output = frame["input"][-1]["output"]
            transport.push(*answer(f"resp_{n}", f"sum={output}", lane))

    server = FakeServer(script)
    with Session(options(), transport=server.factory) as session:
        conv = session.conversation(model="m", store=False)
        result = conv.run("add 2 and 3", tools={"add": lambda a, b: a + b})
    assert result.finished and result.response.output_text == "sum=5"
    kinds = [getattr(i, "type", None) for i in conv.items]
    assert kinds == ["message", "function_call", "function_call_output", "message"]
    assert server.sent[1]["previous_response_id"] == "resp_1"


def test_managed_fields_are_refused() -> None:
    """input and previous_response_id belong to the conversation, not to its defaults."""
    server = FakeServer(script_answering(Counter()))
    with Session(options(), transport=server.factory) as session:
        with pytest.raises(ValueError, match="managed"):
            session.conversation(model="m", previous_response_id="resp_x")
        conv = session.conversation(model="m")
        with pytest.raises(ValueError, match="managed"):
            conv.send("x", previous_response_id="resp_y")


def test_first_turn_accepts_items(server: FakeServer) -> None:
    """A turn may be a list of typed items, sent as given."""
    with Session(options(), transport=server.factory) as session:
        conv = session.conversation(model="m")
        items = [
            InputMessage(role="developer", content="rules"),
            InputMessage(role="user", content="hi"),
        ]
        assert conv.send(items).output_text == "re:hi"
    assert [i["role"] for i in server.sent[0]["input"]] == ["developer", "user"]
