"""``FrameParser.texts``, the batch read of small text frames, against ``FrameParser.next``.

The transport reads with ``texts`` (one tight loop per run of small text frames);
whatever it meets, split anywhere, it must give the same messages, in the same
order, and fail with the same close code as ``next`` (RFC 6455 sections 5.2,
5.4, 5.5 and 8.1: framing, fragments, control frames, UTF-8).
"""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openai_ws._protocol.frames import OP_BINARY, OP_TEXT, FrameError, FrameParser


def frame(opcode: int, payload: bytes, *, fin: bool = True, first: Optional[int] = None) -> bytes:
    """One unmasked server frame (``first`` overrides the first header byte)."""
    head = first if first is not None else (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        return bytes([head, n]) + payload
    if n < 1 << 16:
        return bytes([head, 126]) + n.to_bytes(2, "big") + payload
    return bytes([head, 127]) + n.to_bytes(8, "big") + payload


def text(value: str) -> bytes:
    return frame(OP_TEXT, value.encode("utf-8"))


Result = Tuple[List[Tuple[int, Any]], Optional[int]]


def by_next(data: bytes, cuts: List[int], max_size: Optional[int] = None) -> Result:
    """Messages (and the close code of a failure) reading with ``next``."""
    parser, out = FrameParser(max_size), []
    try:
        for piece in _pieces(data, cuts):
            parser.feed(piece)
            while (message := parser.next()) is not None:
                out.append(message)
    except FrameError as exc:
        return out, exc.code
    return out, None


def by_texts(data: bytes, cuts: List[int], max_size: Optional[int] = None) -> Result:
    """The same, reading as the transport does: ``texts`` first, other messages as returned."""
    parser, got = FrameParser(max_size), []  # texts append str; the rest is appended as is
    code = None
    try:
        for piece in _pieces(data, cuts):
            parser.feed(piece)
            while (message := parser.texts(got.append)) is not None:
                got.append(message)
    except FrameError as exc:
        code = exc.code
    return [(OP_TEXT, m) if isinstance(m, str) else m for m in got], code


def _pieces(data: bytes, cuts: List[int]) -> List[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in zip(points, points[1:])]


_FRAMES = st.one_of(
    st.text(max_size=40).map(text),  # short text
    st.text(min_size=100, max_size=1500).map(text),  # 126-form lengths
    st.binary(max_size=300).map(lambda b: frame(OP_BINARY, b)),
    st.binary(max_size=20).map(lambda b: frame(0x9, b)),  # ping
    st.binary(max_size=20).map(lambda b: frame(0xA, b)),  # pong
    st.text(min_size=1, max_size=30).map(
        lambda t: frame(OP_TEXT, t[:1].encode(), fin=False) + frame(0, t[1:].encode())
    ),  # a fragmented text message
    st.just(frame(OP_TEXT, b"x" * 5000)),  # a text frame of 4 KiB or more
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_FRAMES, max_size=12), st.lists(st.integers(min_value=0), max_size=6))
def test_texts_reads_what_next_reads_however_the_bytes_are_split(
    frames: List[bytes], cuts: List[int]
) -> None:
    """Any mix of frames, cut anywhere: `texts` gives the messages `next` gives, in order."""
    data = b"".join(frames)
    assert by_texts(data, cuts) == by_next(data, cuts)


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        (frame(OP_TEXT, b"\xff\xfe"), 1007),  # not UTF-8 (section 8.1)
        (frame(OP_TEXT, b"ok", first=0xC1), 1002),  # an RSV bit (section 5.2)
        (bytes([0x81, 0x82, 1, 2, 3, 4]) + b"ab", 1002),  # masked by the server (section 5.1)
        (frame(0, b"cont"), 1002),  # a continuation without a message (section 5.4)
        (frame(0x9, b"p", fin=False), 1002),  # a fragmented ping (section 5.5)
    ],
)
def test_texts_fails_the_connection_with_the_code_next_names(bad: bytes, code: int) -> None:
    """A bad frame after good ones: the good ones arrive, then the same FrameError code."""
    data = text("one") + text("two") + bad + text("never")
    assert by_texts(data, []) == by_next(data, []) == ([(OP_TEXT, "one"), (OP_TEXT, "two")], code)


def test_texts_applies_max_size_like_next() -> None:
    """A text frame over max_size fails with 1009 after the frames before it, as with next."""
    data = text("a" * 10) + text("b" * 300)
    expected = ([(OP_TEXT, "a" * 10)], 1009)
    assert by_texts(data, [], max_size=100) == by_next(data, [], max_size=100) == expected


def test_texts_keeps_a_partial_frame_for_the_next_feed() -> None:
    """A frame cut in its header or payload is kept; the rest completes it."""
    data = text("first") + text("second" * 30)
    out: List[str] = []
    parser = FrameParser()
    parser.feed(data[:-1])
    assert parser.texts(out.append) is None
    assert out == ["first"]
    parser.feed(data[-1:])
    assert parser.texts(out.append) is None
    assert out == ["first", "second" * 30]
    assert parser.buffered == 0
