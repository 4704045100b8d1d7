"""RFC 6455 frames from bytes: the incoming half of the WebSocket framing layer.

:class:`FrameParser` is fed the bytes of the socket as they arrive, split
anywhere, and hands back whole messages and control frames: a text message as
``str`` (its UTF-8 checked, section 8.1), everything else as ``bytes``. It
joins fragments and fails the connection (raises :class:`FrameError` with the
close code to send) on anything section 5 forbids, each from the frame header
alone, before its payload is waited for:

* 1002: an RSV bit (no extension is ever negotiated), an unknown opcode, a
  masked frame (section 5.1: a client MUST close on one), a 64-bit length with
  its most significant bit set (section 5.2), a fragmented or long control
  frame (section 5.5), a continuation without a message or a new message
  inside one (section 5.4), a bad close payload (see :func:`parse_close`);
* 1007: a text message that is not UTF-8, found fragment by fragment with an
  incremental decoder, so a bad first fragment fails before the rest arrives;
* 1009: a message over ``max_size``, where every fragment is also charged
  :data:`FRAGMENT_COST` bytes (a million empty fragments cost like a
  64 MB message), or with more than ``max_fragments`` fragments.

Cost is linear in the bytes whatever the read sizes: received bytes are kept in
one ``bytearray`` consumed from the front, a frame's text is decoded straight
out of it, and a fragmented message is a list of pieces with a running total,
joined once.

websocket-client still does the handshake, sending, pings and closing; the
transport uses this class only to read, because websocket-client reads every
frame with two or three system calls and builds several objects per frame
(profiling ``benchmarks/session_vs_bare.py`` showed that as the largest cost of
the reader thread), where one 64 KiB read here yields every frame it holds.

This module must never do I/O, read a clock, start a thread, take a lock or
log. :class:`FrameReader` adapts the parser to a blocking ``read(n)`` callable
(the tests' stand-in for a socket); the read itself is the caller's.
"""

from __future__ import annotations

import codecs
from typing import Any, Callable, List, Optional, Tuple, Union

__all__ = [
    "FRAGMENT_COST",
    "MAX_FRAGMENTS",
    "OP_BINARY",
    "OP_CLOSE",
    "OP_CONT",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "FrameError",
    "FrameParser",
    "FrameReader",
    "parse_close",
    "sendable_close_code",
]

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

FRAGMENT_COST = 64
"""Bytes each fragment of a message is charged toward ``max_size`` on top of its payload:
about what one kept piece costs in memory (a ``str`` header and its list slot), so that
many tiny fragments are bounded like one large message. 4 MiB sent in 64-byte fragments
(Autobahn case 9.3.1) counts as 8 MiB."""

MAX_FRAGMENTS = 1 << 20
"""Most fragments one message may have, even with no size limit (then close 1009)."""

_LONGEST = (1 << 63) - 1
"""The largest payload length section 5.2 allows (the most significant bit must be 0)."""

Payload = Union[str, bytes]
Message = Tuple[int, Payload]
"""``(opcode, payload)``: a whole text (``str``) or binary message, or one control frame."""

_Utf8Decoder = codecs.getincrementaldecoder("utf-8")


class FrameError(Exception):
    """The peer broke RFC 6455; the connection must close with ``code``."""

    def __init__(self, message: str, code: int = 1002) -> None:
        super().__init__(message)
        self.code = code


