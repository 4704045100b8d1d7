"""``benchmarks/netproxy.py``: the latency-injecting TCP proxy the network benchmark runs through.

Correctness, not speed: a round trip through the proxy takes at least the
configured RTT (and a new connection one more, for the TCP handshake the
kernel did on loopback), bytes arrive intact and in order in both directions
under many small writes, the bandwidth cap bounds throughput, a close (or a
half close, RFC 9293 section 3.6) of either side reaches the other, TLS passes
through untouched, and ``stop()`` ends every connection and joins its thread
(conftest fails a test that leaks one). Every peer here is a small raw-socket
server on 127.0.0.1, port 0, that the test starts and stops.
"""

from __future__ import annotations

import contextlib
import importlib.util
import random
import socket
import sys
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Callable, Iterator, List, Optional, Tuple

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load() -> ModuleType:
    """Import ``benchmarks/netproxy.py`` (``benchmarks/`` is not a package)."""
    spec = importlib.util.spec_from_file_location("netproxy", ROOT / "benchmarks" / "netproxy.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("netproxy", module)
    spec.loader.exec_module(module)
    return module


netproxy = _load()
NetProxy = netproxy.NetProxy

RTT = 0.04
HANG = 3.0  # generous bound on anything that must not hang


class PeerServer:
    """A one-connection-at-a-time TCP server on 127.0.0.1:0 that runs ``handler(conn)``.

    Each accepted connection gets its own thread; ``stop()`` closes the
    listener and every connection and joins every thread.
    """

    def __init__(self, handler: Callable[[socket.socket], None]) -> None:
        self.handler = handler
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.conns: List[socket.socket] = []
        self.threads: List[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, name="peer-accept")
        self._accepting.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.conns.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), name="peer-conn")
            self.threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            self.handler(conn)

    def stop(self) -> None:
        # shutdown() wakes a thread blocked in accept(); close() alone may not.
        for sock in [self.listener, *self.conns]:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._accepting.join(HANG)
        for thread in self.threads:
            thread.join(HANG)


def echo(conn: socket.socket) -> None:
    """Send back everything received, until EOF."""
    while True:
        data = conn.recv(65536)
        if not data:
            conn.shutdown(socket.SHUT_WR)
            return
        conn.sendall(data)


@pytest.fixture
def echo_server() -> Iterator[PeerServer]:
    server = PeerServer(echo)
    yield server
    server.stop()


def connect(proxy: object) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=HANG)  # type: ignore[attr-defined]
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError(f"EOF after {len(data)} of {n} bytes")
        data += chunk
    return data


def round_trip(sock: socket.socket, payload: bytes = b"ping") -> float:
    started = time.monotonic()
    sock.sendall(payload)
    assert recv_exactly(sock, len(payload)) == payload
    return time.monotonic() - started


def read_until_eof(sock: socket.socket) -> bytes:
    parts = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)


def test_a_round_trip_through_the_proxy_takes_at_least_the_rtt(echo_server: PeerServer) -> None:
    """Each direction waits RTT/2: an echo comes back no sooner than one RTT (40 ms)."""
    port = echo_server.port
    with NetProxy("127.0.0.1", port, rtt=RTT, handshake=False) as proxy, connect(proxy) as sock:
        times = [round_trip(sock) for _ in range(3)]
    assert min(times) >= RTT - 0.001, times
    assert max(times) < RTT + HANG, times


def test_a_new_connection_pays_one_more_rtt_for_the_handshake(echo_server: PeerServer) -> None:
    """With handshake=True the first bytes of a connection wait one RTT more (TCP's SYN/SYN-ACK)."""
    with NetProxy("127.0.0.1", echo_server.port, rtt=RTT) as proxy:
        started = time.monotonic()
        with connect(proxy) as sock:
            first = round_trip(sock)
            total_first = time.monotonic() - started
            second = round_trip(sock)
    assert total_first >= 2 * RTT - 0.001, (total_first, first)
    assert second >= RTT - 0.001, second
    assert second < first, (first, second)  # the handshake RTT is paid once


