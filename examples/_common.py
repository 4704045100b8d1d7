"""Shared by the examples: a client for the real API or for the bundled emulator.

With ``OPENAI_API_KEY`` set, the examples talk to the real API (model from
``OPENAI_MODEL``, default ``gpt-4o-mini``). Without it they start the bundled
emulator on 127.0.0.1 and say so in one line.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator, Tuple

import openai_ws


def offline() -> bool:
    """True when the examples run against the bundled emulator."""
    return not os.environ.get("OPENAI_API_KEY")


@contextlib.contextmanager
def client_and_model() -> Iterator[Tuple[openai_ws.OpenAI, str]]:
    """Yield ``(client, model)``; starts and stops the emulator when offline."""
    if not offline():
        yield openai_ws.OpenAI.from_env(), os.environ.get("OPENAI_MODEL", "gpt-4o-mini")
        return
    from openai_ws.emulator import Emulator

    with Emulator() as emulator:
        print(f"OPENAI_API_KEY is not set: using the bundled emulator at {emulator.base_url}")
        yield openai_ws.OpenAI(api_key=emulator.api_key, base_url=emulator.base_url), "gpt-4o-mini"
