"""Shared by the examples: a client for the real API or for the bundled emulator.

Every example takes ``--emulator`` to use the bundled emulator on 127.0.0.1
even when ``OPENAI_API_KEY`` is exported (``--help`` shows the script's own
description and starts nothing). Without the flag: with ``OPENAI_API_KEY`` set
the examples talk to the real API (``OPENAI_BASE_URL`` and the other
``OPENAI_*`` settings apply; model from ``OPENAI_MODEL``, default
``gpt-4o-mini``); without it they start the emulator. Either way the first line
says when the emulator is used, and why.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import sys
from typing import Iterator, Tuple

import openai_ws


@functools.cache
def options() -> argparse.Namespace:
    """The example's command line, parsed once (``--help`` prints it and exits)."""
    main = sys.modules.get("__main__")
    doc = (getattr(main, "__doc__", None) or "").strip()
    parser = argparse.ArgumentParser(
        prog=os.path.basename(sys.argv[0]),
        description=doc.splitlines()[0] if doc else None,
        epilog="With OPENAI_API_KEY set and no --emulator, the example talks to the real API.",
    )
    parser.add_argument(
        "--emulator",
        action="store_true",
        help="use the bundled emulator even when OPENAI_API_KEY is set (no key needed; "
        "it echoes your input back)",
    )
    return parser.parse_args()


def offline() -> bool:
    """True when the examples run against the bundled emulator."""
    return bool(options().emulator) or not os.environ.get("OPENAI_API_KEY")


@contextlib.contextmanager
def client_and_model() -> Iterator[Tuple[openai_ws.OpenAI, str]]:
    """Yield ``(client, model)``; starts and stops the emulator when offline."""
    if not offline():
        client = openai_ws.OpenAI.from_env()
        try:
            yield client, os.environ.get("OPENAI_MODEL", "gpt-4o-mini")
        finally:
            client.close()
        return
    from openai_ws.emulator import Emulator

    why = "--emulator" if options().emulator else "OPENAI_API_KEY is not set"
    with Emulator() as emulator:
        print(f"{why}: using the bundled emulator at {emulator.base_url}")
        client = openai_ws.OpenAI(api_key=emulator.api_key, base_url=emulator.base_url)
        try:
            yield client, "gpt-4o-mini"
        finally:
            client.close()
