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
import time
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


def _stream_until_stall(session: Session, expected: int, stall: threading.Event) -> List[Any]:
    """Stream until ``expected`` events arrived; fails if that needs the server to go on
    (``stall`` set) or takes 3 s (the server holds back for longer)."""
    got: List[Any] = []
    started = time.monotonic()
    with session.stream(model="m", input="0") as events:
        for event in events:
            got.append(event)
            if len(got) == expected:
                assert not stall.is_set(), "the events came only after the server went on"
                assert time.monotonic() - started < 3.0, "the events came late"
                break
    return got


def test_reads_queued_behind_each_other_wake_their_consumer_once_the_socket_drains() -> None:
    """The reader may wait to wake a consumer while more reads are already queued, never
    past a read that would block: two reads pushed at once to a consumer already waiting,
    then silence, reach it before the server sends anything more."""
    stall = threading.Event()
    timers: List[threading.Timer] = []

    def script(transport: FakeTransport, frame: Dict[str, Any]) -> None:
        events = _events(0, 8, frame.get("stream_id"))
        transport.push(events[0])
        body = [json.dumps(e) for e in events[1:-1]]

        def burst() -> None:  # the consumer is waiting by now
            transport.push(*body[:4])
            transport.push(*body[4:])

        def finish() -> None:
            stall.set()
            transport.push(events[-1])

        timers.extend([threading.Timer(0.3, burst), threading.Timer(5.0, finish)])
        for timer in timers:
            timer.start()

    server = FakeServer(script)
    try:
        with Session(options(request_timeout=30.0), transport=server.factory) as session:
            got = _stream_until_stall(session, 10, stall)  # created, 8 deltas, the item
    finally:
        for timer in timers:
            timer.cancel()
            timer.join()
    assert [getattr(e, "delta", None) for e in got[1:9]] == [f"<0.{d}>" for d in range(8)]


def test_the_transport_reports_a_backlog_only_when_a_read_will_not_block() -> None:
    """WSTransport.backlog(): False after a read that drained the socket (even one that
    filled its 64 KiB chunk exactly), True while more bytes are waiting."""
    from servers import SilentServer, frame

    from openai_ws._transports.ws import WSTransport

    def script(text: str) -> List[bytes]:
        size = int(text)  # the bytes of frames to send, exactly
        payload = size - 4
        return [frame(0x1, b'"' + b"x" * (payload - 2) + b'"')]

    with SilentServer(script) as peer:
        transport = WSTransport(
            f"ws://127.0.0.1:{peer.port}/v1/responses", headers={}, connect_timeout=5.0
        )
        transport.connect()
        try:
            for size, backlog in ((65536, False), (65536 + 1000, True), (1000, False)):
                transport.send_text(str(size))
                time.sleep(0.3)  # all of it has arrived
                transport.recv()
                assert transport.backlog() is backlog, size
                if backlog:
                    transport.recv()  # the rest: drained again
                    assert transport.backlog() is False
        finally:
            transport.send_close()
            transport.abort()
            transport.release()


def test_a_burst_then_silence_over_a_real_socket_reaches_the_consumer_at_once() -> None:
    """A server writes about 400 KiB of deltas at once (several full 64 KiB reads) and
    then holds its terminal event back: every delta reaches the consumer during the hold."""
    from servers import SilentServer, frame

    import openai_ws

    stall = threading.Event()  # set only when the test is over: the hold never ends
    deltas = 1500

    def script(text: str) -> List[bytes]:
        events = _events(0, deltas, json.loads(text).get("stream_id"))
        for event in events:
            if "delta" in event:
                event["delta"] += " " * 200
        return [b"".join(frame(0x1, json.dumps(e).encode()) for e in events[:-1])]

    with SilentServer(script) as peer:
        client = openai_ws.OpenAI(api_key="sk-test", base_url=peer.url)
        try:
            with client.ws_session() as session:
                got = _stream_until_stall(session, deltas + 2, stall)
        finally:
            stall.set()
            client.close()
    assert sum(1 for e in got if getattr(e, "delta", None)) == deltas
