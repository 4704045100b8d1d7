"""Command line entry point: ``python -m openai_ws.emulator``.

Starts an ``Emulator`` with the given flags, prints its base URL alone on the
first line (flushed, so scripts can read it), then, with ``--tls``, how to trust
its CA; serves until Ctrl-C or SIGTERM and exits 0. It must never print the API
key and never keep running after a termination signal.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType
from typing import List, Optional

from ._config import STREAM_ID_MODES, EmulatorConfig
from ._server import Emulator

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (one flag per ``EmulatorConfig`` field that matters)."""
    parser = argparse.ArgumentParser(
        prog="python -m openai_ws.emulator",
        description="Local emulator of the OpenAI Responses API (WebSocket mode + HTTP/SSE).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind")
    parser.add_argument("--port", type=int, default=0, help="port to bind (0: any free port)")
    parser.add_argument("--tls", action="store_true", help="serve https/wss with a local CA")
    parser.add_argument("--api-key", default="sk-emulator", help="bearer token to accept")
    parser.add_argument("--no-auth", action="store_true", help="accept any or no API key")
    parser.add_argument("--ttft", type=float, default=0.0, help="seconds to first token")
    parser.add_argument("--token-interval", type=float, default=0.0, help="seconds between deltas")
    parser.add_argument(
        "--output-tokens", type=int, default=None, help="exact token count of text replies"
    )
    parser.add_argument(
        "--max-connection-age", type=float, default=3600.0, help="WebSocket lifetime limit (s)"
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
        "--stream-id-mode", choices=STREAM_ID_MODES, default="support", help="lane support"
    )
    parser.add_argument(
        "--upgrade-status", type=int, default=None, help="refuse WS upgrades with this status"
    )
    parser.add_argument(
        "--max-message-size", type=int, default=16 * 1024 * 1024, help="inbound frame limit"
    )
    parser.add_argument(
        "--server-ping-interval", type=float, default=None, help="send WS pings every S s"
    )
    parser.add_argument("--sse-done", action="store_true", help="end SSE with data: [DONE]")
    parser.add_argument(
        "--store-lookup-delay", type=float, default=0.0, help="extra delay on store loads"
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
        store_lookup_delay=args.store_lookup_delay,
        strict_parameters=not args.lenient,
    )


def main(argv: Optional[List[str]] = None) -> int:
    """Run the emulator until interrupted; return the exit status."""
    args = build_parser().parse_args(argv)
    emulator = Emulator(
        api_key=args.api_key,
        host=args.host,
        port=args.port,
        tls=args.tls,
        config=config_from_args(args),
    )
    stop = threading.Event()

    def on_signal(_signum: int, _frame: Optional[FrameType]) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    emulator.start()
    try:
        print(emulator.base_url, flush=True)
        print(f"WebSocket: {emulator.ws_url}", flush=True)
        if emulator.ca_file:
            print(f"Trust the emulator's CA: {emulator.ca_file}", flush=True)
            print(
                f"  export SSL_CERT_FILE={emulator.ca_file} REQUESTS_CA_BUNDLE={emulator.ca_file}",
                flush=True,
            )
        print("Press Ctrl-C to stop.", flush=True)
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
        signal.signal(signal.SIGTERM, previous)
    return 0


if __name__ == "__main__":
    sys.exit(main())
