"""More than one socket per session (``max_sockets``): when to open one, where requests go.

A scripted server (``fake_transport.py``) that holds every answer until the test
releases it, so a test knows exactly how many responses run on each socket.
The rules: a new request goes to the least busy socket that starts it at once
(a free active slot of the 16, and a lane); a new socket opens only when none
does, up to ``max_sockets``; a continuation goes to the socket that produced its
parent (a conversation stays on its socket); every recovery rule holds per
socket; an extra socket idle for ``socket_idle_timeout`` is closed.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Dict, List, Optional

import pytest
from fake_transport import FakeServer, FakeTransport, answer, options

from openai_ws import ResponseCreateRequest
from openai_ws._transports.ws import Pong
from openai_ws.errors import ConnectError, RequestTimeoutError
from openai_ws.session import Session


def ask(text: str, **fields: Any) -> ResponseCreateRequest:
    return ResponseCreateRequest(model="gpt-4o-mini", input=text, **fields)


class HoldingServer:
    """Answers each create with the text of its input, once :meth:`release` is called
    (or at once with ``hold=False``); remembers which socket got which frame."""

    def __init__(self, *, hold: bool = True) -> None:
        self.hold = hold
        self.server = FakeServer(self.script)
        self.held: List[Any] = []
        self.lock = threading.Lock()
        self.count = 0
        self.socket_of: Dict[str, int] = {}  # input text -> index of the socket it went to

    def script(self, transport: FakeTransport, frame: Dict[str, Any]) -> None:
        with self.lock:
            self.count += 1
            rid = f"resp_{self.count}"
            index = self.server.transports.index(transport)
            text = _text_of(frame.get("input"))
            self.socket_of[text] = index
            events = answer(rid, text, frame.get("stream_id"))
            if self.hold:
                self.held.append((transport, events))
            else:
                transport.push(*events)

    def release(self) -> None:
        with self.lock:
            held, self.held = self.held, []
        for transport, events in held:
            transport.push(*events)

    def wait_held(self, count: int, timeout: float = 3.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.held) >= count:
                    return
            time.sleep(0.005)
        raise AssertionError(f"only {len(self.held)} of {count} requests arrived")


def _text_of(input: Any) -> str:
    """The text of a request's input: a string, or the last message's content."""
    if isinstance(input, list):
        return str(input[-1].get("content"))
    return str(input)


def session_for(server: HoldingServer, **overrides: Any) -> Session:
    return Session(options(**overrides), transport=server.server.factory)


def submit_all(session: Session, texts: List[str]) -> List[Any]:
    return [session.submit(ask(text)) for text in texts]


@pytest.mark.parametrize("max_sockets", [1, 2])
def test_a_seventeenth_active_response_opens_a_second_socket(max_sockets: int) -> None:
    """16 responses fill a socket; the 17th starts on a new one, unless max_sockets=1
    (then it queues on the first, as with one socket)."""
    server = HoldingServer()
    with session_for(server, max_sockets=max_sockets) as session:
        pending = submit_all(session, [f"r{i}" for i in range(17)])
        server.wait_held(17)
        assert len(server.server.transports) == max_sockets
        assert [server.socket_of[f"r{i}"] for i in range(16)] == [0] * 16
        assert server.socket_of["r16"] == max_sockets - 1
        server.release()
        assert [p.result().output_text for p in pending] == [f"r{i}" for i in range(17)]
        assert session.stats.sockets_max == max_sockets


def test_new_requests_go_to_the_least_busy_socket() -> None:
    """Once two sockets are open, requests spread to the one with fewer in flight."""
    server = HoldingServer()
    with session_for(server, max_sockets=3) as session:
        first = submit_all(session, [f"a{i}" for i in range(17)])
        server.wait_held(17)
        server.release()
        for p in first:
            p.result()
        more = submit_all(session, [f"b{i}" for i in range(4)])
        server.wait_held(4)
        sockets = [server.socket_of[f"b{i}"] for i in range(4)]
        # Both are idle now; spreading keeps each socket's lanes short.
        assert len(server.server.transports) == 2
        assert sorted(set(sockets)) == [0, 1]
        server.release()
        for p in more:
            p.result()


def test_a_continuation_goes_to_the_socket_that_produced_its_parent() -> None:
    """A response answered on the second socket is continued there, although the first
    socket is idle: that socket's cache holds the parent."""
    server = HoldingServer()
    with session_for(server, max_sockets=2) as session:
        pending = submit_all(session, [f"r{i}" for i in range(17)])
        server.wait_held(17)
        server.release()
        parent = pending[16].result()
        assert server.socket_of["r16"] == 1
        for p in pending[:16]:
            p.result()
        server.hold = False
        follow = session.send(ask("follow-up", previous_response_id=parent.id))
        assert follow.output_text == "follow-up"
        assert server.socket_of["follow-up"] == 1


