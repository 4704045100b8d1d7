"""Server-sent events from bytes: the ``text/event-stream`` decoder of the HTTP path.

The HTTP transport feeds it the body of a streaming ``POST /responses`` as it
arrives; it returns ``(event, data)`` pairs by the WHATWG interpretation rules
(https://html.spec.whatwg.org/multipage/server-sent-events.html).

Sizes are capped, so that a peer cannot make it hold unbounded memory: a line
(also one that never ends, or a comment) and the data of one event (``data:``
lines that never meet a blank line) may each be at most ``max_event_size``
bytes (:data:`DEFAULT_MAX_EVENT_SIZE`, ``None``: no cap); beyond that
:meth:`SSEDecoder.feed` raises :class:`~openai_ws.errors.MessageTooLargeError`.
The stream as a whole is not capped (a long answer is many small events): the
request's deadline bounds it.

This module must never do I/O, read a clock, start a thread, take a lock or
log, and it knows nothing of JSON or of the Responses API: the transport parses
``data``.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

from ..errors import MessageTooLargeError

__all__ = ["DEFAULT_MAX_EVENT_SIZE", "SSEDecoder"]

_BOM = b"\xef\xbb\xbf"

DEFAULT_MAX_EVENT_SIZE: int = 16 * 1024 * 1024
"""Largest SSE event (and line), in bytes: 16 MiB.

The same number as the WebSocket ``max_message_size`` default
(``_session/options.py:DEFAULT_MAX_MESSAGE_SIZE``, where the measurement is): an
event over SSE is the same JSON as the WebSocket message. The HTTP transport
also caps a JSON answer (``responses.create``) at it.
"""

_FIELD_ROOM = 64  # a line may hold this much more than the event cap ("data: " and spaces)


def _too_large(what: str, limit: int, size: int) -> MessageTooLargeError:
    return MessageTooLargeError(
        f"the event stream sent {what} larger than {_size(limit)} (max_event_size)",
        limit=limit,
        size=size,
    )


def _size(n: int) -> str:
    if n % (1024 * 1024) == 0:
        return f"{n // (1024 * 1024)} MiB"
    if n % 1024 == 0:
        return f"{n // 1024} KiB"
    return f"{n} bytes"



class SSEDecoder:
    """Incremental ``text/event-stream`` decoder (the WHATWG interpretation rules).

    :meth:`feed` takes raw bytes as they arrive, split anywhere (also inside a
    ``\\r\\n``), and returns the ``(event, data)`` pairs that the bytes complete.
    Lines end in ``\\n``, ``\\r\\n`` or ``\\r``; ``data:`` lines of one event are
    joined with ``\\n``; a leading space after the colon is dropped; lines
    starting with ``:`` are comments; ``id:``, ``retry:`` and unknown fields are
    ignored; a blank line dispatches the event, unless it had no ``data``. Data
    stays ``bytes`` (``json.loads`` takes them as they are). :meth:`flush`
    returns an event left unterminated when the stream ends.
    ``max_event_size`` caps a line and an event's data (see the module
    docstring); after :class:`~openai_ws.errors.MessageTooLargeError` the
    decoder must not be fed again.
    """

    __slots__ = (
        "_data",
        "_data_size",
        "_event",
        "_line_cap",
        "_max_event",
        "_parts",
        "_parts_size",
        "_skip_lf",
        "_started",
    )

    def __init__(self, max_event_size: Optional[int] = DEFAULT_MAX_EVENT_SIZE) -> None:
        self._parts: List[bytes] = []  # an unfinished line, in pieces (joined once)
        self._parts_size = 0
        self._skip_lf = False
        self._started = False
        self._data: List[bytes] = []
        self._data_size = 0  # bytes in _data, plus one per line for the joining "\n"
        self._event = ""
        self._max_event = max_event_size
        self._line_cap = None if max_event_size is None else max_event_size + _FIELD_ROOM

    def feed(self, chunk: bytes) -> List[Tuple[str, bytes]]:
        """Decode ``chunk``; return the events it completes, in order."""
        if self._skip_lf and chunk:
            # The previous chunk ended in "\r": a "\n" here belongs to that line end.
            self._skip_lf = False
            if chunk[0] == 0x0A:
                chunk = chunk[1:]
        if not chunk:
            return []
        if not self._started:
            head = b"".join(self._parts) + chunk
            self._parts = []
            if len(head) < 3 and _BOM.startswith(head):
                self._parts.append(head)
                return []
            self._started = True
            chunk = head[3:] if head.startswith(_BOM) else head
            if not chunk:
                return []
        cap = self._line_cap
        if b"\n" not in chunk and b"\r" not in chunk:
            self._parts.append(chunk)  # no line ends yet: no copying of a long line
            self._parts_size += len(chunk)
            if cap is not None and self._parts_size > cap:
                raise _too_large("a line", cap - _FIELD_ROOM, self._parts_size)
            return []
        if self._parts:
            self._parts.append(chunk)
            chunk = b"".join(self._parts)
            self._parts = []
            self._parts_size = 0
        lines = chunk.splitlines()
        last = chunk[-1]
        if last in (0x0A, 0x0D):
            self._skip_lf = last == 0x0D
        else:
            tail = lines.pop()
            self._parts.append(tail)
            self._parts_size = len(tail)
        if cap is not None and len(chunk) > cap:
            # Only then can one of these lines be too long (a cheap test per chunk).
            longest = max(map(len, lines), default=0)
            if max(longest, self._parts_size) > cap:
                raise _too_large("a line", cap - _FIELD_ROOM, max(longest, self._parts_size))
        events: List[Tuple[str, bytes]] = []
        data = self._data
        size = self._data_size
        limit = self._max_event
        for line in lines:
            if not line:
                if data:
                    events.append((self._event or "message", b"\n".join(data)))
                    data = self._data = []
                    size = 0
                self._event = ""
            elif line.startswith(b"data:"):
                value = line[6:] if line[5:6] == b" " else line[5:]
                data.append(value)
                size += len(value) + 1
                if limit is not None and size > limit + 1:
                    raise _too_large("an event", limit, size - 1)
            elif line == b"data":  # "data" without a colon: an empty data line
                data.append(b"")
                size += 1
            elif line[0] != 0x3A:  # ":" starts a comment
                self._field(line)
        self._data_size = size
        return events

    def _field(self, line: bytes) -> None:
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"event":
            self._event = value.decode("utf-8", "replace")

    def flush(self) -> List[Tuple[str, bytes]]:
        """The event still open when the stream ended (the spec drops it; we keep it)."""
        events = self.feed(b"\n\n") if (self._parts or self._data) else []
        self._parts = []
        self._parts_size = 0
        self._data = []
        self._data_size = 0
        self._event = ""
        return events