class FrameParser:
    """Whole messages out of received bytes (sans-IO; one consumer)."""

    __slots__ = (
        "_buffer",
        "_count",
        "_decoder",
        "_opcode",
        "_pieces",
        "_pos",
        "_size",
        "max_fragments",
        "max_size",
    )

    def __init__(self, max_size: Optional[int] = None, max_fragments: int = MAX_FRAGMENTS) -> None:
        self.max_size = max_size
        """Largest message accepted, in bytes (``None``: no limit)."""
        self.max_fragments = max_fragments
        """Most fragments one message may have."""
        self._buffer = bytearray()
        self._pos = 0  # bytes of _buffer already consumed
        # The fragmented message being joined (_opcode 0: none).
        self._opcode = 0
        self._pieces: List[Any] = []
        self._size = 0  # its payload bytes plus FRAGMENT_COST per fragment
        self._count = 0  # its fragments so far
        self._decoder: Optional[codecs.IncrementalDecoder] = None

    @property
    def buffered(self) -> int:
        """Received bytes not yet returned as part of a frame."""
        return len(self._buffer) - self._pos

    def feed(self, data: bytes) -> None:
        """Add received bytes."""
        buffer = self._buffer
        if self._pos and self._pos >= len(buffer) - self._pos:
            # Drop the consumed front once it outweighs the rest: each byte is
            # moved at most once per halving, so the cost stays linear.
            del buffer[: self._pos]
            self._pos = 0
        buffer += data

    def texts(self, append: Callable[[str], None]) -> Optional[Message]:
        """Hand the small whole text messages at the front to ``append``; return what follows.

        The batch form of :meth:`next` for the common case, a run of unfragmented
        text frames of under 4 KiB: each is decoded and handed on in one tight
        loop, with the same checks (UTF-8, ``max_size``). At the first frame of
        any other kind (control, binary, fragmented, larger, or breaking a rule)
        it returns what :meth:`next` returns for it: the message, ``None`` until
        more bytes come, or it raises :class:`FrameError`. Call it again after
        handling a returned message; ``None`` means the buffer holds no whole frame.
        """
        if not self._opcode:
            buffer = self._buffer
            size = len(buffer)
            pos = self._pos
            limit = self.max_size if self.max_size is not None else _LONGEST
            while size - pos >= 4:
                # 0x81: FIN and a text opcode, no RSV bit; second < 126: unmasked, short.
                if buffer[pos] != 0x81:
                    break
                length = buffer[pos + 1]
                if length < 126:
                    start = pos + 2
                elif length == 126:
                    length = (buffer[pos + 2] << 8) | buffer[pos + 3]
                    start = pos + 4
                    if length >= 4096:
                        break
                else:  # masked, or a 64-bit length
                    break
                end = start + length
                if end > size or length > limit:
                    break  # not all here yet, or over the limit: next() decides
                try:
                    append(buffer[start:end].decode("utf-8"))
                except UnicodeDecodeError as exc:
                    self._pos = end
                    raise FrameError(f"a text message is not UTF-8: {exc}", code=1007) from None
                pos = end
            if pos == size:
                buffer.clear()
                pos = 0
            self._pos = pos
        return self.next()

    def next(self) -> Optional[Message]:
        """The next whole message or control frame, or ``None`` until more bytes come.

        Raises :class:`FrameError` when the bytes break the protocol.
        """
        buffer = self._buffer
        while True:
            pos = self._pos
            available = len(buffer) - pos
            if available < 2:
                return None
            first, second = buffer[pos], buffer[pos + 1]
            length = second & 0x7F
            header = 2
            if length == 126:
                if available < 4:
                    return None
                length = int.from_bytes(buffer[pos + 2 : pos + 4], "big")
                header = 4
            elif length == 127:
                if available < 10:
                    return None
                length = int.from_bytes(buffer[pos + 2 : pos + 10], "big")
                header = 10
            opcode = first & 0x0F
            fin = first & 0x80
            start = pos + header
            end = start + length
            if first == 0x81 and not second & 0x80 and not self._opcode and length < 4096:
                # The hot path, a small whole text frame: only the size rule can apply.
                if self.max_size is not None and length > self.max_size:
                    self._check(first, second, opcode, fin, length)
                if len(buffer) < end:
                    return None
                self._pos = end
                try:
                    text = buffer[start:end].decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise FrameError(f"a text message is not UTF-8: {exc}", code=1007) from None
                if end == len(buffer):
                    buffer.clear()
                    self._pos = 0
                return OP_TEXT, text
            self._check(first, second, opcode, fin, length)
            if len(buffer) < end:
                return None
            self._pos = end
            if opcode >= OP_CLOSE:
                payload = bytes(buffer[start:end])
                self._consumed()
                return opcode, payload
            if fin and not self._opcode:
                # A whole message in one frame (a large text one, or binary).
                message = self._whole(opcode, start, end)
                self._consumed()
                return message
            if not self._opcode:
                self._opcode = opcode
                if opcode == OP_TEXT:
                    self._decoder = _Utf8Decoder()
            self._count += 1
            self._size += length + FRAGMENT_COST
            self._piece(start, end, bool(fin))
            self._consumed()
            if fin:
                return self._joined()

    def _check(self, first: int, second: int, opcode: int, fin: int, length: int) -> None:
        """Refuse a frame from its header alone (sections 5.1, 5.2, 5.4, 5.5)."""
        if first & 0x70:
            raise FrameError("a frame used an RSV bit, but no extension was negotiated")
        if second & 0x80:
            raise FrameError("the server sent a masked frame (RFC 6455 section 5.1)")
        if length > _LONGEST:
            raise FrameError("a frame length has its most significant bit set")
        if opcode >= OP_CLOSE:
            if opcode > OP_PONG:
                raise FrameError(f"unknown opcode {opcode:#x}")
            if not fin or length > 125:
                raise FrameError("a control frame was fragmented or too long")
            return
        if opcode == OP_CONT:
            if not self._opcode:
                raise FrameError("a continuation frame without a message to continue")
            if self._count >= self.max_fragments:
                raise FrameError(
                    f"a message has more than {self.max_fragments} fragments", code=1009
                )
            size = self._size + length + FRAGMENT_COST
        elif opcode in (OP_TEXT, OP_BINARY):
            if self._opcode:
                raise FrameError("a new message started inside a fragmented one")
            size = length if fin else length + FRAGMENT_COST
        else:
            raise FrameError(f"unknown opcode {opcode:#x}")
        if self.max_size is not None and size > self.max_size:
            raise FrameError(
                f"a message of at least {size} bytes exceeds max_message_size={self.max_size}",
                code=1009,
            )

    def _whole(self, opcode: int, start: int, end: int) -> Message:
        """The message held by ``buffer[start:end]``: text decoded at once, with no copy."""
        buffer = self._buffer
        if opcode == OP_BINARY:
            return opcode, bytes(buffer[start:end])
        try:
            view = memoryview(buffer)
            try:
                return opcode, str(view[start:end], "utf-8")
            finally:
                view.release()
        except UnicodeDecodeError as exc:
            raise FrameError(f"a text message is not UTF-8: {exc}", code=1007) from None

    def _piece(self, start: int, end: int, final: bool) -> None:
        """Keep one fragment's payload (text is decoded as it comes, to fail fast)."""
        buffer = self._buffer
        decoder = self._decoder
        if decoder is None:
            if end > start:
                self._pieces.append(bytes(buffer[start:end]))
            return
        view = memoryview(buffer)
        try:
            text = decoder.decode(view[start:end], final)
        except UnicodeDecodeError as exc:
            raise FrameError(f"a text message is not UTF-8: {exc}", code=1007) from None
        finally:
            view.release()
        if text:
            self._pieces.append(text)

    def _joined(self) -> Message:
        """The fragmented message just finished, and a fresh state for the next."""
        opcode, pieces = self._opcode, self._pieces
        self._opcode = 0
        self._pieces = []
        self._size = self._count = 0
        self._decoder = None
        if opcode == OP_TEXT:
            return opcode, "".join(pieces)
        return opcode, b"".join(pieces)

    def _consumed(self) -> None:
        """Forget the buffer once every byte of it was used."""
        if self._pos == len(self._buffer):
            self._buffer.clear()
            self._pos = 0


