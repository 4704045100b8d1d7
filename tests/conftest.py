"""Shared pytest fixtures: a fresh emulator per test, and a guard against leaked threads.

``emulator`` starts an ``openai_ws.emulator.Emulator`` on 127.0.0.1, port 0
(start-up and shutdown take milliseconds, so every test gets its own server
and its own ``EmulatorConfig``). ``no_thread_leaks`` (autouse) fails any test
that leaves a thread running that was not there before it started. This file
must never configure the library under test, patch it, or hide its threads.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import TYPE_CHECKING, Iterator

import pytest

# Make the package importable when the repository is not installed
# (``pytest`` run from a plain checkout).
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

if TYPE_CHECKING:
    from openai_ws.emulator import Emulator

EMULATOR_API_KEY = "sk-emulator-test-key"
"""API key of the ``emulator`` fixture."""

_THREAD_GRACE = 1.0  # seconds a finished test's threads get to end on their own


@pytest.fixture(autouse=True)
def no_thread_leaks() -> Iterator[None]:
    """Fail the test if it leaves threads alive that it started."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + _THREAD_GRACE
    leaked = []
    while True:
        leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not leaked or time.monotonic() >= deadline:
            break
        time.sleep(0.01)
    if leaked:
        names = ", ".join(sorted(t.name for t in leaked))
        pytest.fail(f"test left {len(leaked)} thread(s) alive: {names}", pytrace=False)


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """A running emulator (plain ws/http) with a default config; stopped afterwards."""
    from openai_ws.emulator import Emulator

    with Emulator(api_key=EMULATOR_API_KEY) as emu:
        yield emu
