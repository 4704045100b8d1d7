"""Pure tests of the incoming frame parser of the WebSocket transport (RFC 6455 §5, §7, §8).

Most cases are tables in the spirit of the Autobahn client suite (sections 1-7 and 9),
expressed on the sans-IO parser; ``test_hostile_ws.py`` runs the end-to-end ones over a
real socket and checks the close code the client sends back.
"""

from __future__ import annotations

import os
from typing import Any, List, Optional, Tuple, Union

import pytest
import websocket
from hypothesis import given
from hypothesis import strategies as st

from openai_ws._protocol import frames as _frames
from openai_ws._protocol.frames import FrameError as _FrameError
from openai_ws._protocol.frames import FrameParser as _FrameParser
from openai_ws._protocol.frames import FrameReader as _FrameReader
from openai_ws._protocol.frames import parse_close as _parse_close


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


Payload = Union[str, bytes]


def messages(
    data: List[bytes], count: int, max_size: Optional[int] = None
) -> Tuple[List[Tuple[int, Payload]], List[bytes]]:
    """The first ``count`` messages of ``data`` (fed in those pieces), and the pings seen."""
    pings: List[bytes] = []
    reader = _FrameReader(Feed(data), max_size=max_size)
    return [reader.message(pings.append) for _ in range(count)], pings


def test_small_medium_and_large_lengths() -> None:
    """7-bit, 16-bit and 64-bit payload lengths all parse."""
    payloads = [b"x" * 5, b"y" * 300, b"z" * 70_000]
    data = b"".join(frame(0x1, p) for p in payloads)
    got, _ = messages([data], 3)
    assert got == [(0x1, p.decode()) for p in payloads]


def test_fragmented_message_with_a_ping_inside() -> None:
    """Fragments join into one message; a ping between them is answered, not returned."""
    data = (
        frame(0x1, b"hel", fin=False)
        + frame(0x9, b"p1")
        + frame(0x0, b"lo ", fin=False)
        + frame(0x0, b"world")
    )
    got, pings = messages([data], 1)
    assert got == [(0x1, "hello world")]
    assert pings == [b"p1"]


def test_masked_frame_is_a_protocol_error() -> None:
    """A masked server frame fails the connection with 1002 (RFC 6455 section 5.1: MUST)."""
    with pytest.raises(_FrameError, match="masked") as info:
        messages([frame(0x1, b"masked text", mask=True)], 1)
    assert info.value.code == 1002


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
    assert reader.message(lambda _: None) == (0x1, "a" * 1000)


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
    with pytest.raises(_FrameError, match="max_message_size=100"):
        _FrameReader(Feed([parts]), max_size=100).message(lambda _: None)


# -- lengths and sizes (RFC 6455 section 5.2, Autobahn 1.x, 9.x) -----------------------------


def header(opcode: int, length: int, *, fin: bool = True) -> bytes:
    """A frame header announcing ``length`` in the 64-bit form (any value, even illegal)."""
    return bytes([(0x80 if fin else 0) | opcode, 127]) + length.to_bytes(8, "big")


@pytest.mark.parametrize("length", [0, 125, 126, 127, 128, 65535, 65536])
@pytest.mark.parametrize("opcode", [0x1, 0x2])
def test_every_length_form_boundary(opcode: int, length: int) -> None:
    """Text and binary messages at the 7/16/64-bit length boundaries arrive whole (1.1, 1.2)."""
    payload = b"*" * length
    got, _ = messages([frame(opcode, payload)], 1)
    assert got == [(opcode, payload.decode() if opcode == 0x1 else payload)]


def test_a_length_with_the_top_bit_set_is_a_protocol_error_even_without_a_limit() -> None:
    """A 64-bit length over 2**63-1 is refused with 1002 at once (section 5.2: MSB must be 0)."""
    with pytest.raises(_FrameError) as info:
        messages([header(0x1, 1 << 63)], 1, max_size=None)
    assert info.value.code == 1002


def test_a_huge_announced_length_is_refused_before_its_payload() -> None:
    """A header announcing 2**62 bytes is refused with 1009 from the header alone."""
    with pytest.raises(_FrameError) as info:
        messages([header(0x1, 1 << 62)], 1, max_size=16 << 20)
    assert info.value.code == 1009


