"""A latency-injecting TCP proxy in user space, for benchmarks over a "real" network on loopback.

The kernel here has no ``tc netem``, so the network benchmark puts this proxy
between a client and the emulator: it listens on 127.0.0.1 (port 0 by
default), opens one connection to the target per accepted connection, and
forwards bytes both ways with

* a one-way delay of ``rtt / 2`` per direction: a chunk read at time ``t``
  leaves at ``t + rtt / 2``. Each direction is a queue of ``(due time,
  bytes)``: the reading side never waits for the delay (only for room in a
  bounded buffer, like a TCP window), the writing side sends in read order,
  so the order of bytes is kept per direction;
* the TCP handshake (``handshake=True``, the default): on loopback the kernel
  completes the client's three-way handshake (RFC 9293 section 3.5) at once,
  so the first bytes a connection sends wait one more RTT, as they would
  behind a SYN / SYN-ACK exchange: data read at ``t`` leaves at ``max(t,
  accepted + rtt) + rtt / 2``;
* an optional bandwidth cap, bytes per second per direction, shared by every
  connection of the proxy (one link), as a :class:`TokenBucket`;
* the ends of a stream carried over: EOF from one side becomes a half close
  (FIN, RFC 9293 section 3.6) toward the other after the same delay, a reset
  or write error on either side aborts both, and a connection ends when both
  directions have ended.

It is TCP only, so TLS (and the WebSocket upgrade inside it) passes through
untouched: a certificate for ``127.0.0.1`` still matches, only the port
differs. Use it as a context manager; it runs an asyncio loop in one
background thread, which :meth:`NetProxy.stop` (or leaving the ``with``)
ends and joins after closing every connection::

    with NetProxy("127.0.0.1", emulator_port, rtt=0.08) as proxy:
        url = f"https://127.0.0.1:{proxy.port}/v1"

Or from the command line: ``python benchmarks/netproxy.py 127.0.0.1:8000 --rtt 80``.

What it is not: no loss, no jitter, no reordering, no congestion control of
its own (the kernel's loopback TCP does flow control on each leg). It must
never listen anywhere but the address it is given (127.0.0.1 by default) and
never resolve names (numeric hosts only, so no resolver thread is started).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import socket
import sys
import threading
import time
from typing import Any, Callable, Deque, Dict, List, Optional, Set, Tuple

__all__ = ["NetProxy", "TokenBucket", "default_burst"]

READ_SIZE = 64 * 1024
"""Bytes asked for per read of either side."""

MAX_BUFFER = 8 * 1024 * 1024
"""Bytes a direction may hold in its delay queue before it stops reading (a TCP window)."""


def default_burst(rate: float) -> int:
    """The bucket size for ``rate`` bytes/s: 20 ms worth of bytes, between 4 KiB and 64 KiB."""
    return int(max(4096.0, min(65536.0, rate / 50)))


class TokenBucket:
    """A token bucket of ``burst`` bytes filled at ``rate`` bytes per second.

    :meth:`reserve` takes ``n`` bytes' worth of tokens at once and says how
    long to wait before sending them: the bucket may go into debt, and the
    debt is paid back at ``rate``, so a steady sender is paced at exactly
    ``rate`` after the first ``burst`` bytes. Pure (the clock is a parameter).
    """

    def __init__(
        self,
        rate: float,
        *,
        burst: Optional[int] = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be > 0 bytes/s, got {rate!r}")
        self.rate = float(rate)
        self.burst = default_burst(rate) if burst is None else int(burst)
        if self.burst < 1:
            raise ValueError(f"burst must be >= 1 byte, got {burst!r}")
        self._clock = clock
        self._tokens = float(self.burst)
        self._last = clock()

    def reserve(self, n: int) -> float:
        """Take ``n`` (at most ``burst``) bytes; return the seconds to wait before sending them."""
        if n > self.burst:
            raise ValueError(f"{n} bytes is more than the burst of {self.burst}; split it")
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
        self._last = now
        self._tokens -= n
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


class _Pipe:
    """One direction of one connection: read, stamp with a due time, write when due."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        delay: float,
        not_before: float,
        bucket: Optional[TokenBucket],
        count: Callable[[int], None],
    ) -> None:
        self.reader, self.writer = reader, writer
        self.delay, self.not_before = delay, not_before
        self.bucket, self.count = bucket, count
        self.queue: Deque[Tuple[float, bytes]] = collections.deque()
        self.buffered = 0
        self.ready = asyncio.Event()  # the queue is not empty
        self.room = asyncio.Event()  # the queue has room
        self.room.set()

    async def read_side(self) -> None:
        """Read until EOF; each chunk (EOF as ``b""``) is queued with its due time."""
        loop = asyncio.get_running_loop()
        while True:
            while self.buffered >= MAX_BUFFER:
                self.room.clear()
                await self.room.wait()
            data = await self.reader.read(READ_SIZE)
            self.queue.append((max(loop.time(), self.not_before) + self.delay, data))
            self.buffered += len(data)
            self.ready.set()
            if not data:
                return

    async def write_side(self) -> None:
        """Write every chunk at its due time, in order; forward EOF as a half close."""
        loop = asyncio.get_running_loop()
        while True:
            while not self.queue:
                self.ready.clear()
                await self.ready.wait()
            due, data = self.queue[0]
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self.queue.popleft()
            if not data:
                if self.writer.can_write_eof():
                    self.writer.write_eof()
                return
            # Chunks already due go out together (fewer, larger writes).
            while self.queue and self.queue[0][1] and self.queue[0][0] <= loop.time():
                if len(data) >= READ_SIZE:
                    break
                data += self.queue.popleft()[1]
            await self._send(data)

    async def _send(self, data: bytes) -> None:
        step = len(data) if self.bucket is None else self.bucket.burst
        for start in range(0, len(data), step):
            piece = data[start : start + step]
            if self.bucket is not None:
                wait = self.bucket.reserve(len(piece))
                if wait > 0:
                    await asyncio.sleep(wait)
            self.writer.write(piece)
            await self.writer.drain()
            self.buffered -= len(piece)
            self.room.set()
            self.count(len(piece))