class FrameReader:
    """A :class:`FrameParser` pulling from a blocking ``read(n)`` callable.

    ``read`` raises on timeout or end of stream; bytes already read stay in
    the parser, so a timeout in the middle of a frame loses nothing.
    """

    __slots__ = ("_chunk", "_read", "parser")

    def __init__(
        self,
        read: Callable[[int], bytes],
        chunk: int = 64 * 1024,
        max_size: Optional[int] = None,
    ) -> None:
        self._read = read
        self._chunk = chunk
        self.parser = FrameParser(max_size)

    def message(self, on_ping: Callable[[bytes], None]) -> Message:
        """The next whole message or control frame (pings go to ``on_ping``)."""
        parser = self.parser
        while True:
            message = parser.next()
            if message is None:
                parser.feed(self._read(self._chunk))
            elif message[0] == OP_PING:
                on_ping(message[1])  # type: ignore[arg-type]
            else:
                return message


def sendable_close_code(code: int) -> bool:
    """Whether ``code`` may appear in a close frame (RFC 6455 section 7.4).

    1000-1003, 1007-1014 (1012-1014 registered with IANA since) and 3000-4999;
    0-999, 1004-1006, 1015, 1016-2999 and 5000 and up are never sent.
    """
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


def parse_close(payload: bytes) -> Tuple[int, str]:
    """``(code, reason)`` of a close frame's payload (1005: no code given).

    Raises :class:`FrameError`: 1002 for a 1-byte payload or a code that may not
    be sent (section 7.4), 1007 for a reason that is not UTF-8 (section 5.5.1).
    """
    if not payload:
        return 1005, ""
    if len(payload) < 2:
        raise FrameError("a close frame had a 1-byte payload")
    code = int.from_bytes(payload[:2], "big")
    if not sendable_close_code(code):
        raise FrameError(f"a close frame had the invalid code {code}")
    try:
        return code, payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise FrameError("a close reason is not UTF-8", code=1007) from None
