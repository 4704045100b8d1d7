"""Opening a WebSocket's socket within one deadline: TCP, a proxy tunnel, TLS, a bounded upgrade.

:meth:`WSTransport.connect <openai_ws._transports.ws.WSTransport.connect>`
opens the socket here and lets websocket-client run the upgrade on it through a
:class:`HandshakeSocket`. websocket-client applies its timeout to each socket
read, and reads the upgrade answer one byte per read, so a peer trickling one
byte a second would hold a connect forever; here one :class:`Deadline` bounds
everything: resolving and connecting (each address tried gets the time left),
the proxy's ``CONNECT`` answer (RFC 9110 section 9.3.6), the TLS handshake
(CPython applies a socket's timeout to the whole handshake) and the upgrade
(RFC 6455 section 4.1), whose every read waits at most the time left.

Bounds on what a peer may send: a proxy's answer head
(:data:`MAX_PROXY_HEAD`), the upgrade answer's head (:data:`MAX_UPGRADE_HEAD`)
and, of a refused upgrade's body, what is read (:data:`MAX_UPGRADE_BODY`: the
JSON error the service sends is a few hundred bytes; the rest is never read).

Proxies: an explicit proxy URL is always used (as on the HTTP path); without
one, ``http_proxy`` (``ws://``) or ``https_proxy`` (``wss://``) applies unless
``no_proxy`` names the host. ``http://`` proxies are spoken to here;
``socks4``/``socks5`` ones need the optional ``python-socks`` package.

This module must never import websocket-client or requests, follow a redirect,
put a header value or a peer's body into a message (only scrubbed status lines),
or read more of a peer's answer than its bounds.
"""

from __future__ import annotations

import base64
import contextlib
import importlib
import ipaddress
import socket
import ssl
import time
from typing import Any, Dict, List, NamedTuple, Optional, Tuple, Union
from urllib.parse import unquote, urlsplit

from ..errors import ConnectError
from .messages import Scrubber, os_reason

__all__ = [
    "MAX_PROXY_HEAD",
    "MAX_UPGRADE_BODY",
    "MAX_UPGRADE_HEAD",
    "Answer",
    "AnswerTooLarge",
    "Deadline",
    "HandshakeSocket",
    "Proxy",
    "Target",
    "open_socket",
    "parse_answer",
    "proxy_for",
]

MAX_PROXY_HEAD = 16 * 1024
"""Bytes of a proxy's answer head read before giving up on it."""
MAX_UPGRADE_HEAD = 64 * 1024
"""Bytes of the upgrade answer's status line and headers read before giving up."""
MAX_UPGRADE_BODY = 8 * 1024
"""Bytes of a refused upgrade's body read for its error message."""

_READ = 4096


class Deadline:
    """A point in time ``seconds`` from now (``time.monotonic``)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._at = time.monotonic() + seconds

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self._at

    def remaining(self) -> float:
        """Seconds left (0 or less once passed); never raises."""
        return self._at - time.monotonic()

    def left(self) -> float:
        """Seconds left; raises ``socket.timeout`` once there are none."""
        left = self._at - time.monotonic()
        if left <= 0:
            raise socket.timeout("the connect deadline passed")
        return left

    def timed_out(self, where: str, doing: str) -> ConnectError:
        """The error for a connect to ``where`` that ran out of time while ``doing``."""
        return ConnectError(
            f"could not connect to {where} within connect_timeout ({self.seconds:g}s): "
            f"timed out {doing}"
        )


class Target(NamedTuple):
    """Where a ``ws://``/``wss://`` URL points."""

    host: str
    port: int
    secure: bool

    @classmethod
    def from_url(cls, url: str) -> Target:
        """Parse ``url``; raises ``ValueError`` for anything but ws/wss with a host."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("ws", "wss") or not parts.hostname:
            raise ValueError(f"not a ws:// or wss:// URL: {url!r}")
        secure = scheme == "wss"
        return cls(parts.hostname, parts.port or (443 if secure else 80), secure)

    @property
    def where(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


class Proxy(NamedTuple):
    """A proxy to reach the target through (``scheme``: http, socks4, socks4a, socks5, socks5h)."""

    scheme: str
    host: str
    port: int
    username: Optional[str] = None
    password: Optional[str] = None

    def __repr__(self) -> str:  # never the credentials
        return f"Proxy({self.scheme}://{self.host}:{self.port})"

    @property
    def where(self) -> str:
        return f"the proxy {self.host}:{self.port}"

    @classmethod
    def parse(cls, url: str) -> Proxy:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        scheme = parts.scheme.lower() or "http"
        if scheme == "https":
            scheme = "http"  # spoken to in plain HTTP, as websocket-client does
        if scheme not in ("http", "socks4", "socks4a", "socks5", "socks5h") or not parts.hostname:
            raise ValueError("unsupported proxy URL (use http:// or socks5://)")
        default = 1080 if scheme.startswith("socks") else (443 if url.startswith("https") else 80)
        return cls(
            scheme,
            parts.hostname,
            parts.port or default,
            unquote(parts.username) if parts.username else None,
            unquote(parts.password) if parts.password else None,
        )


def proxy_for(target: Target, proxy: Optional[str]) -> Optional[Proxy]:
    """The proxy to use for ``target``: ``proxy`` if given, else the environment's."""
    if proxy:
        return Proxy.parse(proxy)
    import urllib.request  # on first connect, not with the package (it costs ~8 ms)

    env = urllib.request.getproxies_environment()
    value = env.get("https" if target.secure else "http")
    if not value or _bypassed(target.host, env.get("no", "")):
        return None
    return Proxy.parse(value)