def talker(
    payload: bytes, sizes: List[int], received: List[bytes]
) -> Callable[[socket.socket], None]:
    """A handler that writes ``payload`` in pieces of ``sizes`` while reading everything sent."""

    def handle(conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = threading.Thread(target=lambda: received.append(read_until_eof(conn)))
        reader.start()
        write_in_pieces(conn, payload, sizes)
        conn.shutdown(socket.SHUT_WR)
        reader.join(HANG * 3)

    return handle


def pieces(rng: random.Random, total: int) -> Tuple[bytes, List[int]]:
    payload = bytes(rng.randrange(256) for _ in range(total))
    sizes = []
    left = total
    while left:
        size = min(left, rng.randint(1, 40))
        sizes.append(size)
        left -= size
    return payload, sizes


def write_in_pieces(sock: socket.socket, payload: bytes, sizes: List[int]) -> None:
    offset = 0
    for size in sizes:
        sock.sendall(payload[offset : offset + size])
        offset += size


def test_bytes_arrive_intact_and_in_order_both_ways_under_many_small_writes() -> None:
    """Thousands of 1-40 byte writes each way, at the same time: both streams arrive unchanged."""
    rng = random.Random(13)
    down, down_sizes = pieces(rng, 40_000)
    up, up_sizes = pieces(rng, 40_000)
    at_server: List[bytes] = []
    server = PeerServer(talker(down, down_sizes, at_server))
    try:
        with NetProxy("127.0.0.1", server.port, rtt=0.01) as proxy, connect(proxy) as sock:
            at_client: List[bytes] = []
            reader = threading.Thread(target=lambda: at_client.append(read_until_eof(sock)))
            reader.start()
            write_in_pieces(sock, up, up_sizes)
            sock.shutdown(socket.SHUT_WR)  # a half close: the server still sends
            reader.join(HANG * 3)
            assert not reader.is_alive()
            deadline = time.monotonic() + HANG * 3
            while not at_server and time.monotonic() < deadline:
                time.sleep(0.01)  # the upload's last bytes are still in the delay queue
    finally:
        server.stop()
    assert len(up_sizes) > 1000 and len(down_sizes) > 1000
    assert at_client == [down]
    assert at_server == [up]


def timed_transfer(sock: socket.socket, n: int) -> float:
    started = time.monotonic()
    recv_exactly(sock, n)
    return time.monotonic() - started


def test_the_bandwidth_cap_bounds_the_throughput_of_each_direction() -> None:
    """60 kB each way at a 100 kB/s cap take about 0.6 s (at least 0.35 s), not milliseconds."""
    size, cap = 60_000, 100_000.0
    blob = b"x" * size

    def handle(conn: socket.socket) -> None:
        recv_exactly(conn, size)  # the upload first, then the download
        conn.sendall(blob)
        read_until_eof(conn)

    server = PeerServer(handle)
    try:
        with NetProxy("127.0.0.1", server.port, bandwidth=cap) as proxy, connect(proxy) as sock:
            sock.settimeout(HANG * 3)
            started = time.monotonic()
            sock.sendall(blob)
            first = recv_exactly(sock, 1)  # the server answers once the upload got through
            upload = time.monotonic() - started
            download = timed_transfer(sock, size - 1)
            assert first == b"x"
    finally:
        server.stop()
    burst = netproxy.default_burst(cap)
    low = (size - burst) / cap * 0.6  # loose: a correctness check, not a speed goal
    assert upload >= low, (upload, low)
    assert download >= low, (download, low)
    assert upload < 10 and download < 10


@pytest.mark.parametrize("who", ["client", "server"])
def test_a_close_of_either_side_closes_the_other(who: str) -> None:
    """The client closing reaches the server as EOF, and the server closing reaches the client."""
    seen: List[bytes] = []
    done = threading.Event()

    def handle(conn: socket.socket) -> None:
        conn.settimeout(HANG)
        if who == "server":
            conn.sendall(b"bye")
        else:
            seen.append(read_until_eof(conn))
        conn.close()
        done.set()

    server = PeerServer(handle)
    try:
        with NetProxy("127.0.0.1", server.port, rtt=0.02) as proxy:
            sock = connect(proxy)
            started = time.monotonic()
            if who == "client":
                sock.sendall(b"hello")
                sock.close()
                assert done.wait(HANG), "the server never saw the client's close"
                assert seen == [b"hello"]
            else:
                with sock:
                    assert read_until_eof(sock) == b"bye"
                assert done.is_set()
            assert time.monotonic() - started < HANG
            deadline = time.monotonic() + HANG
            while proxy.open_connections and time.monotonic() < deadline:
                time.sleep(0.01)
            assert proxy.open_connections == 0
    finally:
        server.stop()


def test_an_unreachable_target_closes_the_client_at_once() -> None:
    """With nothing listening at the target, the client's connection ends (EOF or reset)."""
    spare = socket.create_server(("127.0.0.1", 0))
    port = spare.getsockname()[1]
    spare.close()
    with NetProxy("127.0.0.1", port, rtt=0.02) as proxy, connect(proxy) as sock:
        try:
            data: Optional[bytes] = sock.recv(10)
        except ConnectionResetError:
            data = None
    assert not data
    assert proxy.stats()["refused"] == 1


def test_stop_ends_open_connections_and_joins_its_thread(echo_server: PeerServer) -> None:
    """stop() with a connection open: the client sees the end, the proxy's thread is gone."""
    proxy = NetProxy("127.0.0.1", echo_server.port, rtt=0.02).start()
    sock = connect(proxy)
    try:
        assert round_trip(sock) >= 0.02 - 0.001
        started = time.monotonic()
        proxy.stop()
        assert time.monotonic() - started < HANG
        try:
            data: Optional[bytes] = sock.recv(10)
        except ConnectionResetError:
            data = None
        assert not data
    finally:
        sock.close()
        proxy.stop()  # idempotent
    assert not proxy.running


def test_tls_goes_through_untouched() -> None:
    """An HTTPS request to the TLS emulator through the proxy verifies and answers (it is TCP)."""
    requests = pytest.importorskip("requests")
    from openai_ws.emulator import Emulator

    with Emulator(tls=True) as emu, NetProxy("127.0.0.1", emu.port, rtt=0.02) as proxy:
        url = f"https://127.0.0.1:{proxy.port}/v1/responses"
        with requests.Session() as http:
            http.trust_env = False
            answer = http.post(
                url,
                json={"model": "m", "input": "through the proxy"},
                headers={"Authorization": f"Bearer {emu.api_key}"},
                verify=emu.ca_file,
                timeout=HANG * 3,
            )
        assert proxy.stats()["connections"] >= 1
    assert answer.status_code == 200
    assert answer.json()["output"][0]["content"][0]["text"] == "through the proxy"


def test_bad_settings_are_refused() -> None:
    """A negative RTT or a bandwidth that is not positive is a ValueError, before any thread."""
    with pytest.raises(ValueError):
        NetProxy("127.0.0.1", 1, rtt=-0.01)
    with pytest.raises(ValueError):
        NetProxy("127.0.0.1", 1, bandwidth=0)


def test_the_token_bucket_spends_its_burst_then_paces_at_the_rate() -> None:
    """Pure bucket math: the burst is free, then n bytes cost n / rate seconds."""
    now = [0.0]
    bucket = netproxy.TokenBucket(1000.0, burst=100, clock=lambda: now[0])
    assert bucket.reserve(100) == 0.0
    assert bucket.reserve(50) == pytest.approx(0.05)
    now[0] = 1.0  # a second later: the debt is paid and the bucket refilled to its burst
    assert bucket.reserve(100) == 0.0
    with pytest.raises(ValueError):
        bucket.reserve(101)