def test_the_default_limit_refuses_a_huge_announced_length() -> None:
    """Under the session's default max_message_size a 2**62-byte header fails with 1009."""
    from openai_ws._session.options import DEFAULT_MAX_MESSAGE_SIZE

    assert DEFAULT_MAX_MESSAGE_SIZE is not None
    with pytest.raises(_FrameError) as info:
        messages([header(0x2, 1 << 62)], 1, max_size=DEFAULT_MAX_MESSAGE_SIZE)
    assert info.value.code == 1009


def test_a_continuation_over_the_limit_is_refused_from_its_header() -> None:
    """A fragment whose header would take the message past the limit fails before its payload."""
    data = frame(0x1, b"a" * 60, fin=False) + header(0x0, 1 << 40)
    with pytest.raises(_FrameError, match="max_message_size=1000") as info:
        messages([data], 1, max_size=1000)
    assert info.value.code == 1009


def test_empty_fragments_count_toward_the_limit() -> None:
    """Each fragment is charged FRAGMENT_COST bytes, so empty ones cannot go on for ever."""
    limit = 64 * 1024
    data = frame(0x1, b"", fin=False) + frame(0x0, b"", fin=False) * 1_000_000
    parser = _FrameParser(limit)
    parser.feed(data)
    with pytest.raises(_FrameError) as info:
        parser.next()
    assert info.value.code == 1009
    consumed = len(data) - parser.buffered
    assert consumed <= 2 * (limit // _frames.FRAGMENT_COST + 1)  # 2 bytes per empty frame


def test_fragments_are_capped_even_without_a_size_limit() -> None:
    """With no size limit a message still may not have more than max_fragments fragments."""
    parser = _FrameParser(None, max_fragments=100)
    parser.feed(frame(0x1, b"x", fin=False) + frame(0x0, b"x", fin=False) * 200)
    with pytest.raises(_FrameError, match="fragments") as info:
        parser.next()
    assert info.value.code == 1009
    assert _frames.MAX_FRAGMENTS >= 1 << 16  # Autobahn 9.3.1: 4 MiB in 64-byte fragments


def test_a_message_in_64_byte_fragments_fits_the_default_limit() -> None:
    """4 MiB in 64-byte fragments (Autobahn 9.3.1) passes under the default 16 MiB limit."""
    from openai_ws._session.options import DEFAULT_MAX_MESSAGE_SIZE

    size, piece = 4 << 20, 64
    count = size // piece
    chunk = b"a" * piece
    data = frame(0x1, chunk, fin=False) + frame(0x0, chunk, fin=False) * (count - 2)
    data += frame(0x0, chunk)
    parser = _FrameParser(DEFAULT_MAX_MESSAGE_SIZE)
    parser.feed(data)
    message = parser.next()
    assert message is not None and message[0] == 0x1 and len(message[1]) == size


@pytest.mark.parametrize("fragment", [64, 4096, 65536, 1 << 20])
def test_large_fragmented_binary_messages(fragment: int) -> None:
    """A 2 MiB binary message in fragments of 64 B .. 1 MiB comes out whole (9.4, scaled)."""
    payload = os.urandom(2 << 20)
    pieces = [payload[i : i + fragment] for i in range(0, len(payload), fragment)]
    data = b"".join(
        frame(0x2 if i == 0 else 0x0, p, fin=i == len(pieces) - 1) for i, p in enumerate(pieces)
    )
    got, _ = messages([data], 1, max_size=4 << 20)
    assert got == [(0x2, payload)]


class CountingBuffer(bytearray):
    """A receive buffer that counts every byte it copies (no timing involved)."""

    copied = 0

    def _count(self, n: int) -> None:
        CountingBuffer.copied += n

    def __iadd__(self, other: Any) -> CountingBuffer:  # type: ignore[override]
        self._count(len(other))
        return super().__iadd__(other)  # type: ignore[return-value]

    def __add__(self, other: Any) -> CountingBuffer:  # type: ignore[override]
        self._count(len(self) + len(other))
        return CountingBuffer(bytes(self) + bytes(other))

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            part = CountingBuffer(super().__getitem__(index))
            self._count(len(part))
            return part
        return super().__getitem__(index)

    def __delitem__(self, index: Any) -> None:
        if isinstance(index, slice):
            _, stop, _ = index.indices(len(self))
            self._count(len(self) - stop)  # the tail may move
        super().__delitem__(index)


@pytest.mark.parametrize("chunk", [100, 1000, 16 * 1024])
def test_reading_many_small_chunks_copies_linearly(chunk: int) -> None:
    """Feeding a 2 MiB fragmented message in small reads copies each byte O(1) times."""
    piece = 60_000
    payload = b"z" * (2 << 20)
    pieces = [payload[i : i + piece] for i in range(0, len(payload), piece)]
    data = b"".join(
        frame(0x1 if i == 0 else 0x0, p, fin=i == len(pieces) - 1) for i, p in enumerate(pieces)
    )
    parser = _FrameParser(None)
    CountingBuffer.copied = 0
    parser._buffer = CountingBuffer()  # the one receive buffer the parser keeps
    got: List[Any] = []
    for start in range(0, len(data), chunk):
        parser.feed(data[start : start + chunk])
        message = parser.next()
        if message is not None:
            got.append(message)
    assert got == [(0x1, payload.decode())]
    copied, total = CountingBuffer.copied, len(data)
    assert copied <= 4 * total


# -- control frames (section 5.5, Autobahn 2.x, 5.1-5.2) -------------------------------------


def test_a_long_ping_is_refused_from_its_header() -> None:
    """A ping announcing 126 bytes fails with 1002 before its payload arrives (2.5)."""
    with pytest.raises(_FrameError, match="control") as info:
        messages([bytes([0x89, 126, 0, 126])], 1)
    assert info.value.code == 1002


@pytest.mark.parametrize("opcode", [0x9, 0xA])
def test_fragmented_control_frames_are_refused(opcode: int) -> None:
    """A ping or pong without FIN fails with 1002 (5.1, 5.2)."""
    with pytest.raises(_FrameError):
        messages([frame(opcode, b"x", fin=False) + frame(0x0, b"y")], 1)


def test_pings_of_125_bytes_sent_byte_by_byte_are_answered() -> None:
    """A 125-byte ping fed one byte per read comes out whole (2.4, 2.6)."""
    data = frame(0x9, b"p" * 125) + frame(0x1, b"after")
    got, pings = messages([bytes([b]) for b in data], 1)
    assert pings == [b"p" * 125] and got == [(0x1, "after")]


def test_unsolicited_pongs_are_returned_and_do_not_break_messages() -> None:
    """Pongs with and without payload between fragments are handed back in order (2.7, 2.8)."""
    data = (
        frame(0xA, b"")
        + frame(0x1, b"ab", fin=False)
        + frame(0xA, b"unsolicited")
        + frame(0x0, b"cd")
    )
    got, _ = messages([data], 3)
    assert got == [(0xA, b""), (0xA, b"unsolicited"), (0x1, "abcd")]


# -- reserved bits and opcodes (Autobahn 3.x, 4.x) ------------------------------------------


@pytest.mark.parametrize("rsv", range(1, 8))
@pytest.mark.parametrize("opcode", [0x1, 0x2, 0x9])
def test_any_reserved_bit_fails_the_connection(opcode: int, rsv: int) -> None:
    """RSV1-3 in any combination, on data or control frames, is a 1002 (3.1-3.7)."""
    with pytest.raises(_FrameError, match="RSV") as info:
        messages([frame(opcode, b"x", rsv=rsv)], 1)
    assert info.value.code == 1002


@pytest.mark.parametrize("opcode", [0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF])
def test_reserved_opcodes_fail_the_connection(opcode: int) -> None:
    """Reserved data (3-7) and control (11-15) opcodes are a 1002 (4.1.x, 4.2.x)."""
    with pytest.raises(_FrameError, match="opcode") as info:
        messages([frame(0x1, b"ok") + frame(opcode, b"x")], 2)
    assert info.value.code == 1002


# -- fragmentation (section 5.4, Autobahn 5.x) ----------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        frame(0x0, b"orphan"),  # 5.9
        frame(0x0, b"orphan", fin=False),  # 5.12
        frame(0x1, b"a", fin=False) + frame(0x0, b"b") + frame(0x0, b"orphan"),  # 5.15
        frame(0x1, b"a", fin=False) + frame(0x2, b"b"),  # 5.16-5.18
    ],
)
def test_continuations_out_of_place_fail_the_connection(data: bytes) -> None:
    """A continuation with no message, or a new message inside one, is a 1002."""
    reader = _FrameReader(Feed([data]))
    with pytest.raises(_FrameError) as info:
        while True:
            reader.message(lambda _: None)
    assert info.value.code == 1002


