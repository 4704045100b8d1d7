"""The fault matrix on 10-turn conversations: every turn answered, every context exact.

Every turn asks the emulator for a digest of the whole context it saw for that
response (``metadata.emulator_reply = "context_digest"``: the parent chain plus
the input, canonicalised so that a delta and a whole-context resend of the same
history give the same digest). A run with a fault under turn 4 must produce the
very digests of the fault-free run: after any recovery the server saw exactly
the context it would have seen anyway.
"""

from __future__ import annotations

import json
import random
import threading
import time
from typing import Any, Dict, List, Optional

import pytest

import openai_ws
from openai_ws import Conversation, ReplayUnsafeError
from openai_ws.emulator import Emulator, EmulatorConfig, context_digest

KEY = "sk-conversation-faults"
DIGEST = {"emulator_reply": "context_digest"}
TURNS = 10
FAULTY_TURN = 4

FAULTS: Dict[str, Dict[str, str]] = {
    "silent close before events": {"emulator_close_code": "1000", "emulator_close_times": "1"},
    "silent close after events": {
        "emulator_close_code": "1000",
        "emulator_close_after": "3",
        "emulator_close_times": "1",
    },
    "drop": {"emulator_close_code": "1006", "emulator_close_times": "1"},
    "1011": {"emulator_close_code": "1011", "emulator_close_times": "1"},
    "429": {"emulator_error": "rate_limit_exceeded", "emulator_error_times": "1"},
    "500": {"emulator_error": "server_error", "emulator_error_times": "1"},
    "previous_response_not_found": {
        "emulator_error": "previous_response_not_found",
        "emulator_error_times": "1",
    },
}
BETWEEN_TURNS = ("drop between turns", "connection age limit", "server down then up")


def question(turn: int) -> str:
    return f"turn {turn}: tell me about number {turn * 7}"


def one_turn(conv: Conversation, mode: str, turn: int, metadata: Dict[str, str]) -> str:
    """Send one turn; a stream that was cut after events is sent again, as a caller would."""
    for _ in range(2):
        try:
            if mode == "send":
                return conv.send(question(turn), metadata=metadata).output_text
            if mode == "run":
                call = json.dumps(
                    {"name": "lookup", "arguments": {"n": turn}, "call_id": f"call_{turn}"}
                )
                result = conv.run(
                    question(turn),
                    tools={"lookup": lambda n: f"fact {n}"},
                    metadata={**metadata, "emulator_function_call": call},
                )
                assert result.finished and result.turns == 2, result
                return result.response.output_text
            text = ""
            for event in conv.stream(question(turn), metadata=metadata):
                if event.type == "response.output_text.delta":
                    text += event.delta  # type: ignore[attr-defined]
            return text
        except ReplayUnsafeError:
            metadata = dict(DIGEST)  # the fault fired once; the history kept the last turn
    raise AssertionError("the turn failed twice")


def chat(
    emu: Emulator, mode: str, store: bool, fault: Optional[str], **session_options: Any
) -> List[str]:
    client = openai_ws.OpenAI(api_key=KEY, base_url=emu.base_url, max_retries=2)
    with client.ws_session(**session_options) as session:
        conv = session.conversation(model="gpt-4o-mini", store=store, instructions="be exact")
        digests = []
        for turn in range(1, TURNS + 1):
            metadata = dict(DIGEST)
            if turn == FAULTY_TURN and fault in FAULTS:
                metadata.update(FAULTS[fault])
            if turn == FAULTY_TURN and fault == "drop between turns":
                emu.disconnect_all(1006)
            if turn == FAULTY_TURN and fault == "connection age limit":
                time.sleep(0.35)  # the emulator's sockets live 0.3 s here
            if turn == FAULTY_TURN and fault == "server down then up":
                emu.disconnect_all(1006)
                emu.config.upgrade_status = 503  # refuses the upgrade: HTTP for a while
            digests.append(one_turn(conv, mode, turn, metadata))
            if turn == FAULTY_TURN and fault == "server down then up":
                emu.config.upgrade_status = None
        # Each turn adds its question and answer; a tool turn also a call and its output.
        assert len(conv.items) == (4 if mode == "run" else 2) * TURNS
        client.close()
        return digests