def test_a_conversation_stays_on_its_socket() -> None:
    """Every turn of a conversation that started on the second socket goes there."""
    server = HoldingServer()
    with session_for(server, max_sockets=2) as session:
        fill = submit_all(session, [f"r{i}" for i in range(16)])
        server.wait_held(16)
        conv = session.conversation(model="gpt-4o-mini")
        turn: List[Any] = []
        thread = threading.Thread(target=lambda: turn.append(conv.send("turn 1")))
        thread.start()
        server.wait_held(17)
        server.release()
        thread.join(5)
        for p in fill:
            p.result()
        server.hold = False
        conv.send("turn 2")
        conv.send("turn 3")
        assert [server.socket_of[f"turn {i}"] for i in (1, 2, 3)] == [1, 1, 1]


def test_store_false_lanes_are_kept_by_opening_another_socket() -> None:
    """32 lanes each caching a store=false response: a new request opens a second
    socket instead of evicting one of them, and their continuations still find them."""
    server = HoldingServer(hold=False)
    with session_for(server, max_sockets=2) as session:
        results: List[Any] = []
        for batch in range(2):
            pending = [
                session.submit(ask(f"u{batch}-{i}", store=False)) for i in range(16)
            ]
            results.extend(p.result() for p in pending)
        assert len(server.server.transports) == 1
        session.send(ask("fresh"))
        assert server.socket_of["fresh"] == 1
        again = session.send(ask("more", store=False, previous_response_id=results[0].id))
        assert again.output_text == "more" and server.socket_of["more"] == 0


def test_a_lost_socket_replays_only_its_own_requests() -> None:
    """Recovery per socket: the second socket drops; its request is replayed and
    answered, the first socket's requests are untouched."""
    server = HoldingServer()
    with session_for(server, max_sockets=2) as session:
        pending = submit_all(session, [f"r{i}" for i in range(17)])
        server.wait_held(17)
        second = server.server.transports[1]
        with server.lock:
            server.held = [(t, e) for t, e in server.held if t is not second]
        server.hold = False
        second.close_with(1011)
        assert pending[16].result().output_text == "r16"
        assert session.stats.replays == 1
        server.release()
        assert [p.result().output_text for p in pending[:16]] == [f"r{i}" for i in range(16)]
        assert all(frame.get("input") != "r16" for frame in server.server.transports[0].sent)


