"""Cancelling HTTP calls from another thread: :class:`Cancellation` and the connection hooks.

A call given a ``cancel`` token records the connection it is using: the
urllib3 connection subclasses below tell the calling thread's token when they
connect and when they send, in that thread. :meth:`Cancellation.cancel`, from
any thread, shuts that socket down at the file-descriptor level, so a blocked
connect, send or read returns at once, and a retry wait
(:meth:`Cancellation.pause`) ends early; the call then raises the token's
error and is never retried. Only the connection the call holds at that moment
is touched: it is forgotten before it goes back to the pool, so another
thread's call on the same pool is unaffected.

This module must never close a pooled connection it does not hold, retry,
or know anything of the Responses API: :mod:`.http` decides what a
cancelled call raises.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any, Callable, Iterator, Optional

import requests.adapters
import urllib3.connection
import urllib3.connectionpool

from ..errors import OpenAIWSError

__all__ = ["Adapter", "Cancellation", "Cancelled", "calling", "current_token", "raise_if_cancelled"]


class Cancelled(Exception):
    """Raised inside urllib3 when the call's token is cancelled.

    Deliberately not an ``OSError`` or urllib3 error, so urllib3 does not retry
    it and requests does not wrap it: it reaches :meth:`HTTPTransport._send`.
    """


class Cancellation:
    """Lets another thread abort HTTP calls that were given this token.

    ``error`` makes the exception those calls raise once cancelled (the
    session passes one that says it was closed). :meth:`cancel` is
    idempotent and safe from any thread.
    """

    def __init__(self, error: Callable[[], OpenAIWSError]) -> None:
        self._error = error
        self._lock = threading.Lock()
        self._event = threading.Event()
        self._conn: Any = None  # the connection the call holds now, if any

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def error(self) -> OpenAIWSError:
        """The exception a cancelled call raises."""
        return self._error()

    def cancel(self) -> None:
        """Mark the token cancelled and shut down the socket its call is using."""
        with self._lock:
            self._event.set()
            conn, self._conn = self._conn, None
        if conn is not None:
            _shut(conn)

    def _hold(self, conn: Any) -> None:
        """The calling thread is about to use ``conn`` (raises if cancelled)."""
        with self._lock:
            if self._event.is_set():
                raise Cancelled()
            self._conn = conn

    def release(self) -> None:
        """The call no longer uses its connection (it goes back to the pool)."""
        with self._lock:
            self._conn = None

    def pause(self, seconds: float) -> None:
        """A retry wait that ends (raising) as soon as the token is cancelled."""
        self.release()
        if self._event.wait(seconds):
            raise Cancelled()


_calling = threading.local()  # .token: the Cancellation of this thread's current call


@contextlib.contextmanager
def calling(token: Optional[Cancellation]) -> Iterator[None]:
    """Make ``token`` the current thread's token for the calls made inside.

    The connection stays recorded on the token after the block (the body may
    still be read); the caller calls :meth:`Cancellation.release` when done.
    """
    previous = getattr(_calling, "token", None)
    _calling.token = token
    try:
        yield
    finally:
        _calling.token = previous


def current_token() -> Optional[Cancellation]:
    return getattr(_calling, "token", None)


def raise_if_cancelled(
    cancel: Optional[Cancellation], cause: Optional[BaseException] = None
) -> None:
    """Raise the call's cancellation error, chained from ``cause``, if it was cancelled.

    What a cancelled call saw (a reset, a short body, an early end) is only
    the symptom of the shutdown: the caller gets the token's error instead.
    """
    if cancel is not None and cancel.cancelled:
        raise cancel.error() from cause


def _shut(conn: Any) -> None:
    """Shut a connection's socket down at the OS level (wakes a blocked reader)."""
    sock = getattr(conn, "sock", None)
    if sock is None:
        return
    # The plain socket method, also for an SSLSocket: another thread may be
    # inside SSL_read, and only the file descriptor may be touched.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _CancellableMixin:
    """Connection hooks, run in the calling thread: tell the call's token."""

    def connect(self) -> None:
        token = current_token()
        if token is not None:
            token._hold(self)
        super().connect()  # type: ignore[misc]
        if token is not None:
            token._hold(self)  # cancelled while connecting: raises now

    def request(self, *args: Any, **kwargs: Any) -> None:
        token = current_token()
        if token is not None:
            token._hold(self)
        super().request(*args, **kwargs)  # type: ignore[misc]


class _HTTPConnection(_CancellableMixin, urllib3.connection.HTTPConnection):
    pass


class _HTTPSConnection(_CancellableMixin, urllib3.connection.HTTPSConnection):
    pass


class _HTTPPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOL_CLASSES = {"http": _HTTPPool, "https": _HTTPSPool}


class Adapter(requests.adapters.HTTPAdapter):
    """requests' adapter, with pools whose connections report to the call's token."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOL_CLASSES)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = dict(_POOL_CLASSES)
        return manager
