"""RFC 6455 frames from bytes: the incoming half of the WebSocket framing layer.

:class:`FrameParser` is fed the bytes of the socket as they arrive, split
anywhere, and hands back whole messages and control frames. It joins
fragments, unmasks a masked frame (servers must not mask, but a masked frame
is still readable), refuses RSV bits (no extension is ever negotiated), unknown
opcodes, fragmented or long control frames and continuation frames without a
message (close code 1002), and messages over ``max_size`` (1009). Received
bytes are kept in one ``bytearray`` consumed from the front, and the size of a
fragmented message is a running total, so parsing costs time linear in the
bytes whatever the read sizes.

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

from typing import Callable, Optional, Tuple

__all__ = [
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

Message = Tuple[int, bytes]
"""``(opcode, payload)``: a whole text or binary message, or one control frame."""


class FrameError(Exception):
    """The peer broke RFC 6455 framing; the connection must close with ``code``."""

    def __init__(self, message: str, code: int = 1002) -> None:
        super().__init__(message)
        self.code = code


class FrameParser:
    """Whole messages out of received bytes (sans-IO; one consumer)."""

    __slots__ = (
        "_buffer",
        "_fragments",
        "_fragments_opcode",
        "_fragments_size",
        "_pos",
        "max_size",
    )

    def __init__(self, max_size: Optional[int] = None) -> None:
        self.max_size = max_size
        """Largest message accepted, in bytes (``None``: no limit)."""
        self._buffer = bytearray()
        self._pos = 0  # bytes of _buffer already consumed
        self._fragments: list[bytes] = []
        self._fragments_opcode = 0
        self._fragments_size = 0

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

    def next(self) -> Optional[Message]:
        """The next whole message or control frame, or ``None`` until more bytes come.

        Raises :class:`FrameError` when the bytes break the protocol.
        """
        while True:
            frame = self._frame()
            if frame is None:
                return None
            opcode, fin, payload = frame
            if opcode >= OP_CLOSE:
                if not fin or len(payload) > 125:
                    raise FrameError("a control frame was fragmented or too long")
                if opcode in (OP_PING, OP_PONG, OP_CLOSE):
                    return opcode, payload
                raise FrameError(f"unknown opcode {opcode:#x}")
            if opcode in (OP_TEXT, OP_BINARY):
                if self._fragments:
                    raise FrameError("a new message started inside a fragmented one")
                if fin:
                    return opcode, payload
                self._fragments = [payload]
                self._fragments_opcode = opcode
                self._fragments_size = len(payload)
            elif opcode == OP_CONT:
                if not self._fragments:
                    raise FrameError("a continuation frame without a message to continue")
                self._fragments.append(payload)
                self._fragments_size += len(payload)
                if self.max_size is not None and self._fragments_size > self.max_size:
                    raise FrameError("a fragmented message exceeds the size limit", code=1009)
                if fin:
                    whole = b"".join(self._fragments)
                    self._fragments = []
                    self._fragments_size = 0
                    return self._fragments_opcode, whole
            else:
                raise FrameError(f"unknown opcode {opcode:#x}")

    def _frame(self) -> Optional[Tuple[int, bool, bytes]]:
        """One complete frame ``(opcode, fin, payload)`` from the buffer, if there is one."""
        buffer, pos = self._buffer, self._pos
        available = len(buffer) - pos
        if available < 2:
            return None
        first, second = buffer[pos], buffer[pos + 1]
        if first & 0x70:
            raise FrameError("a frame used an RSV bit, but no extension was negotiated")
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
        if self.max_size is not None and length > self.max_size:
            raise FrameError(f"a frame of {length} bytes exceeds the limit", code=1009)
        masked = second & 0x80
        if masked:
            header += 4
        if available < header + length:
            return None
        payload = bytes(buffer[pos + header : pos + header + length])
        if masked:
            key = bytes(buffer[pos + header - 4 : pos + header])
            mask = int.from_bytes((key * (length // 4 + 1))[:length], "big")
            payload = (int.from_bytes(payload, "big") ^ mask).to_bytes(length, "big")
        self._pos = pos + header + length
        if self._pos == len(buffer):
            buffer.clear()
            self._pos = 0
        return first & 0x0F, bool(first & 0x80), payload


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
                on_ping(message[1])
            else:
                return message


def sendable_close_code(code: int) -> bool:
    """Whether ``code`` may appear in a close frame (RFC 6455 section 7.4)."""
    return 1000 <= code < 5000 and code not in (1004, 1005, 1006, 1015)


def parse_close(payload: bytes) -> Tuple[int, str]:
    """``(code, reason)`` of a close frame's payload (1005: no code given)."""
    code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
    return code, payload[2:].decode("utf-8", "replace")
