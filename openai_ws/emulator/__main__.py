"""Command line entry point: ``python -m openai_ws.emulator``.

Starts an ``Emulator`` with the given flags, prints its base URL alone on the
first line (flushed, so scripts can read it), then the WebSocket URL, with
``--tls`` how to trust its CA (``--cert-dir`` keeps that file at one path), and
which API key it accepts; serves until Ctrl-C or SIGTERM and exits 0. A usage
error or a server that cannot start (a busy port, an unknown host) is one
``error:`` line on stderr and exit 2, never a traceback. It must never print a
key given with ``--api-key`` (only the well-known default) and never keep
running after a termination signal.
"""

from __future__ import annotations

import argparse
import errno
import signal
import sys
import threading
from types import FrameType
from typing import Any, Callable, List, NoReturn, Optional

from ._config import STREAM_ID_MODES, EmulatorConfig
from ._server import DEFAULT_API_KEY, Emulator

__all__ = ["build_parser", "main"]

PROG = "python -m openai_ws.emulator"
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line: ``PROG: error: ... (see --help)``."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _number(
    text: str, kind: Callable[[str], Any], noun: str, ok: Callable[[Any], bool], rule: str
) -> Any:
    """Parse ``text`` as ``kind`` (``int`` or ``float``); ``ok(value)`` or a usage error."""
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not {noun}: {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"must be {rule}, got {text}")
    return value


def _port(text: str) -> int:
    """argparse type of ``--port``: an integer from 0 to 65535 (RFC 6335 section 6)."""
    port: int = _number(
        text, int, "an integer", lambda v: 0 <= v <= 65535, "a port number from 0 to 65535"
    )
    return port


def _seconds(text: str) -> float:
    """argparse type of durations: a number of seconds, not negative."""
    seconds: float = _number(text, float, "a number", lambda v: v >= 0, "0 or more seconds")
    return seconds


def _count(text: str) -> int:
    """argparse type of counts and sizes: a positive integer."""
    count: int = _number(text, int, "an integer", lambda v: v > 0, "a positive integer")
    return count


