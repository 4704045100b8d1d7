"""One caller's request as the session tracks it, across every attempt.

Who writes what (the attributes are plain; the rules below make that safe):

* ``key`` and ``mode`` are set at creation and never change; so is ``body``,
  except for a conversation turn (``context``), whose ``body`` is the one of
  the two that the current attempt sends (set by the caller's thread in
  :meth:`Engine.submit <openai_ws._session.engine.Engine.submit>`).
* ``inbox`` is replaced by the caller's thread before each new attempt, while
  no connection holds the request (so no reader can put into the old one
  after that); ``pending`` is set by the caller's thread in
  :meth:`Engine.submit <openai_ws._session.engine.Engine.submit>`, under the
  engine's lock, when the attempt registers. The reader finds the request
  under that lock and then puts into its ``inbox``.
* ``abandoned`` is set (only ever False to True) by the caller's thread or by
  the reader, without a lock; the reader checks it under the engine's lock
  before each put, so at worst one more event goes to an inbox nobody reads.
* ``delivered``, ``replays``, ``retries``, ``collected``, ``settling`` and
  ``over_http`` are read and written by the caller's thread only (the attempt
  loop).
* ``started`` is set by the reader (under the engine's lock) once the current
  attempt's response id is known, and cleared by the caller's thread when an
  attempt registers; ``steered`` is set (False to True) by the reader when a
  steer of the request is accepted. A steering thread waits on ``started``.

This module must never do I/O, take a lock or know about sockets.
"""

from __future__ import annotations

import enum
import threading
from typing import Any, Dict, List, Optional, Tuple

import attrs

from .._protocol.routing import Pending
from .inbox import Inbox
from .telemetry import NO_TELEMETRY, RequestTelemetry

__all__ = ["Mode", "RequestState", "TurnContext"]


class Mode(enum.Enum):
    """What the caller wants from a request."""

    RESULT = "result"
    """``send()``: only the final response; events are consumed as they come."""
    EVENTS = "events"
    """``stream()``: every event, typed, in order."""


@attrs.define(eq=False)
class TurnContext:
    """Two ways to send one conversation turn; the session picks one per attempt.

    ``delta`` continues ``parent_id`` with only the new items (cheap: the
    server holds the rest); ``full`` carries the whole history as ``input``
    without ``previous_response_id`` (works anywhere). The delta is used when
    the parent is available where the attempt goes: stored server-side
    (``parent_stored``), or in the cache of the socket and lane that produced
    it. ``whole`` forces the full body from now on (the server did not find
    the parent). Written by the caller's thread only.
    """

    delta: Dict[str, Any]
    full: Dict[str, Any]
    parent_id: str
    parent_stored: bool
    whole: bool = False


@attrs.define(eq=False)
class RequestState:
    """One caller's request across every attempt (socket, replay, HTTP)."""

    key: int
    """The session's id of the request (stable across attempts)."""
    body: Dict[str, Any]
    """The caller's fields, exactly as they go over HTTP (no ``type``)."""
    mode: Mode
    inbox: Inbox
    """The inbox of the current attempt."""
    pending: Optional[Pending] = None
    """The routing core's record of the current socket attempt."""
    abandoned: bool = False
    """The caller stopped listening; the reader drops the request's events."""
    delivered: int = 0
    """Events handed to the caller so far, over every attempt."""
    replays: int = 0
    """Times the request was sent again because its socket ended first."""
    retries: int = 0
    """Times the request was sent again after a retryable ``error`` event."""
    collected: List[Dict[str, Any]] = attrs.Factory(list)
    """``response.output_item.done`` events kept untyped for the response (RESULT mode)."""
    last_sequence: Optional[int] = None
    """``sequence_number`` of the last event handed to a ``stream()`` caller."""
    context: Optional[TurnContext] = None
    """For a conversation turn: the two bodies ``body`` is chosen from, per attempt."""
    started: threading.Event = attrs.Factory(threading.Event)
    """Set once the current socket attempt's response id is known (it can be steered)."""
    steered: bool = False
    """A steer of the request was accepted: sending it again would lose the steer."""
    settling: bool = False
    """Its response ended while a steer was open; a successor may follow."""
    over_http: bool = False
    """The request went over HTTP (it can no longer be steered)."""
    done: bool = False
    """The caller's attempt loop ended (answered, failed or abandoned)."""
    answered: bool = False
    """Its socket attempt ended with its terminal event (set by the reader)."""
    answers: List[Any] = attrs.Factory(list)
    """The responses a ``send()`` received, in order: more than one when a steer's
    successor followed (written by the caller's thread)."""
    steer_inputs: List[Tuple[Optional[str], Any]] = attrs.Factory(list)
    """``(successor response id, steering input)`` of every applied steer (reader)."""
    telemetry: RequestTelemetry = NO_TELEMETRY
    """The request's OpenTelemetry recorder (its one span); the no-op when nothing records."""

    def http_body(self) -> Dict[str, Any]:
        """The body of an HTTP attempt: over HTTP only a stored parent exists."""
        context = self.context
        if context is None:
            return self.body
        stored = context.parent_stored and not context.whole
        return context.delta if stored else context.full
