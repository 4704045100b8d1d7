"""The :class:`PendingResponse` face: a request sent now, answered later, steerable meanwhile.

Returned by :meth:`Session.submit <openai_ws.Session.submit>`. The request
leaves when ``submit()`` returns; :meth:`PendingResponse.result` then does
what ``send()`` does (wait, recover, return the whole response) in the thread
that calls it, while another thread may :meth:`~PendingResponse.steer` the
running response. This module must never know where the events come from: its
creator passes the request's attempt loop and how to steer and abandon it.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any, Callable, Dict, List, Optional, Union

from ._session.steering import Steer
from .errors import OpenAIWSError
from .models import Response

__all__ = ["PendingResponse"]


class PendingResponse:
    """A request submitted with :meth:`Session.submit`: steer it, then take its response.

    :meth:`result` blocks until the response (or its error) and may be called
    again, from any thread: every call returns the same response or raises the
    same error. :meth:`steer` and :meth:`cancel` may be called from any thread,
    also while another thread waits in :meth:`result`. ``response_id`` is the
    id of the response running now (``None`` until it started).
    """

    def __init__(
        self,
        run: Callable[[], Response],
        steer: Callable[[Any, Optional[float]], Steer],
        cancel: Callable[[], None],
        response_id: Callable[[], Optional[str]],
    ) -> None:
        self._run = run
        self._steer = steer
        self._response_id = response_id
        self._lock = threading.Lock()  # held by the thread running the request
        self._response: Optional[Response] = None
        self._error: Optional[BaseException] = None
        self._finished = threading.Event()
        # Dropped without result(): nobody will read its events, so they are dropped.
        self._finalizer = weakref.finalize(self, cancel)

    def __repr__(self) -> str:
        state = "done" if self.done() else "running"
        return f"<openai_ws.PendingResponse {state} response_id={self.response_id!r}>"

    @property
    def response_id(self) -> Optional[str]:
        """The id of the response running now (a steered successor's, once it started)."""
        if self._response is not None:
            return self._response.id
        return self._response_id()

    def done(self) -> bool:
        """True once :meth:`result` has its outcome."""
        return self._finished.is_set()

    def steer(
        self, input: Union[str, List[Dict[str, Any]]], *, timeout: Optional[float] = None
    ) -> Steer:
        """Add ``input`` to the response while it runs; see :meth:`EventStream.steer
        <openai_ws.EventStream.steer>`. The response :meth:`result` returns is then the
        successor that carried the steer."""
        return self._steer(input, timeout)

    def cancel(self) -> None:
        """Stop waiting: the request is abandoned (its events are dropped) and
        :meth:`result` raises :class:`~openai_ws.errors.OpenAIWSError`. Dropping the
        last reference to a handle whose result was never taken does the same."""
        self._finalizer()

    def result(self) -> Response:
        """Wait for the response and return it, as ``send()`` would (the ``timeout``
        given to ``submit()`` bounds the whole request)."""
        if not self._finished.is_set():
            with self._lock:
                if not self._finished.is_set():
                    try:
                        self._response = self._run()
                    except Exception as exc:
                        self._error = exc
                    except BaseException as exc:
                        # Ctrl-C while waiting: the request is abandoned; later
                        # calls say so instead of raising the interrupt again.
                        self._error = OpenAIWSError(
                            "waiting for this response was interrupted; the request was abandoned"
                        )
                        self._finished.set()
                        raise exc from None
                    self._finished.set()
                    self._finalizer.detach()  # the request is over: nothing to cancel
        if self._error is not None:
            raise self._error
        assert self._response is not None
        return self._response
