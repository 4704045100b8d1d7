"""The :class:`EventStream` face: the events of one request, for one consumer.

Returned by :meth:`Session.stream <openai_ws.Session.stream>`,
:meth:`Responses.stream <openai_ws.Responses.stream>` and
:meth:`Conversation.stream <openai_ws.Conversation.stream>`. It wraps an
iterator of typed events with what a user of the official SDK expects: a
context manager, ``close()`` from any thread, and a clear error (not the
generator's) when two threads iterate it.

This module must never know where the events come from (a socket, HTTP): its
creator passes the iterator, what to do on close, and how to wake a waiting
consumer.
"""

from __future__ import annotations

import collections
import weakref
from typing import Any, Callable, Deque, Dict, Iterator, List, Optional, Union

from ._session.steering import Steer
from .errors import OpenAIWSError, SteeringUnavailableError
from .events import ServerEvent

__all__ = ["EventStream"]


class _StreamClosed(OpenAIWSError):
    """Ends a ``next()`` blocked in another thread when :meth:`EventStream.close` is called;
    never reaches a caller (the stream stops instead)."""


class EventStream(Iterator[ServerEvent]):
    """The events of one request, as returned by :meth:`Session.stream` and
    :meth:`openai_ws.Responses.stream`.

    An iterator (and a context manager) that yields typed events and stops
    after the terminal one. :meth:`close` (or leaving the ``with`` block, or
    dropping the last reference, even before the first ``next()``) stops
    listening: over the WebSocket the request is abandoned and its remaining
    events are dropped as they arrive; over HTTP the connection is dropped.

    One thread at a time may iterate a stream: a ``next()`` while another
    thread is inside ``next()`` raises ``RuntimeError`` (the first thread is
    not disturbed). :meth:`close` may be called from any thread; a thread
    waiting inside ``next()`` then stops iterating (``StopIteration``): at once
    while it waits for the socket or for ``client.responses.stream``'s HTTP
    answer, at its next event during a session's HTTP fallback.

    :meth:`steer` adds input to the response while it runs (WebSocket only),
    from any thread.

    ``events`` is the iterator to wrap; ``on_close`` runs once, on
    :meth:`close` or when the stream is collected; ``interrupt`` wakes a
    thread blocked in ``next()`` (called by :meth:`close` from another thread);
    ``steer`` sends a steer (``None``: the stream cannot be steered).
    """

    def __init__(
        self,
        events: Iterator[ServerEvent],
        on_close: Optional[Callable[[], None]] = None,
        *,
        interrupt: Optional[Callable[[], None]] = None,
        steer: Optional[Callable[[Any, Optional[float]], Steer]] = None,
    ) -> None:
        self._events = events
        # The one-consumer guard: a thread enters by popping the token, leaves by putting it
        # back. deque.pop/append are atomic (one C call under the GIL), like a lock's
        # non-blocking acquire, at a fraction of its cost per event.
        self._token: Deque[bool] = collections.deque((True,))
        self._closed = False
        self._interrupt = interrupt
        self._steer = steer
        self._finalizer = weakref.finalize(self, on_close or _nothing)

    def __iter__(self) -> EventStream:
        return self

    def __next__(self) -> ServerEvent:
        token = self._token
        try:
            token.pop()
        except IndexError:
            raise RuntimeError(
                "another thread is iterating this EventStream; a stream has one consumer "
                "(iterate it in one thread, or hand its events to others through a queue)"
            ) from None
        try:
            if self._closed:
                self._close_events()
                raise StopIteration
            try:
                event: ServerEvent = next(self._events)
            except Exception:  # StopIteration included
                if self._closed:  # close() from another thread woke us: just stop
                    self._close_events()
                    raise StopIteration from None
                raise
            return event
        finally:
            token.append(True)

    def steer(
        self, input: Union[str, List[Dict[str, Any]]], *, timeout: Optional[float] = None
    ) -> Steer:
        """Add ``input`` to the response while it runs; return the :class:`~openai_ws.Steer`.

        ``input`` is a string or a list of user messages (text, images, files).
        The steer is sent on the socket that runs the response, once it has
        started (``response.created``; ``timeout`` bounds that wait); the
        server's answer arrives later: ``steer.result()`` waits for it, and the
        stream yields the ``response.steer.*`` events. An applied steer ends
        the running response early (``response.incomplete``, reason
        ``steered``) or after it, and a successor response carrying the input
        follows in the same stream, which ends after the successor's terminal
        event. Only newer models can be steered (others fail with
        :class:`~openai_ws.errors.SteeringNotSupportedError`). Raises
        :class:`~openai_ws.errors.SteeringUnavailableError` for a stream that
        is not on a WebSocket (HTTP, or a fallback),
        :class:`~openai_ws.errors.SteerResponseCompletedError` once the
        response is over, ``TypeError``/``ValueError`` for an input of the
        wrong shape (nothing is sent then).
        """
        if self._steer is None:
            raise SteeringUnavailableError(
                "this stream is not on a WebSocket session; only Session streams can be steered"
            )
        return self._steer(input, timeout)

    def close(self) -> None:
        """Stop listening; the request is abandoned if it has not finished. Idempotent;
        safe from any thread."""
        self._closed = True
        token = self._token
        try:
            token.pop()
        except IndexError:
            pass  # another thread is inside next()
        else:
            try:
                self._close_events()
            finally:
                token.append(True)
            self._finalizer()
            return
        # Another thread is inside next(): let it finish the iterator itself.
        self._finalizer()
        if self._interrupt is not None:
            self._interrupt()

    def _close_events(self) -> None:
        close = getattr(self._events, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _nothing() -> None:
    """The ``on_close`` of a stream that needs none."""