@pytest.fixture(scope="module")
def expected() -> Dict[Any, List[str]]:
    """The digests of fault-free runs: store=false/true, and tool-calling runs."""
    result: Dict[Any, List[str]] = {}
    for store in (False, True):
        for kind in ("send", "run"):
            with Emulator(api_key=KEY) as emu:
                result[store, kind] = chat(emu, kind, store, None)
        result[store] = result[store, "send"]
    assert all(d.startswith("ctx:") for d in result[False])
    assert len(set(result[False])) == TURNS  # each turn saw a longer context
    assert result[False, "run"] != result[False]  # tool turns put more into the context
    return result


@pytest.mark.parametrize("store", [False, True], ids=["store-false", "store-true"])
@pytest.mark.parametrize("mode", ["send", "stream", "run"])
@pytest.mark.parametrize("fault", [*FAULTS, *BETWEEN_TURNS])
def test_every_turn_sees_the_context_of_the_fault_free_run(
    expected: Dict[Any, List[str]], fault: str, mode: str, store: bool
) -> None:
    """A fault under turn 4 changes no digest: the server saw exactly the same contexts."""
    config = EmulatorConfig(max_connection_age=0.3 if fault == "connection age limit" else 3600)
    with Emulator(api_key=KEY, config=config) as emu:
        got = chat(emu, mode, store, fault, fallback_cooldown=0.05)
    assert got == expected[store, "run" if mode == "run" else "send"]


def expected_digests(questions: List[str], instructions: Optional[str] = None) -> List[str]:
    """The digests a fault-free chain of ``questions`` gets, computed from the emulator's rule."""
    history: List[Dict[str, Any]] = []
    digests = []
    for text in questions:
        history.append({"type": "message", "role": "user", "content": text})
        digest = context_digest(history, instructions)
        digests.append(digest)
        history.append(
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": digest}],
            }
        )
    return digests


def test_expected_digests_match_a_fault_free_run(expected: Dict[Any, List[str]]) -> None:
    """The digest rule, computed here, agrees with what the emulator answered."""
    questions = [question(t) for t in range(1, TURNS + 1)]
    assert expected_digests(questions, "be exact") == expected[False]