def test_an_idle_extra_socket_is_closed_but_the_first_stays(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After socket_idle_timeout with nothing in flight, the extra socket closes (its
    reader notices while idle, between keepalive pings); the first socket stays open."""
    monkeypatch.setattr(FakeTransport, "ping", lambda self: self.push_frames(Pong()))
    server = HoldingServer()
    with session_for(server, max_sockets=2, socket_idle_timeout=0.2, ping_interval=0.05) as session:
        pending = submit_all(session, [f"r{i}" for i in range(17)])
        server.wait_held(17)
        server.release()
        for p in pending:
            p.result()
        extra = server.server.transports[1]
        deadline = time.monotonic() + 3
        while not extra.closes_sent and time.monotonic() < deadline:
            time.sleep(0.02)
        assert extra.closes_sent == [1000]
        assert server.server.transports[0].closes_sent == []
        server.hold = False
        assert session.send(ask("still here")).output_text == "still here"
        assert server.socket_of["still here"] == 0


def test_map_with_concurrency_64_uses_four_sockets() -> None:
    """map() at concurrency 64 runs 64 at once over four sockets; answers in order."""
    server = HoldingServer()
    with session_for(server, max_sockets=4) as session:
        results: List[Optional[List[str]]] = [None]

        def run() -> None:
            results[0] = [
                r.output_text
                for r in session.map([ask(f"m{i}") for i in range(64)], concurrency=64)
            ]

        thread = threading.Thread(target=run)
        thread.start()
        server.wait_held(64)
        assert len(server.server.transports) == 4
        server.release()
        thread.join(10)
        assert results[0] == [f"m{i}" for i in range(64)]


def _in_thread(call: Any) -> List[Any]:
    """Run ``call()`` in a daemon thread; the returned list gets its result or exception."""
    out: List[Any] = []

    def run() -> None:
        try:
            out.append(call())
        except BaseException as exc:
            out.append(exc)

    threading.Thread(target=run, daemon=True).start()
    return out


def test_opening_an_extra_socket_holds_up_no_request_that_has_a_socket() -> None:
    """While a slow handshake opens the second socket, a continuation of a response
    of the first socket is sent on it at once; it does not wait for the handshake."""
    server = HoldingServer(hold=False)
    gate = server.server.connect_gates[2] = threading.Event()
    with session_for(server, max_sockets=2, connect_timeout=10.0) as session:
        parent = session.send(ask("parent"))
        server.hold = True
        fill = submit_all(session, [f"r{i}" for i in range(16)])
        server.wait_held(16)
        spill = _in_thread(lambda: session.submit(ask("r16")))  # opens socket 2: hangs
        deadline = time.monotonic() + 3
        while server.server.connect_attempts < 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert server.server.connect_attempts == 2  # the handshake is under way
        follow = _in_thread(lambda: session.submit(ask("follow", previous_response_id=parent.id)))
        try:
            server.wait_held(17)  # the continuation reached socket 1 during the handshake
            assert server.socket_of["follow"] == 0
            assert not gate.is_set() and len(server.held) == 17
        finally:
            gate.set()
        server.wait_held(18)
        assert server.socket_of["r16"] == 1
        server.release()
        assert follow[0].result().output_text == "follow"
        assert spill[0].result().output_text == "r16"
        assert [p.result().output_text for p in fill] == [f"r{i}" for i in range(16)]


def test_requests_wait_for_the_socket_being_opened_rather_than_open_more() -> None:
    """Two requests find the first socket full while the second is opening: both go to
    the second once it is open; no third socket is opened for the later one."""
    server = HoldingServer()
    gate = server.server.connect_gates[2] = threading.Event()
    with session_for(server, max_sockets=3, connect_timeout=10.0) as session:
        fill = submit_all(session, [f"r{i}" for i in range(16)])
        server.wait_held(16)
        first = _in_thread(lambda: session.submit(ask("a")))
        deadline = time.monotonic() + 3
        while server.server.connect_attempts < 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        second = _in_thread(lambda: session.submit(ask("b")))
        time.sleep(0.1)  # "b" finds the first socket full and the second opening
        assert server.server.connect_attempts == 2
        gate.set()
        server.wait_held(18)
        assert (server.socket_of["a"], server.socket_of["b"]) == (1, 1)
        assert len(server.server.transports) == 2
        server.release()
        assert first[0].result().output_text == "a" and second[0].result().output_text == "b"
        for p in fill:
            p.result()


def test_an_extra_socket_that_cannot_open_leaves_the_request_on_an_open_one() -> None:
    """The second socket's handshake fails: the request queues on the first socket
    (the server runs it when a slot frees) instead of failing or leaving the socket,
    and the next requests do not try again at once."""
    server = HoldingServer()
    with session_for(server, max_sockets=2, reconnect_attempts=0) as session:
        fill = submit_all(session, [f"r{i}" for i in range(16)])
        server.wait_held(16)
        server.server.refuse_next.append(ConnectError("the handshake failed"))
        more = submit_all(session, ["r16", "r17"])
        server.wait_held(18)
        assert (server.socket_of["r16"], server.socket_of["r17"]) == (0, 0)
        assert server.server.connect_attempts == 2  # one try; r17 did not try again
        server.release()
        assert [p.result().output_text for p in fill + more] == [f"r{i}" for i in range(18)]
        assert session.stats.http_fallbacks == 0


def test_the_extra_socket_cooldown_doubles_per_failure_up_to_its_cap() -> None:
    from openai_ws._session.pool import ExtraSockets

    extra = ExtraSockets(cooldown=30.0, cooldown_max=100.0)
    assert extra.allowed(0.0)
    assert [extra.failed(now) for now in (0.0, 10.0, 20.0)] == [30.0, 60.0, 100.0]
    assert not extra.allowed(119.0) and extra.allowed(120.0)
    extra.opened()
    assert extra.allowed(0.0) and extra.failed(0.0) == 30.0


def test_a_forked_child_opens_extra_sockets_although_the_parent_was_opening_one() -> None:
    """A fork while the parent opens an extra socket: the child's engine starts with no
    socket opening (that thread is not in the child) and a wait on its own lock, so its
    own 17th request opens an extra socket instead of waiting for the parent's forever."""
    server = HoldingServer()
    gate = server.server.connect_gates[2] = threading.Event()
    session = session_for(server, max_sockets=2, connect_timeout=10.0, request_timeout=10.0)
    try:
        parent = submit_all(session, [f"p{i}" for i in range(16)])
        server.wait_held(16)
        spill = _in_thread(lambda: session.submit(ask("p16")))  # its handshake hangs
        deadline = time.monotonic() + 3
        while server.server.connect_attempts < 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        session._engine.forked()  # as the engine's fork hook runs in a child
        child = submit_all(session, [f"c{i}" for i in range(16)])  # the child's first socket
        server.wait_held(32)
        late = _in_thread(lambda: session.submit(ask("c16")))
        server.wait_held(33)
        assert server.socket_of["c16"] == 3  # a fourth transport: the child's extra socket
        assert late and not isinstance(late[0], BaseException), late
        server.release()
        assert [p.result().output_text for p in child] == [f"c{i}" for i in range(16)]
        assert late[0].result().output_text == "c16"
    finally:
        gate.set()
        deadline = time.monotonic() + 3
        while not spill and time.monotonic() < deadline:
            time.sleep(0.005)
        server.release()
        for transport in server.server.transports[:2]:  # the "parent's" sockets
            transport.close_with(1000)
        session.close()
    del parent


def test_a_request_out_of_time_while_opening_a_socket_times_out_and_blames_no_server() -> None:
    """The handshake of an extra socket outlasts the request that opened it: that request
    raises RequestTimeoutError, and no cooldown starts (the server did nothing wrong), so
    the next request opens the extra socket at once."""
    server = HoldingServer()
    gate = server.server.connect_gates[2] = threading.Event()
    with session_for(server, max_sockets=2, connect_timeout=5.0) as session:
        fill = submit_all(session, [f"r{i}" for i in range(16)])
        server.wait_held(16)
        with pytest.raises(RequestTimeoutError):
            session.submit(ask("hurried"), timeout=0.2).result()
        gate.set()
        more = session.submit(ask("patient"))
        server.wait_held(17)
        # The third transport (the second, whose handshake was cut short, never opened).
        assert server.socket_of["patient"] == 2 and server.server.connect_attempts == 3
        server.release()
        assert more.result().output_text == "patient"
        for p in fill:
            p.result()