def _status(text: str) -> int:
    """argparse type of ``--upgrade-status``: an HTTP error status (400-599)."""
    status: int = _number(
        text, int, "an integer", lambda v: 400 <= v <= 599, "an HTTP error status (400-599)"
    )
    return status


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (one flag per ``EmulatorConfig`` field that matters)."""
    parser = _Parser(
        prog=PROG,
        usage="%(prog)s [options]",
        description=(
            f"Accepts the API key {DEFAULT_API_KEY!r} unless --api-key names another "
            "(--no-auth: any key, or none). "
            "A local emulator of the OpenAI Responses API (WebSocket mode + HTTP/SSE). "
            "Prints its base URL alone on the first line, then serves until Ctrl-C."
        ),
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="interface to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=_port, default=0, help="port to bind (default: 0: any free port)"
    )
    parser.add_argument("--tls", action="store_true", help="serve https/wss with a local CA")
    parser.add_argument(
        "--cert-dir",
        metavar="DIR",
        help="with --tls: write the CA to DIR/emulator-ca.pem (a path that stays the same "
        "across restarts; rewritten with each start's CA) instead of a new temporary directory",
    )
    parser.add_argument(
        "--api-key",
        default=DEFAULT_API_KEY,
        help="bearer token to accept (default: %(default)s)",
    )
    parser.add_argument("--no-auth", action="store_true", help="accept any or no API key")
    parser.add_argument(
        "--ttft",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="seconds to first token (default: %(default)g)",
    )
    parser.add_argument(
        "--token-interval",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="seconds between deltas (default: %(default)g)",
    )
    parser.add_argument(
        "--output-tokens",
        type=_count,
        default=None,
        metavar="N",
        help="exact token count of text replies (default: echo the input)",
    )
    parser.add_argument(
        "--max-connection-age",
        type=_seconds,
        default=3600.0,
        metavar="SECONDS",
        help="WebSocket lifetime limit (default: %(default)g)",
    )
    parser.add_argument(
        "--no-quirks",
        action="store_true",
        help="disable the decimal temperature/top_p silent close",
    )
    parser.add_argument(
        "--allow-background", action="store_true", help="do not reject background=true on WS"
    )
    parser.add_argument(
        "--stream-id-mode",
        choices=STREAM_ID_MODES,
        default="support",
        help="lane support (default: %(default)s)",
    )
    parser.add_argument(
        "--upgrade-status",
        type=_status,
        default=None,
        metavar="STATUS",
        help="refuse WS upgrades with this HTTP status (default: accept them)",
    )
    parser.add_argument(
        "--max-message-size",
        type=_count,
        default=16 * 1024 * 1024,
        metavar="BYTES",
        help="inbound WebSocket message limit (default: %(default)s)",
    )
    parser.add_argument(
        "--server-ping-interval",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="ping idle WebSockets this often (default: never)",
    )
    parser.add_argument("--sse-done", action="store_true", help="end SSE with data: [DONE]")
    parser.add_argument(
        "--decimal-rule",
        choices=("non_integer", "any_fraction"),
        default="non_integer",
        help="what trips the silent close: a non-integer number (0.7), or any number "
        "written with a fraction (1.0 too) (default: %(default)s)",
    )
    parser.add_argument(
        "--sse-error-shape",
        choices=("flat", "nested"),
        default="flat",
        help="shape of a mid-stream SSE error event (default: %(default)s)",
    )
    parser.add_argument(
        "--store-lookup-delay",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="extra delay on store loads (default: %(default)g)",
    )
    parser.add_argument(
        "--history-rebuild-base",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="cost model: fixed delay of a continuation loaded from the store "
        "(default: %(default)g)",
    )
    parser.add_argument(
        "--history-rebuild-per-item",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="cost model: delay per item of the parent chain on a store load "
        "(default: %(default)g)",
    )
    parser.add_argument(
        "--steering-models",
        default="gpt-6",
        metavar="PREFIXES",
        help="comma-separated model name prefixes that accept response.steer "
        "(default: %(default)s; empty: none)",
    )
    parser.add_argument(
        "--max-pending-steers",
        type=_count,
        default=4,
        metavar="N",
        help="accepted steers waiting per response (default: %(default)s)",
    )
    parser.add_argument(
        "--steering-token-interval",
        type=_seconds,
        default=0.02,
        metavar="SECONDS",
        help="pace of a steerable model's WebSocket answer when --token-interval is 0 "
        "(default: %(default)g)",
    )
    parser.add_argument("--lenient", action="store_true", help="ignore unknown body parameters")
    return parser


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    """Translate parsed flags into an ``EmulatorConfig``."""
    return EmulatorConfig(
        require_auth=not args.no_auth,
        ttft=args.ttft,
        token_interval=args.token_interval,
        output_tokens=args.output_tokens,
        max_connection_age=args.max_connection_age,
        decimal_sampling_quirk=not args.no_quirks,
        reject_background=not args.allow_background,
        stream_id_mode=args.stream_id_mode,
        upgrade_status=args.upgrade_status,
        max_message_size=args.max_message_size,
        server_ping_interval=args.server_ping_interval,
        sse_done=args.sse_done,
        decimal_sampling_rule=args.decimal_rule,
        sse_error_shape=args.sse_error_shape,
        store_lookup_delay=args.store_lookup_delay,
        history_rebuild_base=args.history_rebuild_base,
        history_rebuild_per_item=args.history_rebuild_per_item,
        steering_models=tuple(p.strip() for p in args.steering_models.split(",") if p.strip()),
        max_pending_steers=args.max_pending_steers,
        steering_token_interval=args.steering_token_interval,
        strict_parameters=not args.lenient,
    )


def _key_line(args: argparse.Namespace) -> str:
    """Which key the emulator accepts, without ever printing one the user chose."""
    if args.no_auth:
        return "API key: any (--no-auth)"
    if args.api_key == DEFAULT_API_KEY:
        return f"API key: {DEFAULT_API_KEY} (the default; choose another with --api-key)"
    return "API key: the one given with --api-key"


def _start_failure(exc: RuntimeError, args: argparse.Namespace) -> str:
    """The one error line for a server that could not start."""
    message = f"{PROG}: error: {exc}"
    cause = exc.__cause__
    if isinstance(cause, OSError) and cause.errno == errno.EADDRINUSE and args.port:
        message += " (choose another --port, or --port 0 for any free one)"
    return message


def main(argv: Optional[List[str]] = None) -> int:
    """Run the emulator until interrupted; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.cert_dir is not None and not args.tls:
        parser.error("--cert-dir needs --tls")
    emulator = Emulator(
        api_key=args.api_key,
        host=args.host,
        port=args.port,
        tls=args.tls,
        cert_dir=args.cert_dir,
        config=config_from_args(args),
    )
    stop = threading.Event()

    def on_signal(_signum: int, _frame: Optional[FrameType]) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    try:
        try:
            emulator.start()
        except RuntimeError as exc:
            print(_start_failure(exc, args), file=sys.stderr, flush=True)
            return EXIT_USAGE
        try:
            print(emulator.base_url, flush=True)
            print(f"WebSocket: {emulator.ws_url}", flush=True)
            if emulator.ca_file:
                ca_file = emulator.ca_file
                print(f"Trust the emulator's CA: {ca_file}", flush=True)
                print(f"  export SSL_CERT_FILE={ca_file} REQUESTS_CA_BUNDLE={ca_file}", flush=True)
            print(_key_line(args), flush=True)
            print("Press Ctrl-C to stop.", flush=True)
            stop.wait()
        except KeyboardInterrupt:
            pass
        finally:
            emulator.stop()
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


if __name__ == "__main__":
    sys.exit(main())