def _nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class NetProxy:
    """Forward ``host:port`` connections to ``target_host:target_port`` with RTT and bandwidth.

    ``rtt`` is seconds (each direction gets half), ``bandwidth`` bytes per
    second per direction (``None``: no cap). ``port`` is the listening port
    (0: any free one; read :attr:`port` after :meth:`start`). Hosts are
    numeric addresses. Counters: :meth:`stats`.
    """

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        rtt: float = 0.0,
        bandwidth: Optional[float] = None,
        handshake: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if not rtt >= 0:
            raise ValueError(f"rtt must be >= 0 seconds, got {rtt!r}")
        if bandwidth is not None and not bandwidth > 0:
            raise ValueError(f"bandwidth must be > 0 bytes/s (or None), got {bandwidth!r}")
        self.target = (target_host, int(target_port))
        self.rtt = float(rtt)
        self.bandwidth = bandwidth
        self.handshake = handshake
        self.host = host
        self.port = int(port)
        self._thread: Optional[threading.Thread] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._stop: Optional[asyncio.Event] = None
        self._ready = threading.Event()
        self._error: Optional[BaseException] = None
        self._tasks: Set[asyncio.Task[Any]] = set()
        self._buckets: Tuple[Optional[TokenBucket], Optional[TokenBucket]] = (None, None)
        self._writers: Set[asyncio.StreamWriter] = set()
        self._counts: Dict[str, int] = dict.fromkeys(
            ("connections", "refused", "bytes_up", "bytes_down"), 0
        )
        self.open_connections = 0

    def __repr__(self) -> str:
        state = f"port {self.port}" if self.running else "stopped"
        return f"<NetProxy {state} -> {self.target[0]}:{self.target[1]} rtt={self.rtt * 1e3:g} ms>"

    def __enter__(self) -> NetProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the proxy's thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def stats(self) -> Dict[str, int]:
        """Connections accepted, connections whose target refused, bytes forwarded each way."""
        return dict(self._counts, open=self.open_connections)

    def start(self) -> NetProxy:
        """Start listening (in a background thread); returns once the port is bound."""
        if self._thread is not None:
            raise RuntimeError("this NetProxy was already started")
        self._thread = threading.Thread(
            target=self._run, name=f"netproxy-{id(self):x}", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the proxy did not start within 10 s")
        if self._error is not None:
            self._thread.join(5)
            raise RuntimeError(f"the proxy could not start: {self._error!r}") from self._error
        return self

    def stop(self) -> None:
        """Close the listener and every connection, end the loop, join the thread (idempotent)."""
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None or not thread.is_alive():
            return
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(stop.set)
        thread.join(10)

    # -- the loop thread -------------------------------------------------------

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to start(), or dropped at exit
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        if self.bandwidth is not None:  # one link: shared by every connection, per direction
            self._buckets = (TokenBucket(self.bandwidth), TokenBucket(self.bandwidth))
        server = await asyncio.start_server(self._accepted, self.host, self.port)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await server.wait_closed()

    def _count(self, name: str) -> Callable[[int], None]:
        def add(n: int) -> None:
            self._counts[name] += n

        return add

    async def _accepted(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(client_writer)
        self._counts["connections"] += 1
        self.open_connections += 1
        accepted = asyncio.get_running_loop().time()
        writers: List[asyncio.StreamWriter] = [client_writer]
        try:
            try:
                target_reader, target_writer = await asyncio.open_connection(*self.target)
            except OSError:
                self._counts["refused"] += 1
                return
            writers.append(target_writer)
            self._writers.add(target_writer)
            _nodelay(client_writer)
            _nodelay(target_writer)
            half = self.rtt / 2
            up_bucket, down_bucket = self._buckets
            upstream = _Pipe(
                client_reader,
                target_writer,
                delay=half,
                not_before=accepted + self.rtt if self.handshake else 0.0,
                bucket=up_bucket,
                count=self._count("bytes_up"),
            )
            downstream = _Pipe(
                target_reader,
                client_writer,
                delay=half,
                not_before=0.0,
                bucket=down_bucket,
                count=self._count("bytes_down"),
            )
            await self._forward(upstream, downstream, writers)
        except asyncio.CancelledError:
            pass  # stop(): this task was ours to cancel; ending quietly keeps asyncio from logging
        finally:
            for writer in writers:
                self._writers.discard(writer)
                writer.close()
            self.open_connections -= 1
            self._tasks.discard(task)

    async def _forward(self, up: _Pipe, down: _Pipe, writers: List[asyncio.StreamWriter]) -> None:
        """Run the four halves; the first error (a reset, a broken pipe) aborts both sockets."""
        halves = [
            asyncio.ensure_future(coro)
            for coro in (up.read_side(), up.write_side(), down.read_side(), down.write_side())
        ]
        try:
            pending = set(halves)
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
                if any(not t.cancelled() and t.exception() is not None for t in done):
                    for writer in writers:
                        writer.transport.abort()
                    break
        finally:
            for half in halves:
                half.cancel()
            await asyncio.gather(*halves, return_exceptions=True)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("target", metavar="HOST:PORT", help="where to forward (a numeric host)")
    parser.add_argument("--rtt", type=float, default=40.0, help="round-trip time to add, ms")
    parser.add_argument(
        "--bandwidth", type=float, default=None, help="cap per direction, bytes/s (default: none)"
    )
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: any)")
    parser.add_argument(
        "--no-handshake", action="store_true", help="do not charge a new connection one more RTT"
    )
    parser.add_argument("--seconds", type=float, default=None, help="stop after this long")
    args = parser.parse_args(argv)
    host, _, port = args.target.rpartition(":")
    proxy = NetProxy(
        host or "127.0.0.1",
        int(port),
        rtt=args.rtt / 1e3,
        bandwidth=args.bandwidth,
        handshake=not args.no_handshake,
        port=args.port,
    )
    with proxy:
        print(f"listening on 127.0.0.1:{proxy.port} -> {args.target}, rtt {args.rtt:g} ms")
        sys.stdout.flush()
        try:
            if args.seconds is None:
                while True:
                    time.sleep(3600)
            time.sleep(args.seconds)
        except KeyboardInterrupt:
            pass
        print(f"stats: {proxy.stats()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
