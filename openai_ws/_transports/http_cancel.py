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

Deadlines use the same mechanism: :func:`guard` gives each call its own
token, which follows the caller's token (cancelling that one cancels it) and
which the :class:`Watchdog` cancels when the call's deadline passes, so a
total deadline holds however the server trickles (one byte a second keeps
every single read within its timeout). The watchdog is one thread, started on
demand; it ends itself once no call has a deadline pending (after
:data:`WATCHDOG_LINGER` seconds), and a forked child starts its own.

This module must never close a pooled connection it does not hold, retry,
or know anything of the Responses API: :mod:`.http` decides what a
cancelled or expired call raises.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import socket
import threading
import time
from typing import Any, Callable, Iterator, List, Optional, Tuple

import requests.adapters
import urllib3.connection
import urllib3.connectionpool

from ..errors import OpenAIWSError

__all__ = [
    "WATCHDOG_LINGER",
    "Adapter",
    "Cancellation",
    "Cancelled",
    "Watchdog",
    "calling",
    "current_token",
    "guard",
    "raise_if_cancelled",
]

WATCHDOG_LINGER = 0.2
"""Seconds the watchdog thread waits for a new deadline before it ends."""


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
        self._followers: List[Cancellation] = []  # cancelled with this one
        self.deadline: Optional[float] = None
        """When the call's deadline passes (``time.monotonic``), if :func:`guard` set one."""

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
            followers, self._followers = self._followers, []
        if conn is not None:
            _shut(conn)
        for follower in followers:
            follower.cancel()

    def follow(self, leader: Cancellation) -> None:
        """Be cancelled whenever ``leader`` is (at once if it already is)."""
        with leader._lock:
            if not leader._event.is_set():
                leader._followers.append(self)
                return
        self.cancel()

    def unfollow(self, leader: Cancellation) -> None:
        """Undo :meth:`follow`."""
        with leader._lock, contextlib.suppress(ValueError):
            leader._followers.remove(self)

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


class Watchdog:
    """Cancels tokens when their deadlines pass, from one thread that runs only when needed."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._heap: List[Tuple[float, int, Cancellation]] = []
        self._order = itertools.count()
        self._thread: Optional[threading.Thread] = None

    def watch(self, deadline: float, token: Cancellation) -> Tuple[float, int, Cancellation]:
        """Cancel ``token`` at ``deadline`` (``time.monotonic``), unless unwatched first."""
        entry = (deadline, next(self._order), token)
        with self._cond:
            heapq.heappush(self._heap, entry)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="openai_ws-http-deadlines", daemon=True
                )
                self._thread.start()
            elif self._heap[0] is entry:
                self._cond.notify()
        return entry

    def unwatch(self, entry: Tuple[float, int, Cancellation]) -> None:
        with self._cond:
            try:
                self._heap.remove(entry)
            except ValueError:
                return  # already fired
            heapq.heapify(self._heap)
            if not self._heap:
                self._cond.notify()  # let the thread start lingering now

    def _run(self) -> None:
        while True:
            with self._cond:
                due: List[Cancellation] = []
                while not due:
                    if not self._heap:
                        self._cond.wait(WATCHDOG_LINGER)
                        if not self._heap:
                            self._thread = None
                            return
                        continue
                    now = time.monotonic()
                    while self._heap and self._heap[0][0] <= now:
                        due.append(heapq.heappop(self._heap)[2])
                    if not due:
                        self._cond.wait(self._heap[0][0] - now)
            for token in due:  # outside the lock: cancel() shuts sockets down
                token.cancel()

    def _after_fork(self) -> None:
        """In a forked child: the parent's thread does not exist there."""
        self._cond = threading.Condition(threading.Lock())
        self._heap = []
        self._thread = None


WATCHDOG = Watchdog()
"""The process's watchdog, shared by every HTTP transport."""

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=WATCHDOG._after_fork)


@contextlib.contextmanager
def guard(
    cancel: Optional[Cancellation],
    deadline: Optional[float],
    expired: Callable[[], OpenAIWSError],
) -> Iterator[Cancellation]:
    """A token for one call: cancelled with ``cancel`` and when ``deadline`` passes.

    Its error is ``cancel``'s when that one was cancelled, else ``expired()``.
    The connection the call used is released and the deadline forgotten when
    the block ends.
    """

    def error() -> OpenAIWSError:
        if cancel is not None and cancel.cancelled:
            return cancel.error()
        return expired()

    token = Cancellation(error)
    token.deadline = deadline
    if cancel is not None:
        token.follow(cancel)
    entry = WATCHDOG.watch(deadline, token) if deadline is not None else None
    try:
        yield token
    finally:
        if entry is not None:
            WATCHDOG.unwatch(entry)
        if cancel is not None:
            token.unfollow(cancel)
        token.release()


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
