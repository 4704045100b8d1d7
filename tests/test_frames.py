"""Pure tests of the incoming frame parser of the WebSocket transport (RFC 6455 §5)."""

from __future__ import annotations

import os
from typing import List, Tuple

import pytest
import websocket
from hypothesis import given
from hypothesis import strategies as st

from openai_ws._protocol.frames import FrameError as _FrameError
from openai_ws._protocol.frames import FrameReader as _FrameReader


def frame(
    opcode: int, payload: bytes, *, fin: bool = True, mask: bool = False, rsv: int = 0
) -> bytes:
    """Encode one frame the way a server (or, with ``mask``, a client) would."""
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    length = len(payload)
    if length < 126:
        header = bytes([first, (0x80 if mask else 0) | length])
    elif length < 1 << 16:
        header = bytes([first, (0x80 if mask else 0) | 126]) + length.to_bytes(2, "big")
    else:
        header = bytes([first, (0x80 if mask else 0) | 127]) + length.to_bytes(8, "big")
    if not mask:
        return header + payload
    key = os.urandom(4)
    return header + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class Feed:
    """A socket stand-in: hands out the data in the given pieces, then times out."""

    def __init__(self, pieces: List[bytes]) -> None:
        self.pieces = list(pieces)

    def __call__(self, bufsize: int) -> bytes:
        if not self.pieces:
            raise websocket.WebSocketTimeoutException("no data")
        piece = self.pieces.pop(0)
        if len(piece) > bufsize:  # like a socket: never more than asked for
            self.pieces.insert(0, piece[bufsize:])
            piece = piece[:bufsize]
        return piece


def messages(data: List[bytes], count: int) -> Tuple[List[Tuple[int, bytes]], List[bytes]]:
    pings: List[bytes] = []
    reader = _FrameReader(Feed(data))
    return [reader.message(pings.append) for _ in range(count)], pings


def test_small_medium_and_large_lengths() -> None:
    """7-bit, 16-bit and 64-bit payload lengths all parse."""
    payloads = [b"x" * 5, b"y" * 300, b"z" * 70_000]
    data = b"".join(frame(0x1, p) for p in payloads)
    got, _ = messages([data], 3)
    assert got == [(0x1, p) for p in payloads]


def test_fragmented_message_with_a_ping_inside() -> None:
    """Fragments join into one message; a ping between them is answered, not returned."""
    data = (
        frame(0x1, b"hel", fin=False)
        + frame(0x9, b"p1")
        + frame(0x0, b"lo ", fin=False)
        + frame(0x0, b"world")
    )
    got, pings = messages([data], 1)
    assert got == [(0x1, b"hello world")]
    assert pings == [b"p1"]


def test_masked_frame_is_unmasked() -> None:
    """A masked frame (not expected from a server) is still read correctly."""
    got, _ = messages([frame(0x1, b"masked text", mask=True)], 1)
    assert got == [(0x1, b"masked text")]


def test_control_frames_are_returned() -> None:
    """Pong and close frames come back to the caller with their payload."""
    got, _ = messages([frame(0xA, b"") + frame(0x8, (1000).to_bytes(2, "big") + b"bye")], 2)
    assert got == [(0xA, b""), (0x8, b"\x03\xe8bye")]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (frame(0x1, b"x", rsv=4), "RSV"),
        (frame(0x0, b"x"), "continuation"),
        (frame(0x1, b"a", fin=False) + frame(0x1, b"b"), "inside a fragmented"),
        (frame(0x3, b"x"), "unknown opcode"),
        (frame(0x9, b"p", fin=False), "control frame"),
    ],
)
def test_protocol_errors(data: bytes, reason: str) -> None:
    """Framing the RFC forbids raises a _FrameError naming the problem."""
    with pytest.raises(_FrameError, match=reason):
        messages([data], 1)


def test_timeout_mid_frame_loses_nothing() -> None:
    """A read timeout in the middle of a frame leaves it whole for the next call."""
    data = frame(0x1, b"a" * 1000)
    feed = Feed([data[:3]])
    reader = _FrameReader(feed)
    with pytest.raises(websocket.WebSocketTimeoutException):
        reader.message(lambda _: None)
    feed.pieces.append(data[3:500])
    with pytest.raises(websocket.WebSocketTimeoutException):
        reader.message(lambda _: None)
    feed.pieces.append(data[500:])
    assert reader.message(lambda _: None) == (0x1, b"a" * 1000)


@given(
    payloads=st.lists(st.binary(max_size=400), min_size=1, max_size=6),
    cuts=st.lists(st.integers(min_value=1, max_value=50), max_size=40),
)
def test_any_split_of_the_stream_gives_the_same_messages(
    payloads: List[bytes], cuts: List[int]
) -> None:
    """However the bytes are split across reads, the same messages come out."""
    data = b"".join(frame(0x2, p) for p in payloads)
    pieces, pos = [], 0
    for cut in cuts:
        if pos >= len(data):
            break
        pieces.append(data[pos : pos + cut])
        pos += cut
    if pos < len(data):
        pieces.append(data[pos:])
    got, _ = messages(pieces, len(payloads))
    assert got == [(0x2, p) for p in payloads]


def test_oversized_frames_and_messages_are_refused() -> None:
    """A frame or a fragmented message above max_size raises a 1009 _FrameError."""
    reader = _FrameReader(Feed([frame(0x1, b"x" * 200)]), max_size=100)
    with pytest.raises(_FrameError) as info:
        reader.message(lambda _: None)
    assert info.value.code == 1009
    parts = frame(0x1, b"a" * 60, fin=False) + frame(0x0, b"b" * 60)
    with pytest.raises(_FrameError, match="size limit"):
        _FrameReader(Feed([parts]), max_size=100).message(lambda _: None)
