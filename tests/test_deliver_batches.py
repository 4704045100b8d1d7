"""Batched delivery: the events of one socket read reach their own requests, in order.

The reader hands each read's decoded events to the engine together; the engine
routes the plain ones in runs (one inbox put per request) and sends any other
event (created, terminal, unroutable) through its slow path after the runs
before it. These tests hold that to the per-event behaviour through the real
reader thread: a scripted server answers several concurrent requests (streams
and ``send()`` calls) with their events interleaved in any order and cut into
reads of any size, mixed with malformed and unroutable frames, while a stream
may stop listening part way. Every request must get exactly its own events, in
order, and a stopped stream none after it stopped.
"""

from __future__ import annotations

import json
import threading
from typing import Any, Dict, List, Optional

from fake_transport import FakeServer, FakeTransport, message_item, options, response
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openai_ws.session import Session


def _events(index: int, deltas: int, lane: Optional[str]) -> List[Dict[str, Any]]:
    """The answer to request ``index``: created, ``deltas`` deltas, the item, completed."""
    rid = f"resp_{index}"
    text = "".join(f"<{index}.{d}>" for d in range(deltas))
    events: List[Dict[str, Any]] = [
        {"type": "response.created", "response": response(rid, "in_progress")}
    ]
    events += [
        {
            "type": "response.output_text.delta",
            "item_id": f"msg_{rid}",
            "output_index": 0,
            "content_index": 0,
            "delta": f"<{index}.{d}>",
            "sequence_number": d + 1,
        }
        for d in range(deltas)
    ]
    events.append(
        {
            "type": "response.output_item.done",
            "output_index": 0,
            "item": message_item(f"msg_{rid}", text),
        }
    )
    events.append({"type": "response.completed", "response": response(rid, text=text)})
    for event in events:
        if lane is not None:
            event["stream_id"] = lane
    return events


@st.composite
def _plans(draw: st.DrawFn) -> Dict[str, Any]:
    count = draw(st.integers(1, 5))
    deltas = draw(st.lists(st.integers(0, 6), min_size=count, max_size=count))
    modes = draw(st.lists(st.sampled_from(["stream", "send"]), min_size=count, max_size=count))
    # A stream may stop listening after this many events (None: reads to the end).
    stops = [
        draw(st.none() | st.integers(1, d + 2)) if mode == "stream" else None
        for mode, d in zip(modes, deltas)
    ]
    # Which request each next event belongs to: any interleaving of their answers.
    owners = draw(st.permutations([i for i in range(count) for _ in range(deltas[i] + 3)]))
    junk = draw(st.lists(st.integers(0, len(owners)), max_size=3))  # where junk frames go
    cuts = draw(st.lists(st.integers(1, 8), min_size=1, max_size=12))  # read sizes, cycled
    return {
        "deltas": deltas,
        "modes": modes,
        "stops": stops,
        "owners": owners,
        "junk": junk,
        "cuts": cuts,
    }


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_plans())
def test_interleaved_answers_in_any_reads_reach_exactly_their_requests(
    plan: Dict[str, Any],
) -> None:
    deltas: List[int] = plan["deltas"]
    count = len(deltas)
    received: List[Dict[str, Any]] = []
    all_in = threading.Event()

    def script(transport: FakeTransport, frame: Dict[str, Any]) -> None:
        if frame.get("type") != "response.create":
            return
        received.append(frame)
        if len(received) < count:
            return
        answers = [
            _events(int(f["input"]), deltas[int(f["input"])], f.get("stream_id")) for f in received
        ]
        by_owner = {int(f["input"]): iter(a) for f, a in zip(received, answers)}
        frames: List[str] = [json.dumps(next(by_owner[i])) for i in plan["owners"]]
        for n, at in enumerate(sorted(plan["junk"], reverse=True)):
            frames.insert(
                at, "not json" if n % 2 else json.dumps({"type": "x", "stream_id": "nobody"})
            )
        cuts, start, k = plan["cuts"], 0, 0
        while start < len(frames):
            size = cuts[k % len(cuts)]
            transport.push(*frames[start : start + size])
            start += size
            k += 1
        all_in.set()

    server = FakeServer(script)
    results: Dict[int, Any] = {}
    errors: List[BaseException] = []
    with Session(options(), transport=server.factory) as session:

        def run(index: int) -> None:
            try:
                if plan["modes"][index] == "send":
                    results[index] = session.send(model="m", input=str(index)).output_text
                    return
                got: List[Any] = []
                with session.stream(model="m", input=str(index)) as events:
                    for event in events:
                        got.append(event)
                        if len(got) == plan["stops"][index]:
                            break
                results[index] = got
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert all_in.is_set()
        stats = session.stats
    assert not errors, errors
    for index in range(count):
        expected = _events(index, deltas[index], None)
        if plan["modes"][index] == "send":
            assert results[index] == "".join(f"<{index}.{d}>" for d in range(deltas[index]))
            continue
        stop = plan["stops"][index]
        want = expected if stop is None else expected[:stop]
        got = results[index]
        assert [type(e).__name__ for e in got] == [_type_name(e["type"]) for e in want]
        assert [getattr(e, "delta", None) for e in got] == [e.get("delta") for e in want]
    junk = plan["junk"]
    assert stats.malformed_frames == sum(1 for n in range(len(junk)) if n % 2)
    assert stats.unroutable_events == sum(1 for n in range(len(junk)) if not n % 2)


_NAMES = {
    "response.created": "ResponseCreated",
    "response.output_text.delta": "ResponseOutputTextDelta",
    "response.output_item.done": "ResponseOutputItemDone",
    "response.completed": "ResponseCompleted",
}


def _type_name(event_type: str) -> str:
    return _NAMES[event_type]
