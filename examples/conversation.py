"""A chat that survives a dropped socket and a silent close, with store=False.

A ``Conversation`` keeps the history in the client. Each turn continues the
previous answer with ``previous_response_id`` while the socket that made it is
open; when the socket is gone (a drop between turns, a silent close that moves a
turn to HTTP), the turn carries the whole history instead, so nothing is lost
even though ``store=False`` keeps nothing on the server.

Run: ``python examples/conversation.py [--emulator]``. Offline (or with
``--emulator``) the bundled emulator is told, through request ``metadata``, to
drop the socket under turn 3 and to close it silently under turn 4; against the
real API no fault is scripted.
"""

from __future__ import annotations

from typing import Dict, Optional

from _common import client_and_model, offline


def main() -> None:
    scripted: Dict[int, Dict[str, str]] = {}
    if offline():
        scripted = {
            3: {"emulator_close_code": "1006", "emulator_close_times": "1"},
            4: {"emulator_close_code": "1000", "emulator_close_times": "1"},
        }
    questions = [
        "My name is Ada. Please remember it.",
        "What is a socket?",
        "And a lane?",
        "What was my name again?",
        "Thanks, bye.",
    ]
    with client_and_model() as (client, model), client.ws_session() as session:
        conv = session.conversation(model=model, store=False, max_output_tokens=200)
        for turn, question in enumerate(questions, 1):
            metadata: Optional[Dict[str, str]] = scripted.get(turn)
            answer = conv.send(question, metadata=metadata)
            note = "  (a fault was scripted under this turn)" if metadata else ""
            print(f"[{turn}] you: {question}{note}")
            print(f"    model: {answer.output_text}")
        stats = session.stats
        usage = conv.usage
    print(
        f"{len(conv.items)} items in the history; {usage.total_tokens} tokens over "
        f"{usage.responses} responses; reconnects={stats.reconnects}, "
        f"replays={stats.replays}, http_fallbacks={stats.http_fallbacks}"
    )


if __name__ == "__main__":
    main()
