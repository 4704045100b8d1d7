"""Pure tests of the SSE decoder (``_protocol/sse.py``) on crafted bytes, split anywhere."""

from __future__ import annotations

import time
from typing import List, Tuple

import pytest

from openai_ws._protocol.sse import SSEDecoder

CRAFTED = (
    b"\xef\xbb\xbf"  # a byte-order mark before the first line
    b": a comment line\r\n"
    b"event: response.created\r\n"
    b'data: {"a":1}\r\n'
    b"\r\n"
    b"event: multi\n"
    b"data: line one\n"
    b"data:line two\n"
    b"id: 7\n"
    b"retry: 100\n"
    b"\n"
    b"data: cr only\r"
    b"\r"
    b": keepalive\n\n"
    b"data\n"
    b"data: x\n"
    b"\n"
    b"data: [DONE]\n\n"
)
CRAFTED_EVENTS = [
    ("response.created", b'{"a":1}'),
    ("multi", b"line one\nline two"),
    ("message", b"cr only"),
    ("message", b"\nx"),
    ("message", b"[DONE]"),
]


def _decode(chunks: List[bytes]) -> List[Tuple[str, bytes]]:
    decoder = SSEDecoder()
    events: List[Tuple[str, bytes]] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    events.extend(decoder.flush())
    return events


def test_sse_decoder_whole_stream() -> None:
    """Names, multi-line data, comments, BOM, \\r, \\r\\n and unknown fields follow the spec."""
    assert _decode([CRAFTED]) == CRAFTED_EVENTS


def test_sse_decoder_every_split_point() -> None:
    """Splitting the bytes anywhere (also inside \\r\\n and the BOM) gives the same events."""
    for cut in range(len(CRAFTED) + 1):
        assert _decode([CRAFTED[:cut], CRAFTED[cut:]]) == CRAFTED_EVENTS, cut
    for first in range(0, len(CRAFTED), 7):
        for second in range(first, len(CRAFTED), 5):
            parts = [CRAFTED[:first], CRAFTED[first:second], CRAFTED[second:]]
            assert _decode(parts) == CRAFTED_EVENTS, (first, second)


def test_sse_decoder_byte_by_byte() -> None:
    """Feeding one byte at a time gives the same events."""
    assert _decode([CRAFTED[i : i + 1] for i in range(len(CRAFTED))]) == CRAFTED_EVENTS


def test_sse_decoder_crlf_split_is_one_line_end() -> None:
    """A \\r at the end of a chunk and the \\n that starts the next one end a single line."""
    assert _decode([b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]) == [("message", b"a\nb")]


def test_sse_decoder_no_data_no_event() -> None:
    """A blank line after only comments or an event name dispatches nothing and resets the name."""
    assert _decode([b": hi\n\nevent: x\n\ndata: 1\n\n"]) == [("message", b"1")]


def test_sse_decoder_long_line_in_small_chunks_is_linear() -> None:
    """A 4 MB data line fed in 512-byte pieces decodes in linear time (no re-copying)."""
    payload = b"x" * (4 * 1024 * 1024)
    body = b"data: " + payload + b"\n\n"
    start = time.perf_counter()
    events = _decode([body[i : i + 512] for i in range(0, len(body), 512)])
    assert time.perf_counter() - start < 1.0
    assert events == [("message", payload)]


def test_sse_decoder_flush_keeps_unterminated_event() -> None:
    """An event cut off by the end of the stream (no blank line) is still returned by flush()."""
    assert _decode([b"data: {}\n"]) == [("message", b"{}")]
    assert _decode([b"data: {}"]) == [("message", b"{}")]
    assert _decode([b"data: {}\r"]) == [("message", b"{}")]
    assert _decode([b""]) == []


# -- caps (issue 10 "Memory") ----------------------------------------------------------


def test_sse_decoder_caps_a_line_without_newline() -> None:
    """A line that never ends is a MessageTooLargeError once it passes the cap, fed in pieces."""
    from openai_ws.errors import MessageTooLargeError, ProtocolError

    decoder = SSEDecoder(max_event_size=1000)
    decoder.feed(b"data: ")
    with pytest.raises(MessageTooLargeError) as info:
        for _ in range(100):
            decoder.feed(b"a" * 100)
    assert isinstance(info.value, ProtocolError)
    assert info.value.limit == 1000


def test_sse_decoder_caps_data_lines_without_a_blank_line() -> None:
    """data: lines that never end their event are a MessageTooLargeError past the cap."""
    from openai_ws.errors import MessageTooLargeError

    decoder = SSEDecoder(max_event_size=1000)
    with pytest.raises(MessageTooLargeError):
        for _ in range(100):
            decoder.feed(b"data: " + b"b" * 50 + b"\n")


def test_sse_decoder_caps_a_long_line_inside_one_chunk() -> None:
    """A too-long line that arrives whole in one chunk is refused too (also a comment)."""
    from openai_ws.errors import MessageTooLargeError

    with pytest.raises(MessageTooLargeError):
        SSEDecoder(max_event_size=1000).feed(b"data: " + b"c" * 2000 + b"\n\n")
    with pytest.raises(MessageTooLargeError):
        SSEDecoder(max_event_size=1000).feed(b": " + b"c" * 5000 + b"\n")


def test_sse_decoder_cap_is_per_event() -> None:
    """Events up to the cap pass, however many of them come."""
    event = b"data: " + b"d" * 1000 + b"\n\n"
    decoder = SSEDecoder(max_event_size=1000)
    events = []
    for _ in range(50):
        events.extend(decoder.feed(event))
    assert len(events) == 50 and all(data == b"d" * 1000 for _, data in events)


def test_sse_decoder_default_cap_matches_the_websocket_default() -> None:
    """The default event cap is the WebSocket max_message_size default, when that is finite."""
    from openai_ws._protocol.sse import DEFAULT_MAX_EVENT_SIZE
    from openai_ws._session.options import DEFAULT_MAX_MESSAGE_SIZE

    assert DEFAULT_MAX_EVENT_SIZE is not None and DEFAULT_MAX_EVENT_SIZE >= 1 << 20
    if DEFAULT_MAX_MESSAGE_SIZE is not None:
        assert DEFAULT_MAX_EVENT_SIZE == DEFAULT_MAX_MESSAGE_SIZE