def test_fragments_fed_byte_by_byte_with_pings_in_between() -> None:
    """A text message in many fragments with pings between them, one byte per read (5.8, 5.20)."""
    data = b"".join(
        frame(0x1 if i == 0 else 0x0, bytes([65 + i]), fin=i == 9) + frame(0x9, b"%d" % i)
        for i in range(10)
    )
    got, pings = messages([bytes([b]) for b in data], 1)
    assert got == [(0x1, "ABCDEFGHIJ")]
    assert pings == [b"%d" % i for i in range(9)]  # the last ping comes after the message


# -- UTF-8 (section 8.1, Autobahn 6.x) ------------------------------------------------------

VALID_UTF8 = [
    b"",
    "Hello-\u00b5@\u00df\u00f6\u00e4\u00fc\u00e0\u00e1-UTF-8!!".encode(),
    "\u03ba\u1f79\u03c3\u03bc\u03b5".encode(),
    b"\x00",
    b"\x7f",
    b"\xc2\x80",
    b"\xdf\xbf",
    b"\xe0\xa0\x80",
    b"\xed\x9f\xbf",  # U+D7FF, the last before the surrogates
    b"\xee\x80\x80",  # U+E000, the first after them
    b"\xef\xbf\xbd",
    b"\xef\xbf\xbe",  # U+FFFE: a noncharacter, still valid UTF-8
    b"\xef\xbf\xbf",
    b"\xef\xb7\x90",
    b"\xf0\x90\x80\x80",
    b"\xf0\x9f\xbf\xbf",
    b"\xf4\x8f\xbf\xbf",  # U+10FFFF, the last code point
]

