"""``Emulator``: the aiohttp application of the emulated API, run in a background thread.

The thread owns one asyncio event loop; the public methods are called from any
other thread and talk to the loop only through thread-safe hand-offs. ``start``
binds (port 0 the first time, then the same port again), ``stop`` closes every
WebSocket with 1001, cancels running handlers, shuts the server and the loop
down and joins the thread. This module must never block the loop, never leave
a thread behind after ``stop``, and never reveal the API key in a repr or log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from types import TracebackType
from typing import Any, Dict, List, Optional, Tuple, Type

from aiohttp import web

from ._config import EmulatorConfig
from ._http import add_routes, make_middleware
from ._state import ServerState
from ._stats import EmulatorStats
from ._tls import CLIENT_NAME, TlsMaterial
from ._ws import open_connections, websocket_handler

__all__ = ["DEFAULT_API_KEY", "Emulator"]

log = logging.getLogger(__name__)

DEFAULT_API_KEY = "sk-emulator"
"""The bearer token an ``Emulator`` accepts unless given another (not a secret)."""


class _Started:
    """What the loop thread reports back to ``start``."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.port: Optional[int] = None
        self.error: Optional[BaseException] = None


class Emulator:
    """A local server of the Responses API (WebSocket mode + HTTP/SSE) for tests.

    Use it as a context manager, or call ``start()``/``stop()`` (both idempotent;
    after a first start the same port is reused, so ``stop(); start()`` models a
    server that went away and came back).
    """

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: bool = False,
        client_auth: bool = False,
        cert_dir: Optional[str] = None,
        config: Optional[EmulatorConfig] = None,
        start_timeout: float = 10.0,
        stop_timeout: float = 5.0,
    ) -> None:
        """Create a stopped emulator.

        :param api_key: the bearer token clients must send (see
            ``EmulatorConfig.require_auth``).
        :param host: interface to bind; loopback by default.
        :param port: port to bind; 0 picks a free one on the first ``start``.
        :param tls: serve ``https``/``wss`` with a throw-away trustme CA (``ca_file``).
        :param client_auth: with ``tls``, require a client certificate issued by
            that CA (mutual TLS; see :meth:`client_cert_pem`).
        :param cert_dir: with ``tls``, write the CA certificate to
            ``cert_dir/emulator-ca.pem`` (the directory is created if needed and
            the file is left there) instead of a new temporary directory, so that
            an exported ``SSL_CERT_FILE`` path stays valid across restarts. Each
            new ``Emulator`` makes a new CA and rewrites the file; give each
            emulator that runs at the same time its own directory.
        :param config: live settings; a fresh ``EmulatorConfig()`` by default.
        :param start_timeout: seconds ``start`` waits for the server to listen.
        :param stop_timeout: seconds ``stop`` waits for the loop thread to end.
        """
        self._api_key = api_key
        self._host = host
        self._port = port
        if client_auth and not tls:
            raise ValueError("client_auth needs tls=True")
        if cert_dir is not None and not tls:
            raise ValueError("cert_dir needs tls=True")
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be from 0 to 65535, got {port}")
        self._tls = TlsMaterial(client_auth=client_auth, cert_dir=cert_dir) if tls else None
        self._state = ServerState(api_key=api_key, config=config or EmulatorConfig())
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Emulator {self.base_url if self._port else self._host} {state}>"

    # -- properties -------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True between a successful ``start`` and ``stop``."""
        return self._thread is not None

    @property
    def host(self) -> str:
        """The bound interface."""
        return self._host

    @property
    def port(self) -> int:
        """The bound port (0 before the first ``start`` when none was given)."""
        return self._port

    @property
    def tls(self) -> bool:
        """Whether the emulator serves TLS."""
        return self._tls is not None

    @property
    def api_key(self) -> str:
        """The bearer token the emulator accepts."""
        return self._api_key

    @property
    def base_url(self) -> str:
        """``http(s)://HOST:PORT/v1``."""
        scheme = "https" if self._tls else "http"
        return f"{scheme}://{self._netloc()}/v1"

    @property
    def ws_url(self) -> str:
        """``ws(s)://HOST:PORT/v1/responses``."""
        scheme = "wss" if self._tls else "ws"
        return f"{scheme}://{self._netloc()}/v1/responses"

    @property
    def ca_file(self) -> Optional[str]:
        """Path of the PEM CA certificate to trust when ``tls=True``, else None."""
        return self._tls.ca_file if self._tls else None

    @property
    def config(self) -> EmulatorConfig:
        """The live configuration; attribute changes apply to new requests/connections."""
        return self._state.config

    @config.setter
    def config(self, value: EmulatorConfig) -> None:
        self._state.config = value

    @property
    def stats(self) -> EmulatorStats:
        """Thread-safe counters (see ``EmulatorStats``)."""
        return self._state.stats

    def _netloc(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{host}:{self._port}"

    # -- helpers for tests ---------------------------------------------------------

    def stored(self, response_id: str) -> Optional[Dict[str, Any]]:
        """A copy of a stored (``store: true``) response, or None."""
        return self._state.store_copy(response_id)

    def reset_attempts(self) -> None:
        """Forget the attempt counts behind ``emulator_error_times``/``emulator_close_times``."""
        self._run_on_loop(self._async_reset_attempts())

    async def _async_reset_attempts(self) -> int:
        self._state.reset_attempts()
        return 0

    def ssl_context(self) -> Any:
        """A verifying client ``ssl.SSLContext`` that trusts this emulator (tls only)."""
        if self._tls is None:
            raise RuntimeError("the emulator was created with tls=False")
        return self._tls.client_context()

    def client_cert_pem(self, name: str = CLIENT_NAME) -> bytes:
        """A client certificate this emulator's CA issued: key and chain as PEM (tls only).

        Write it to a file and pass the path as ``OpenAI(client_cert=...)``.
        """
        if self._tls is None:
            raise RuntimeError("the emulator was created with tls=False")
        return self._tls.client_cert_pem(name)

    def disconnect_all(self, code: int = 1001) -> int:
        """Close every open WebSocket with ``code`` (1006: drop TCP); return how many."""
        return self._run_on_loop(self._async_disconnect_all(code))

    async def _async_disconnect_all(self, code: int) -> int:
        connections = open_connections(self._state)
        await asyncio.gather(*(conn.close(code) for conn in connections), return_exceptions=True)
        return len(connections)

    def _run_on_loop(self, coro: Any) -> int:
        loop = self._loop
        if loop is None or not self.running:
            coro.close()
            return 0
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        result: int = future.result(timeout=self._stop_timeout)
        return result

    # -- lifecycle ----------------------------------------------------------------

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.stop()

    def start(self) -> Emulator:
        """Bind and serve in a background thread; no-op when already running."""
        with self._lock:
            if self._thread is not None:
                return self
            started = _Started()
            thread = threading.Thread(
                target=self._thread_main,
                args=(started,),
                name="openai-ws-emulator",
                daemon=True,
            )
            thread.start()
            if not started.event.wait(self._start_timeout):
                raise RuntimeError("emulator did not start in time")
            if started.error is not None:
                thread.join(self._stop_timeout)
                raise RuntimeError(
                    f"emulator failed to start: {self._describe(started.error)}"
                ) from started.error
            assert started.port is not None
            self._port = started.port
            self._thread = thread
            log.debug("emulator listening on %s", self.base_url)
            return self

    def _describe(self, error: BaseException) -> str:
        """Why the server could not listen, in words (``cannot listen on HOST:PORT: ...``)."""
        if isinstance(error, OSError):
            reason = error.strerror
            if error.errno is not None and error.errno > 0:
                reason = os.strerror(error.errno)
            return f"cannot listen on {self._netloc()}: {(reason or str(error)).lower()}"
        return str(error)

    def stop(self) -> None:
        """Close every connection, stop the loop and join its thread; idempotent."""
        with self._lock:
            thread, loop = self._thread, self._loop
            if thread is None or loop is None:
                return
            with contextlib.suppress(RuntimeError):  # the loop may already be closed
                loop.call_soon_threadsafe(loop.stop)
            thread.join(self._stop_timeout)
            if thread.is_alive():  # pragma: no cover - a bug; report it loudly
                log.error("emulator thread did not stop within %.1fs", self._stop_timeout)
            self._thread = None
            self._loop = None

    def _thread_main(self, started: _Started) -> None:
        loop = asyncio.new_event_loop()
        runner: Optional[web.AppRunner] = None
        try:
            try:
                runner, port = loop.run_until_complete(self._serve())
            except BaseException as exc:
                started.error = exc
                started.event.set()
                return
            self._loop = loop
            started.port = port
            started.event.set()
            loop.run_forever()
            loop.run_until_complete(self._shutdown(runner))
        except Exception:  # pragma: no cover - keep the thread from dying noisily
            log.exception("emulator loop crashed")
        finally:
            self._close_loop(loop)

    @staticmethod
    def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
        try:
            leftovers = [task for task in asyncio.all_tasks(loop) if not task.done()]
            for task in leftovers:
                task.cancel()
            if leftovers:
                loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()

    async def _serve(self) -> Tuple[web.AppRunner, int]:
        state = self._state
        app = web.Application(
            middlewares=[make_middleware(state)],
            client_max_size=max(state.config.max_message_size, 1024 * 1024),
        )
        add_routes(app, state, websocket_handler)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(
                runner,
                self._host,
                self._port,
                ssl_context=self._tls.server_context() if self._tls else None,
                reuse_address=True,
            )
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        addresses: List[Any] = runner.addresses
        return runner, int(addresses[0][1])

    async def _shutdown(self, runner: web.AppRunner) -> None:
        state = self._state
        connections = open_connections(state)
        if connections:
            closing = asyncio.gather(
                *(conn.close(1001) for conn in connections), return_exceptions=True
            )
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(closing, timeout=1.0)
        handlers = [task for task in state.handler_tasks if not task.done()]
        if handlers:
            _, pending = await asyncio.wait(handlers, timeout=0.5)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        await runner.cleanup()
