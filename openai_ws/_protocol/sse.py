"""Server-sent events from bytes: the ``text/event-stream`` decoder of the HTTP path.

The HTTP transport feeds it the body of a streaming ``POST /responses`` as it
arrives; it returns ``(event, data)`` pairs by the WHATWG interpretation rules
(https://html.spec.whatwg.org/multipage/server-sent-events.html).

This module must never do I/O, read a clock, start a thread, take a lock or
log, and it knows nothing of JSON or of the Responses API: the transport parses
``data``.
"""

from __future__ import annotations

from typing import List, Tuple

__all__ = ["SSEDecoder"]

_BOM = b"\xef\xbb\xbf"




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
    """

    __slots__ = ("_data", "_event", "_parts", "_skip_lf", "_started")

    def __init__(self) -> None:
        self._parts: List[bytes] = []  # an unfinished line, in pieces (joined once)
        self._skip_lf = False
        self._started = False
        self._data: List[bytes] = []
        self._event = ""

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
        if b"\n" not in chunk and b"\r" not in chunk:
            self._parts.append(chunk)  # no line ends yet: no copying of a long line
            return []
        if self._parts:
            self._parts.append(chunk)
            chunk = b"".join(self._parts)
            self._parts = []
        lines = chunk.splitlines()
        last = chunk[-1]
        if last in (0x0A, 0x0D):
            self._skip_lf = last == 0x0D
        else:
            self._parts.append(lines.pop())
        events: List[Tuple[str, bytes]] = []
        data = self._data
        for line in lines:
            if not line:
                if data:
                    events.append((self._event or "message", b"\n".join(data)))
                    data = self._data = []
                self._event = ""
            elif line.startswith(b"data:"):
                data.append(line[6:] if line[5:6] == b" " else line[5:])
            elif line[0] != 0x3A:  # ":" starts a comment
                self._field(line)
        return events

    def _field(self, line: bytes) -> None:
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"data":  # "data" without a colon: an empty data line
            self._data.append(value)

    def flush(self) -> List[Tuple[str, bytes]]:
        """The event still open when the stream ended (the spec drops it; we keep it)."""
        events = self.feed(b"\n\n") if (self._parts or self._data) else []
        self._parts = []
        self._data = []
        self._event = ""
        return events
