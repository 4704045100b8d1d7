"""A scripted stand-in for the WebSocket transport: the session without sockets.

:class:`FakeServer` is plugged into a session through its transport seam
(``Session(options, transport=server.factory)``). Each connect makes a
:class:`FakeTransport`; every frame the session sends is decoded and recorded,
and handed to the test's ``script`` callback, which answers by pushing frames
(text events, closes) that the session's real reader thread receives through
:meth:`FakeTransport.recv`. No socket, no thread but the session's own readers.
"""

from __future__ import annotations

import json
import queue
import threading
from typing import Any, Callable, Dict, List, Mapping, Optional

from openai_ws._session.options import SessionOptions
from openai_ws._transports.ws import Closed, Frame, Idle
from openai_ws.errors import ConnectError

Script = Callable[["FakeTransport", Dict[str, Any]], None]


def options(**overrides: Any) -> SessionOptions:
    """Session options for a fake server (short timeouts, no keepalive pings)."""
    settings: Dict[str, Any] = {
        "url": "ws://fake/v1/responses",
        "headers": {"Authorization": "Bearer sk-fake"},
        "ssl_context": None,
        "proxy": None,
        "connect_timeout": 1.0,
        "request_timeout": 5.0,
        "event_timeout": None,
        "ping_interval": None,
        "close_timeout": 1.0,
        "backoff_initial": 0.01,
        "backoff_max": 0.05,
    }
    settings.update(overrides)
    return SessionOptions(**settings)


def response(rid: str, status: str = "completed", text: str = "") -> Dict[str, Any]:
    """A minimal Response object as the server sends it."""
    output: List[Dict[str, Any]] = []
    if text:
        output.append(message_item(f"msg_{rid}", text))
    return {
        "id": rid,
        "object": "response",
        "created_at": 1,
        "status": status,
        "model": "gpt-fake",
        "output": output,
        "usage": {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2},
    }