def _bypassed(host: str, no_proxy: str) -> bool:
    """Whether ``no_proxy`` (names, .suffixes, *, IPs, CIDRs; comma-separated) names ``host``."""
    host = host.lower().strip("[]")
    try:
        address: Optional[Any] = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for raw in no_proxy.replace(" ", "").lower().split(","):
        entry = raw.strip("[]")
        if not entry:
            continue
        if entry == "*":
            return True
        if address is not None:
            with contextlib.suppress(ValueError):
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            continue
        name = entry.rsplit(":", 1)[0] if entry.count(":") == 1 else entry
        name = name.lstrip(".")
        if host == name or host.endswith("." + name):
            return True
    return False


def open_socket(
    target: Target,
    *,
    proxy: Optional[Proxy],
    ssl_context: Optional[ssl.SSLContext],
    deadline: Deadline,
    scrubber: Scrubber,
) -> socket.socket:
    """A connected socket to ``target`` (tunnelled, TLS-wrapped for ``wss``); raises ConnectError.

    Closes whatever it opened when it fails. The socket's timeout is left
    at whatever the last step set: the caller sets its own.
    """
    if proxy is None:
        sock = _tcp(target.host, target.port, target.where, deadline)
    elif proxy.scheme == "http":
        sock = _tcp(proxy.host, proxy.port, proxy.where, deadline)
        _closing_on_error(sock, _tunnel, sock, target, proxy, deadline, scrubber)
    else:
        sock = _socks(target, proxy, deadline, scrubber)
    if not target.secure:
        return sock
    context = ssl_context if ssl_context is not None else ssl.create_default_context()
    tls: socket.socket = _closing_on_error(sock, _tls, sock, target, context, deadline)
    return tls


def _closing_on_error(sock: socket.socket, step: Any, *args: Any) -> Any:
    """``step(*args)``, closing ``sock`` if it raises."""
    try:
        return step(*args)
    except BaseException:
        sock.close()
        raise


def _tcp(host: str, port: int, where: str, deadline: Deadline) -> socket.socket:
    """Connect to ``host:port``, trying each address with the time left."""
    try:
        infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise ConnectError(f"could not connect to {where} ({os_reason(exc)})") from exc
    last: Optional[OSError] = None
    for family, kind, proto, _, address in infos:
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(deadline.left())
            sock.connect(address)
        except OSError as exc:
            sock.close()
            last = exc
            if deadline.expired:
                raise deadline.timed_out(where, "connecting") from exc
            continue
        _tune(sock)
        return sock
    reason = os_reason(last) or (str(last) if last else "no address")
    raise ConnectError(f"could not connect to {where} ({reason})") from last


