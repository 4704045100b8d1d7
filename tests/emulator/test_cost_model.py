"""The emulator's cost model: what a continuation whose parent is loaded from the store costs.

A continuation loaded from the store (over HTTP, or over a WebSocket whose
cache does not hold the parent) waits ``store_lookup_delay +
history_rebuild_base + history_rebuild_per_item * items`` before its first
event, ``items`` being every input and output item of the parent's chain; a
WebSocket continuation found in the socket's own cache pays none of it
(docs/protocol.md section 5). The defaults are 0, so no other test changes.
Bounds here are lower bounds (the model's minimum), plus one generous upper
bound for the cache hit ("does not pay a base of 0.3 s").
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Tuple

import pytest
from emutools import ask, connect, http

from openai_ws.emulator import Emulator, EmulatorConfig
from openai_ws.emulator._responses import store_load_delay

BASE = 0.3
PER_ITEM = 0.04


def test_the_model_is_base_plus_per_item_times_the_items_of_the_parent_chain() -> None:
    """store_load_delay = lookup + base + per_item * items, and 0 with the default config."""
    config = EmulatorConfig(
        store_lookup_delay=0.05, history_rebuild_base=0.2, history_rebuild_per_item=0.01
    )
    assert store_load_delay(config, 0) == pytest.approx(0.25)
    assert store_load_delay(config, 30) == pytest.approx(0.55)
    assert store_load_delay(config, 60) > store_load_delay(config, 30)
    default = EmulatorConfig()
    assert default.history_rebuild_base == 0.0
    assert default.history_rebuild_per_item == 0.0
    assert store_load_delay(default, 1000) == 0.0


def timed_ask(ws: Any, **fields: Any) -> Tuple[Dict[str, Any], float]:
    started = time.monotonic()
    final = ask(ws, **fields)[-1]
    return final, time.monotonic() - started


@pytest.fixture
def chain(emulator: Emulator) -> Tuple[Emulator, str, int, List[float]]:
    """Three stored turns on one socket: (emulator, last id, items in its chain, turn times)."""
    emulator.config.history_rebuild_base = BASE
    emulator.config.history_rebuild_per_item = PER_ITEM
    ws = connect(emulator)
    times: List[float] = []
    try:
        previous = None
        for text in ("one", "two", "three"):
            fields: Dict[str, Any] = {"input": text}
            if previous is not None:
                fields["previous_response_id"] = previous
            final, elapsed = timed_ask(ws, **fields)
            assert final["type"] == "response.completed", final
            previous = final["response"]["id"]
            times.append(elapsed)
    finally:
        ws.close()
    assert previous is not None
    return emulator, previous, 6, times  # each turn: one input message, one output message


def test_a_websocket_continuation_from_the_sockets_cache_does_not_pay(
    chain: Tuple[Emulator, str, int, List[float]],
) -> None:
    """Turns 2 and 3 find their parent in the socket's cache: no store load, far below the base."""
    emulator, _, _, times = chain
    assert emulator.stats.cache_hits == 2
    assert emulator.stats.store_hits == 0
    assert max(times[1:]) < BASE, times


def test_an_http_continuation_pays_the_rebuild_of_the_whole_parent_chain(
    chain: Tuple[Emulator, str, int, List[float]],
) -> None:
    """HTTP always loads the parent from the store: at least base + per_item * 6 items."""
    emulator, parent_id, items, _ = chain
    with http(emulator) as session:
        started = time.monotonic()
        answer = session.post(
            emulator.base_url + "/responses",
            json={"model": "m", "input": "four", "previous_response_id": parent_id},
            timeout=10,
        )
        elapsed = time.monotonic() - started
    assert answer.status_code == 200, answer.text
    assert emulator.stats.store_hits == 1
    assert elapsed >= BASE + PER_ITEM * items, elapsed


def test_a_websocket_cache_miss_pays_the_rebuild_too(
    chain: Tuple[Emulator, str, int, List[float]],
) -> None:
    """A new socket's cache is empty: its continuation loads from the store and pays the same."""
    emulator, parent_id, items, _ = chain
    ws = connect(emulator)
    try:
        final, elapsed = timed_ask(ws, input="four", previous_response_id=parent_id)
    finally:
        ws.close()
    assert final["type"] == "response.completed", final
    assert final["response"]["usage"]["input_tokens_details"]["cached_tokens"] == 0
    assert emulator.stats.store_hits == 1
    assert elapsed >= BASE + PER_ITEM * items, elapsed
