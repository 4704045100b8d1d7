"""Small helpers for the emulator tests: a plain websocket-client and requests, nothing more.

These helpers speak the wire protocol by hand (JSON dicts over
``websocket.create_connection`` and ``requests``) so that the emulator is tested
independently of the ``openai_ws`` client. They must never import the client
library.
"""

from __future__ import annotations

import json
import struct
from typing import Any, Dict, Iterator, List, Optional, Tuple

import requests
import websocket

MODEL = "gpt-emulator-test"
TERMINAL = frozenset({"response.completed", "response.failed", "response.incomplete", "error"})
RESPONSE_KEYS = frozenset(
    {
        "id",
        "object",
        "created_at",
        "completed_at",
        "status",
        "background",
        "error",
        "incomplete_details",
        "instructions",
        "max_output_tokens",
        "max_tool_calls",
        "model",
        "output",
        "parallel_tool_calls",
        "previous_response_id",
        "conversation",
        "reasoning",
        "service_tier",
        "store",
        "temperature",
        "text",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "truncation",
        "usage",
        "user",
        "safety_identifier",
        "prompt_cache_key",
        "metadata",
    }
)


def auth_header(emu: Any) -> List[str]:
    """The handshake header list websocket-client expects."""
    return [f"Authorization: Bearer {emu.api_key}"]


def connect(emu: Any, *, timeout: float = 5.0, **kwargs: Any) -> websocket.WebSocket:
    """Open a WebSocket to the emulator with its API key."""
    headers = auth_header(emu) + list(kwargs.pop("header", []))
    sslopt = {"ca_certs": emu.ca_file} if emu.ca_file else None
    return websocket.create_connection(
        emu.ws_url, header=headers, timeout=timeout, sslopt=sslopt, **kwargs
    )


def create(ws: websocket.WebSocket, **fields: Any) -> Dict[str, Any]:
    """Send a ``response.create`` (model filled in unless given); return the body sent."""
    body: Dict[str, Any] = {"type": "response.create", "model": MODEL}
    body.update(fields)
    ws.send(json.dumps(body))
    return body


def recv(ws: websocket.WebSocket) -> Dict[str, Any]:
    """Receive one event."""
    data = ws.recv()
    event: Dict[str, Any] = json.loads(data)
    return event


def until_terminal(ws: websocket.WebSocket) -> List[Dict[str, Any]]:
    """Events up to and including the next terminal event (single request in flight)."""
    events: List[Dict[str, Any]] = []
    while True:
        event = recv(ws)
        events.append(event)
        if event["type"] in TERMINAL:
            return events


def collect_lanes(ws: websocket.WebSocket, count: int) -> List[Dict[str, Any]]:
    """Every event until ``count`` terminal events have arrived (any lanes)."""
    events: List[Dict[str, Any]] = []
    done = 0
    while done < count:
        event = recv(ws)
        events.append(event)
        if event["type"] in TERMINAL:
            done += 1
    return events


def ask(ws: websocket.WebSocket, **fields: Any) -> List[Dict[str, Any]]:
    """``create`` then ``until_terminal``."""
    create(ws, **fields)
    return until_terminal(ws)


def text_of(events: List[Dict[str, Any]]) -> str:
    """Concatenated ``response.output_text.delta`` deltas."""
    return "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")


def types(events: List[Dict[str, Any]]) -> List[str]:
    """Event types in order."""
    return [e["type"] for e in events]


def frames_until_close(ws: websocket.WebSocket) -> Tuple[List[Tuple[int, bytes]], Optional[int]]:
    """Read raw frames until a close frame; return (data frames, close code or None)."""
    frames: List[Tuple[int, bytes]] = []
    while True:
        opcode, data = ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
            return frames, code
        if opcode in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
            frames.append((opcode, data))


def http(emu: Any) -> requests.Session:
    """A requests session with the API key (and the CA when TLS)."""
    session = requests.Session()
    # requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE override Session.verify; a
    # local server needs neither that nor proxies from the environment.
    session.trust_env = False
    session.headers["Authorization"] = f"Bearer {emu.api_key}"
    if emu.ca_file:
        session.verify = emu.ca_file
    return session


def sse_events(response: requests.Response) -> Iterator[Tuple[str, str]]:
    """Parse an SSE body into ``(event name, data)`` pairs (``event`` may be empty)."""
    name = ""
    data: List[str] = []
    for line in response.text.split("\n"):
        if line == "":
            if data:
                yield name, "\n".join(data)
            name, data = "", []
        elif line.startswith("event: "):
            name = line[len("event: ") :]
        elif line.startswith("data: "):
            data.append(line[len("data: ") :])
    if data:
        yield name, "\n".join(data)