def _tune(sock: socket.socket) -> None:
    """The socket options websocket-client sets on the sockets it opens itself."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in (("TCP_KEEPIDLE", 30), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 3)):
            if hasattr(socket, name):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)


def _tunnel(
    sock: socket.socket, target: Target, proxy: Proxy, deadline: Deadline, scrubber: Scrubber
) -> None:
    """Ask the proxy for a tunnel to ``target`` (RFC 9110 section 9.3.6)."""
    lines = [f"CONNECT {target.where} HTTP/1.1", f"Host: {target.where}"]
    if proxy.username:
        pair = f"{proxy.username}:{proxy.password or ''}".encode()
        lines.append(f"Proxy-Authorization: Basic {base64.b64encode(pair).decode()}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    head = b""
    try:
        sock.settimeout(deadline.left())
        sock.sendall(request)
        while True:
            end = _head_end(head)
            if end is not None:
                break
            if len(head) >= MAX_PROXY_HEAD:
                raise ConnectError(
                    f"{proxy.where} answered CONNECT with more than "
                    f"{MAX_PROXY_HEAD // 1024} KiB of headers"
                )
            sock.settimeout(deadline.left())
            chunk = sock.recv(min(_READ, MAX_PROXY_HEAD - len(head)))
            if not chunk:
                raise ConnectError(f"{proxy.where} closed the connection instead of answering")
            head += chunk
    except OSError as exc:
        if deadline.expired or isinstance(exc, socket.timeout):
            raise deadline.timed_out(target.where, f"waiting for {proxy.where}") from exc
        reason = os_reason(exc) or type(exc).__name__
        raise ConnectError(f"could not connect through {proxy.where} ({reason})") from exc
    answer = parse_answer(head[:end], b"")
    if answer is None:
        raise ConnectError(f"{proxy.where} answered CONNECT with something that is not HTTP")
    if answer.status // 100 == 2:
        if len(head) > end:
            raise ConnectError(f"{proxy.where} sent data before the tunnel was used")
        return
    reason = scrubber.text(answer.reason)
    retryable = answer.status >= 500 or answer.status in (408, 429)
    raise ConnectError(
        f"{proxy.where} refused the tunnel to {target.where} with HTTP {answer.status} {reason}",
        retryable=retryable,
    )


def _socks(target: Target, proxy: Proxy, deadline: Deadline, scrubber: Scrubber) -> socket.socket:
    """Connect through a SOCKS proxy with python-socks (an optional dependency)."""
    try:
        sync: Any = importlib.import_module("python_socks.sync")
        types: Any = importlib.import_module("python_socks._types")
    except ImportError as exc:
        raise ConnectError(
            "a SOCKS proxy needs the python-socks package (pip install python-socks)",
            retryable=False,
        ) from exc
    kind = types.ProxyType.SOCKS4 if proxy.scheme.startswith("socks4") else types.ProxyType.SOCKS5
    client = sync.Proxy.create(
        proxy_type=kind,
        host=proxy.host,
        port=proxy.port,
        username=proxy.username,
        password=proxy.password,
        rdns=proxy.scheme in ("socks4a", "socks5h"),
    )
    try:
        sock: socket.socket = client.connect(target.host, target.port, timeout=deadline.left())
    except Exception as exc:  # python-socks raises its own types
        if deadline.expired:
            raise deadline.timed_out(target.where, f"waiting for {proxy.where}") from None
        raise ConnectError(
            f"could not connect through {proxy.where}: {scrubber.text(str(exc))}"
        ) from None
    return sock


def _tls(
    sock: socket.socket, target: Target, context: ssl.SSLContext, deadline: Deadline
) -> ssl.SSLSocket:
    try:
        sock.settimeout(deadline.left())
        return context.wrap_socket(sock, server_hostname=target.host)
    except ssl.SSLCertVerificationError as exc:
        raise ConnectError(
            f"could not connect to {target.where}: the server's TLS certificate failed "
            f"verification ({exc.verify_message or exc.reason})",
            retryable=False,
        ) from exc
    except (OSError, ValueError) as exc:
        if deadline.expired or isinstance(exc, socket.timeout):
            raise deadline.timed_out(target.where, "in the TLS handshake") from exc
        reason = os_reason(exc) or str(exc)
        raise ConnectError(f"could not connect to {target.where}: TLS failed ({reason})") from exc


# --------------------------------------------------------------------------
# The upgrade: websocket-client's handshake on a bounded socket
# --------------------------------------------------------------------------


class AnswerTooLarge(Exception):
    """Raised by :class:`HandshakeSocket` when a bound is reached (``head``: which one)."""

    def __init__(self, head: bool) -> None:
        super().__init__("the upgrade answer's head is too large" if head else "body cut")
        self.head = head


class HandshakeSocket:
    """The socket as websocket-client's handshake sees it.

    Every read and write waits at most the time left before ``deadline``
    (``socket.timeout`` once it passed); the answer's head may be up to
    :data:`MAX_UPGRADE_HEAD` bytes, and at most :data:`MAX_UPGRADE_BODY`
    bytes of a body are read (:class:`AnswerTooLarge` beyond either). What was
    read is kept in ``received`` (``head_end``: where the head ends), to
    describe a refusal. Anything else is the wrapped socket's (``raw``).
    """

    def __init__(self, raw: socket.socket, deadline: Deadline) -> None:
        self.raw = raw
        self.received = bytearray()
        self.head_end: Optional[int] = None
        self._deadline = deadline
        self._line = 0  # offset where the current head line starts
        # Head bytes taken from the socket, not yet handed out. websocket-client
        # reads the head one byte per recv(); on a plain socket the head is
        # peeked at and taken whole (never a byte past it: what follows a 101
        # are frames, for the reader).
        self._ahead = b""
        self._peek = not isinstance(raw, ssl.SSLSocket)

    def gettimeout(self) -> float:
        # Never 0: websocket-client takes 0 for a non-blocking socket.
        return max(self._deadline.remaining(), 0.001)

    def settimeout(self, timeout: Optional[float]) -> None:
        """Ignored: the deadline decides (websocket-client may set its own)."""

    def recv(self, bufsize: int) -> bytes:
        if self._ahead:
            data, self._ahead = self._ahead[:bufsize], self._ahead[bufsize:]
            self._note(data)
            return data
        if self.head_end is None:
            room = MAX_UPGRADE_HEAD - len(self.received)
            if room <= 0:
                raise AnswerTooLarge(head=True)
        else:
            room = MAX_UPGRADE_BODY - (len(self.received) - self.head_end)
            if room <= 0:
                raise AnswerTooLarge(head=False)
        self.raw.settimeout(self._deadline.left())
        if self.head_end is None and self._peek:
            self._ahead = self._take_head(min(room, _READ))
            data, self._ahead = self._ahead[:bufsize], self._ahead[bufsize:]
        else:
            data = self.raw.recv(min(bufsize, room))
        self._note(data)
        return data

    def _take_head(self, most: int) -> bytes:
        """Take from the socket what has arrived of the head (at most ``most`` bytes)."""
        peeked = self.raw.recv(most, socket.MSG_PEEK)
        if not peeked:
            return b""
        end, _ = _blank_line(self.received + peeked, self._line, len(self.received))
        take = len(peeked) if end is None else end - len(self.received)
        return self.raw.recv(take)

    def _note(self, data: bytes) -> None:
        start = len(self.received)
        self.received += data
        if self.head_end is None:
            self.head_end, self._line = _blank_line(self.received, self._line, start)

    def send(self, data: bytes) -> int:
        self.raw.settimeout(self._deadline.left())
        self.raw.sendall(data)
        return len(data)

    def sendall(self, data: bytes) -> None:
        self.send(data)

    def fileno(self) -> int:
        return self.raw.fileno()

    def shutdown(self, how: int) -> None:
        self.raw.shutdown(how)

    def close(self) -> None:
        self.raw.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


class Answer(NamedTuple):
    """An HTTP answer head (and the part of its body that was read)."""

    status: int
    reason: str
    headers: Dict[str, str]
    body: bytes


def parse_answer(head: bytes, body: bytes) -> Optional[Answer]:
    """Parse an HTTP/1.x status line and headers; ``None`` if ``head`` is not one.

    Header names are lower-cased; a repeated header keeps its last value.
    """
    lines: List[str] = head.decode("latin-1").replace("\r\n", "\n").split("\n")
    version, _, rest = lines[0].strip().partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.upper().startswith("HTTP/") or not code.isdigit() or len(code) != 3:
        return None
    headers: Dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon and name.strip():
            headers[name.strip().lower()] = value.strip()
    return Answer(int(code), reason.strip(), headers, bytes(body))


def _blank_line(data: Union[bytes, bytearray], line: int, start: int) -> Tuple[Optional[int], int]:
    """Where the head in ``data`` ends, scanning line ends from ``start``.

    ``line`` is where the current line starts. The head ends after the first
    line that is blank once stripped (as websocket-client reads it). Returns
    the end (or ``None``) and where the current line starts now.
    """
    at = data.find(b"\n", start)
    while at != -1:
        if not data[line:at].strip():
            return at + 1, line
        line = at + 1
        at = data.find(b"\n", at + 1)
    return None, line


def _head_end(data: bytes) -> Optional[int]:
    """Where the head in ``data`` ends (after its blank line), if it does yet."""
    ends: List[Tuple[int, int]] = [
        (i, len(sep)) for sep in (b"\r\n\r\n", b"\n\n") if (i := data.find(sep)) != -1
    ]
    if not ends:
        return None
    index, size = min(ends)
    return index + size