INVALID_UTF8 = [
    b"\x80",
    b"\xbf",
    b"\x80\xbf\x80",
    b"\xc0\x80",  # overlong NUL
    b"\xc0\xaf",
    b"\xc1\xbf",
    b"\xe0\x80\xaf",
    b"\xe0\x9f\xbf",
    b"\xf0\x80\x80\xaf",
    b"\xf0\x8f\xbf\xbf",
    b"\xed\xa0\x80",  # U+D800, a lone surrogate
    b"\xed\xbf\xbf",
    b"\xed\xa0\x80\xed\xb0\x80",  # a surrogate pair spelt in UTF-8
    b"\xf4\x90\x80\x80",  # above U+10FFFF
    b"\xf5\x80\x80\x80",
    b"\xf8\x88\x80\x80\x80",
    b"\xfc\x84\x80\x80\x80\x80",
    b"\xfe",
    b"\xff",
    b"\xfe\xfe\xff\xff",
    b"\xc2",  # truncated at the end of the message
    b"\xe0\xa0",
    b"\xf0\x90\x80",
    b"\xc2 ",
    "\u03ba\u1f79\u03c3\u03bc\u03b5".encode() + b"\xed\xa0\x80edited",
]


def splits(payload: bytes) -> List[List[bytes]]:
    """The payload as one frame, cut once at every position, and one byte per fragment."""
    ways = [[payload]]
    ways += [[payload[:i], payload[i:]] for i in range(1, len(payload))]
    if len(payload) > 2:
        ways.append([payload[i : i + 1] for i in range(len(payload))])
    return ways


def fragmented(pieces: List[bytes]) -> bytes:
    return b"".join(
        frame(0x1 if i == 0 else 0x0, p, fin=i == len(pieces) - 1) for i, p in enumerate(pieces)
    )