def message_item(item_id: str, text: str) -> Dict[str, Any]:
    return {
        "type": "message",
        "id": item_id,
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def answer(rid: str, text: str, lane: Optional[str], *, omit_output: bool = False) -> List[Any]:
    """The events of a whole short answer on ``lane`` (``None``: untagged)."""
    events: List[Dict[str, Any]] = [
        {"type": "response.created", "response": response(rid, "in_progress")},
        {
            "type": "response.output_text.delta",
            "item_id": f"msg_{rid}",
            "output_index": 0,
            "content_index": 0,
            "delta": text,
        },
        {
            "type": "response.output_item.done",
            "output_index": 0,
            "item": message_item(f"msg_{rid}", text),
        },
        {"type": "response.completed", "response": response(rid, text="" if omit_output else text)},
    ]
    if lane is not None:
        for event in events:
            event["stream_id"] = lane
    return events


def error_event(
    status: Optional[int],
    code: str,
    message: str,
    *,
    kind: str = "invalid_request_error",
    param: Optional[str] = None,
    lane: Optional[str] = None,
) -> Dict[str, Any]:
    """An ``error`` event as the service sends it (``lane``: its ``stream_id``, if any)."""
    event: Dict[str, Any] = {
        "type": "error",
        "status": status,
        "error": {"type": kind, "code": code, "message": message, "param": param},
    }
    if lane is not None:
        event["stream_id"] = lane
    return event


class FakeTransport:
    """One fake socket (the :class:`~openai_ws._session.connection.Transport` protocol)."""

    def __init__(
        self,
        server: FakeServer,
        url: str,
        max_message_size: Optional[int],
        connect_timeout: float = 1.0,
    ) -> None:
        self.server = server
        self.url = url
        self.connect_timeout = connect_timeout
        self.max_message_size = max_message_size
        self.sent: List[Dict[str, Any]] = []
        self.closes_sent: List[int] = []
        self.pings = 0
        self.released = threading.Event()
        self._incoming: queue.Queue[List[Frame]] = queue.Queue()
        self._timeout: Optional[float] = None
        self._ended = False

    # -- what the test does ---------------------------------------------------

    def push(self, *events: Any) -> None:
        """Deliver events (dicts are JSON-encoded; strings go as they are) in one read."""
        batch: List[Frame] = [e if isinstance(e, str) else json.dumps(e) for e in events]
        self._incoming.put(batch)

    def push_frames(self, *frames: Frame) -> None:
        """Deliver transport values (``Closed``, ``Binary``, ...) in one read."""
        self._incoming.put(list(frames))

    def close_with(self, code: Optional[int], reason: str = "") -> None:
        """The server ends the connection (``None``: no close frame, like a reset)."""
        self._incoming.put([Closed(code, reason)])

    # -- what the session calls -----------------------------------------------

    def connect(self) -> None:
        self.server.connect_attempts += 1
        gate = self.server.connect_gates.get(self.server.connect_attempts)
        if gate is not None and not gate.wait(self.connect_timeout):
            raise ConnectError(f"timed out after {self.connect_timeout:.2f}s")
        if self.server.hang_connects:
            # A server that accepts and never answers the upgrade: the attempt
            # ends when the connect timeout it was given runs out.
            self.server.hung.wait(self.connect_timeout)
            raise ConnectError(f"timed out after {self.connect_timeout:.2f}s")
        refusal = self.server.refuse_next.pop(0) if self.server.refuse_next else None
        if refusal is not None:
            raise refusal

    def send_text(self, data: str, deadline: Optional[float] = None) -> None:
        frame = json.loads(data)
        self.sent.append(frame)
        self.server.sent.append(frame)
        if self.server.script is not None:
            self.server.script(self, frame)

    def recv(self) -> List[Frame]:
        try:
            return self._incoming.get(timeout=self._timeout)
        except queue.Empty:
            return [Idle()]

    def set_recv_timeout(self, seconds: Optional[float]) -> None:
        self._timeout = seconds

    def backlog(self) -> bool:
        """Whether the next recv() will not block: more reads already pushed."""
        return self.server.report_backlog and not self._incoming.empty()

    def ping(self) -> None:
        self.pings += 1

    def send_close(self, code: int = 1000) -> None:
        if self._ended:
            return
        self._ended = True
        self.closes_sent.append(code)
        self._incoming.put([Closed(code, "")])  # the peer echoes the close

    def abort(self) -> None:
        self._incoming.put([Closed(None, "aborted")])

    def release(self) -> None:
        self.released.set()


class FakeServer:
    """Makes :class:`FakeTransport` objects and remembers them, in connect order."""

    def __init__(self, script: Optional[Script] = None) -> None:
        self.script = script
        self.transports: List[FakeTransport] = []
        self.sent: List[Dict[str, Any]] = []
        self.connect_attempts = 0
        self.refuse_next: List[ConnectError] = []
        """Errors the next connects raise, in order (then connects succeed)."""
        self.hang_connects = False
        """Connects wait out their connect timeout, then fail (set ``hung`` to end them)."""
        self.hung = threading.Event()
        self.report_backlog = True
        """Transports say when more reads are queued (``backlog()``); False: never."""
        self.connect_gates: Dict[int, threading.Event] = {}
        """Connect number N (1 for the first) waits for ``connect_gates[N]`` to be set, up to
        its connect timeout (then it fails), before it succeeds: a slow handshake."""

    def factory(
        self,
        url: str,
        *,
        headers: Mapping[str, str],
        connect_timeout: float,
        ssl_context: Any = None,
        proxy: Optional[str] = None,
        max_message_size: Optional[int] = None,
    ) -> FakeTransport:
        transport = FakeTransport(self, url, max_message_size, connect_timeout)
        self.transports.append(transport)
        return transport

    @property
    def last(self) -> FakeTransport:
        return self.transports[-1]


class FakeHTTP:
    """An HTTP transport stand-in (``Session(options, http=lambda: fake, ...)``).

    It records every body it is given (a deep copy) and answers ``create`` and
    ``stream`` with the text ``reply(body)`` (default ``http:<input>``), or
    raises ``error`` when one is set.
    """

    def __init__(
        self,
        reply: Optional[Callable[[Dict[str, Any]], str]] = None,
        error: Optional[BaseException] = None,
    ) -> None:
        self.reply = reply or (lambda body: f"http:{body.get('input')}")
        self.error = error
        self.bodies: List[Dict[str, Any]] = []

    def _take(self, body: Mapping[str, Any]) -> str:
        self.bodies.append(json.loads(json.dumps(body)))
        if self.error is not None:
            raise self.error
        return self.reply(self.bodies[-1])

    def create(self, body: Mapping[str, Any], *, timeout: Any = None, cancel: Any = None) -> Any:
        from openai_ws._convert import parse_response

        return parse_response(response("resp_http", text=self._take(body)))

    def stream(self, body: Mapping[str, Any], *, timeout: Any = None, cancel: Any = None) -> Any:
        from openai_ws._convert import structure_event

        text = self._take(body)
        for event in answer("resp_http", text, None):
            yield structure_event(event)


def echo_script(transport: FakeTransport, frame: Dict[str, Any]) -> None:
    """Answer every create at once with the text of its ``input``, on its lane."""
    rid = f"resp_{len(transport.server.sent)}"
    transport.push(*answer(rid, str(frame.get("input")), frame.get("stream_id")))