def test_sixteen_conversations_with_random_faults_share_one_session() -> None:
    """16 threads, each a 20-turn store=false conversation with random faults: all exact."""
    rng = random.Random(7)
    # previous_response_not_found is left out here: scripted, it would fire on a
    # whole-context request too (which names no parent), where no server sends it.
    faults = [f for f in FAULTS if f != "previous_response_not_found"]
    plans = [
        {turn: rng.choice([None, None, None, *faults]) for turn in range(1, 21)} for _ in range(16)
    ]
    failures: List[str] = []
    answers: Dict[int, List[str]] = {}

    def questions(n: int) -> List[str]:
        return [f"conversation {n}, " + question(t) for t in range(1, 21)]

    with Emulator(api_key=KEY) as emu:
        client = openai_ws.OpenAI(api_key=KEY, base_url=emu.base_url)
        with client.ws_session() as session:

            def talk(n: int) -> None:
                conv = session.conversation(model="gpt-4o-mini", store=False)
                digests = []
                for turn, text in enumerate(questions(n), 1):
                    fault = plans[n][turn]
                    metadata = dict(DIGEST)
                    if fault is not None:
                        metadata.update(FAULTS[fault])
                    try:
                        digests.append(conv.send(text, metadata=metadata).output_text)
                    except Exception as exc:
                        failures.append(f"conversation {n} turn {turn} ({fault}): {exc!r}")
                        return
                answers[n] = digests

            threads = [threading.Thread(target=talk, args=(n,)) for n in range(16)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(120)
        client.close()
    assert not failures, failures
    assert sorted(answers) == list(range(16))
    for n, digests in answers.items():
        assert digests == expected_digests(questions(n)), f"conversation {n}"


@pytest.mark.parametrize("store", [False, True], ids=["store-false", "store-true"])
def test_compaction_over_websocket_keeps_the_context(store: bool) -> None:
    """conv.compact() replaces the history with one compaction item; later digests agree."""
    with Emulator(api_key=KEY) as emu:
        client = openai_ws.OpenAI(api_key=KEY, base_url=emu.base_url)
        with client.ws_session() as session:
            conv = session.conversation(model="gpt-4o-mini", store=store)
            plain = session.conversation(model="gpt-4o-mini", store=store)
            for turn in (1, 2, 3):
                conv.send(question(turn), metadata=DIGEST)
                plain.send(question(turn), metadata=DIGEST)
            compacted = conv.compact()
            assert [getattr(i, "type", None) for i in conv.items] == ["compaction"]
            assert compacted.id == conv.last_response.id  # type: ignore[union-attr]
            after = conv.send(question(4), metadata=DIGEST).output_text
            assert after == plain.send(question(4), metadata=DIGEST).output_text
            # A lost socket: the next turn resends [compaction item, ...] whole.
            emu.disconnect_all(1006)
            again = conv.send(question(5), metadata=DIGEST).output_text
            assert again == plain.send(question(5), metadata=DIGEST).output_text
        client.close()


def test_automatic_compaction_past_a_threshold() -> None:
    """compact_threshold compacts after a turn whose input tokens pass it."""
    with Emulator(api_key=KEY) as emu:
        client = openai_ws.OpenAI(api_key=KEY, base_url=emu.base_url)
        with client.ws_session() as session:
            conv = session.conversation(model="gpt-4o-mini", store=False, compact_threshold=20)
            for turn in range(1, 6):
                conv.send(question(turn) + " with some more words to count", metadata=DIGEST)
            kinds = [getattr(i, "type", None) for i in conv.items]
            assert "compaction" in kinds and len(kinds) < 10, kinds
        client.close()


def test_http_only_conversation_compacts_with_the_compact_endpoint() -> None:
    """client.conversation(): compact() calls POST /responses/compact; context kept."""
    with Emulator(api_key=KEY) as emu:
        client = openai_ws.OpenAI(api_key=KEY, base_url=emu.base_url)
        conv = client.conversation(model="gpt-4o-mini", store=False)
        plain = client.conversation(model="gpt-4o-mini", store=False)
        for turn in (1, 2):
            assert (
                conv.send(question(turn), metadata=DIGEST).output_text
                == plain.send(question(turn), metadata=DIGEST).output_text
            )
        conv.compact()
        assert "compaction" in [getattr(i, "type", None) for i in conv.items]
        after = conv.send(question(3), metadata=DIGEST).output_text
        assert after == plain.send(question(3), metadata=DIGEST).output_text
        client.close()


def test_a_stored_stream_cut_mid_answer_is_read_to_its_end_over_http() -> None:
    """store=true: a stream whose socket drops after events goes on from the stored response."""
    with Emulator(api_key=KEY) as emu:
        client = openai_ws.OpenAI(api_key=KEY, base_url=emu.base_url)
        with client.ws_session() as session:
            words = "one two three four five six seven eight"
            cut = {
                "emulator_close_code": "1006",
                "emulator_close_after": "4",
                "emulator_token_interval": "0.01",
            }
            events = list(session.stream(model="gpt-4o-mini", input=words, metadata=cut))
            text = "".join(e.delta for e in events if e.type == "response.output_text.delta")  # type: ignore[attr-defined]
            assert text == words
            sequences = [e.sequence_number for e in events]  # type: ignore[attr-defined]
            assert sequences == sorted(set(sequences))  # nothing twice, nothing lost
            assert session.stats.resumed_streams == 1
            with pytest.raises(ReplayUnsafeError):  # store=false: nothing to read it from
                list(session.stream(model="gpt-4o-mini", input=words, metadata=cut, store=False))
        client.close()
