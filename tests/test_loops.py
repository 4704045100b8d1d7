"""Session.run (the tool-calling loop) and Session.map against the emulator."""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any, Dict, Iterator, List

import pytest

from openai_ws import APIError, OpenAI, ResponseCreateRequest, Session
from openai_ws.emulator import Emulator

KEY = "sk-loops"


@pytest.fixture
def session() -> Iterator[Session]:
    with Emulator(api_key=KEY) as server:
        client = OpenAI(api_key=KEY, base_url=server.base_url, max_retries=0)
        with client.ws_session() as s:
            yield s


def calling(*calls: Dict[str, Any], text: str = "weather please") -> ResponseCreateRequest:
    return ResponseCreateRequest(
        model="m",
        input=text,
        metadata={"emulator_function_call": json.dumps(list(calls))},
    )


def test_run_executes_parallel_calls_and_chains(session: Session) -> None:
    """Two calls in one turn run (in parallel threads), their outputs go back, the answer comes."""
    seen: List[str] = []
    threads = set()

    def get_weather(city: str) -> Dict[str, Any]:
        threads.add(threading.get_ident())
        time.sleep(0.05)
        seen.append(city)
        return {"city": city, "sky": "clear"}

    result = session.run(
        calling(
            {"name": "get_weather", "arguments": {"city": "Paris"}},
            {"name": "get_weather", "arguments": {"city": "Rome"}},
        ),
        tools={"get_weather": get_weather},
    )
    assert sorted(seen) == ["Paris", "Rome"]
    assert len(threads) == 2
    assert result.turns == 2 and result.finished
    assert result.responses[1].previous_response_id == result.responses[0].id
    answer = result.response.output_text
    assert answer.startswith("Tool said:")
    assert '"city": "Paris"' in answer and '"city": "Rome"' in answer


def test_tool_errors_become_outputs_or_propagate(session: Session) -> None:
    """A failing or unknown tool is reported to the model, or raised with tool_errors='raise'."""

    def broken(**_: Any) -> str:
        raise ValueError("sensor offline")

    request = calling({"name": "broken", "arguments": {}}, {"name": "missing", "arguments": {}})
    result = session.run(request, tools={"broken": broken})
    assert "ValueError: sensor offline" in result.response.output_text
    assert "no tool named 'missing'" in result.response.output_text
    with pytest.raises(ValueError, match="sensor offline"):
        session.run(
            calling({"name": "broken", "arguments": {}}),
            tools={"broken": broken},
            tool_errors="raise",
        )


def test_run_stops_at_max_turns(session: Session) -> None:
    """With max_turns=1 the loop returns the calls unanswered and says it is not finished."""
    result = session.run(
        calling({"name": "t", "arguments": {}}), tools={"t": lambda: "x"}, max_turns=1
    )
    assert result.turns == 1 and not result.finished
    assert [c.name for c in result.response.function_calls] == ["t"]
    with pytest.raises(ValueError):
        session.run(calling(), tools={}, max_turns=0)


def test_run_without_calls_is_one_turn(session: Session) -> None:
    """A request the model answers directly takes one turn."""
    result = session.run(model="m", input="just talk", tools={})
    assert result.turns == 1 and result.response.output_text == "just talk"


def test_map_keeps_input_order(session: Session) -> None:
    """map() runs requests concurrently and yields responses in input order."""
    requests = [
        ResponseCreateRequest(
            model="m", input=f"item {i}", metadata={"emulator_ttft": str(0.05 * (i % 3))}
        )
        for i in range(12)
    ]
    texts = [r.output_text for r in session.map(requests, concurrency=6)]  # type: ignore[union-attr]
    assert texts == [f"item {i}" for i in range(12)]
    assert session.stats.lanes_used > 1  # they ran side by side, on several lanes


def test_map_errors_raise_or_are_returned(session: Session) -> None:
    """A failed request raises in order, or is yielded as the exception on request."""
    requests = [
        ResponseCreateRequest(model="m", input="ok"),
        ResponseCreateRequest(
            model="m", input="bad", metadata={"emulator_error": "invalid_prompt"}
        ),
    ]
    results = list(session.map(requests, return_exceptions=True))
    assert getattr(results[0], "output_text", None) == "ok"
    assert isinstance(results[1], APIError) and results[1].code == "invalid_prompt"
    with pytest.raises(APIError):
        list(session.map(requests))


def test_map_progress_bar_counts_each_request(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """progress=True drives a tqdm bar (here a stand-in) once per request, then closes it."""
    bars: List[Any] = []

    class FakeBar:
        def __init__(self, total: int, unit: str) -> None:
            self.total, self.count, self.closed = total, 0, False
            bars.append(self)

        def update(self, n: int) -> None:
            self.count += n

        def close(self) -> None:
            self.closed = True

    fake = type(sys)("tqdm")
    fake.tqdm = FakeBar  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tqdm", fake)
    requests = [ResponseCreateRequest(model="m", input=f"n{i}") for i in range(5)]
    assert len(list(session.map(requests, progress=True))) == 5
    assert len(bars) == 1 and bars[0].total == 5 and bars[0].count == 5 and bars[0].closed