@pytest.mark.parametrize("payload", VALID_UTF8, ids=lambda p: p.hex() or "empty")
def test_valid_utf8_is_accepted_however_it_is_fragmented(payload: bytes) -> None:
    """Valid UTF-8 comes out as the same text, split at any byte (6.2, 6.5-6.8, 6.11)."""
    for pieces in splits(payload):
        got, _ = messages([fragmented(pieces)], 1)
        assert got == [(0x1, payload.decode())]


@pytest.mark.parametrize("payload", INVALID_UTF8, ids=lambda p: p.hex())
def test_invalid_utf8_fails_with_1007_however_it_is_fragmented(payload: bytes) -> None:
    """Invalid UTF-8 in a text message is a 1007, split at any byte (6.3, 6.6-6.21)."""
    for pieces in splits(payload):
        with pytest.raises(_FrameError) as info:
            messages([fragmented(pieces)], 1)
        assert info.value.code == 1007, pieces


def test_invalid_utf8_fails_fast_inside_a_fragmented_message() -> None:
    """A bad first fragment fails at once, before the rest of the message comes (6.4.1)."""
    reader = _FrameReader(Feed([frame(0x1, b"ok \xed\xa0\x80 then", fin=False)]))
    with pytest.raises(_FrameError) as info:
        reader.message(lambda _: None)  # a timeout here would mean it waited for more
    assert info.value.code == 1007


def test_a_code_point_split_across_fragments_is_not_an_error() -> None:
    """A sequence cut at a fragment boundary waits for its end (6.2.3, 6.2.4)."""
    text = "\U0001f600 ok"
    raw = text.encode()
    got, _ = messages([fragmented([raw[:2], b"", raw[2:3], raw[3:]])], 1)
    assert got == [(0x1, text)]


def test_binary_messages_are_not_checked_for_utf8() -> None:
    """A binary message may hold any bytes."""
    got, _ = messages([fragmented([b"\xff"]).replace(b"\x81", b"\x82", 1)], 1)
    assert got == [(0x2, b"\xff")]


# -- close frames (sections 5.5.1, 7.4, Autobahn 7.x) ---------------------------------------

VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014]
VALID_CODES += [3000, 3999, 4000, 4999]
INVALID_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return code.to_bytes(2, "big") + reason


def test_an_empty_close_has_no_code() -> None:
    """A close frame with no payload means 1005, no status (7.3.1)."""
    assert _parse_close(b"") == (1005, "")


@pytest.mark.parametrize("code", VALID_CODES)
def test_valid_close_codes_are_accepted(code: int) -> None:
    """Codes 1000-1003, 1007-1014 and 3000-4999 are read as given (7.7.x)."""
    assert _parse_close(close_payload(code, b"bye")) == (code, "bye")


@pytest.mark.parametrize("code", INVALID_CODES)
def test_invalid_close_codes_are_a_protocol_error(code: int) -> None:
    """0-999, 1004-1006, 1015, 1016-2999 and >= 5000 are a 1002 (7.9.x, 7.13.x)."""
    with pytest.raises(_FrameError) as info:
        _parse_close(close_payload(code))
    assert info.value.code == 1002


def test_a_one_byte_close_payload_is_a_protocol_error() -> None:
    """A close payload of 1 byte cannot hold a code: 1002 (7.3.2)."""
    with pytest.raises(_FrameError) as info:
        _parse_close(b"\x03")
    assert info.value.code == 1002


def test_a_close_reason_that_is_not_utf8_is_a_1007() -> None:
    """The reason must be UTF-8 (section 5.5.1): otherwise 1007 (7.5.1)."""
    with pytest.raises(_FrameError) as info:
        _parse_close(
            close_payload(1000, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80")
        )
    assert info.value.code == 1007


def test_close_reasons_up_to_the_control_frame_limit() -> None:
    """A 123-byte reason fits; a 124-byte one makes the frame too long, a 1002 (7.3.5, 7.3.6)."""
    got, _ = messages([frame(0x8, close_payload(1000, b"r" * 123))], 1)
    assert _parse_close(got[0][1]) == (1000, "r" * 123)  # type: ignore[arg-type]
    with pytest.raises(_FrameError) as info:
        messages([frame(0x8, close_payload(1000, b"r" * 124))], 1)
    assert info.value.code == 1002
