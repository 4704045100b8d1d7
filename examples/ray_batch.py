"""Answer a Ray Dataset of prompts and chats on a pool of actors, one session per actor.

Each Ray actor makes one ``OpenAIResponses`` (so one session, its own socket
pool) and answers batch after batch on it: the single prompts of a batch run
at once on the session's lanes, and a row of ``turns`` runs whole, turn by
turn, as one conversation on its actor's session. Every row gets its answer,
usage and any error as columns; a row that fails does not fail the job.

Run: ``python examples/ray_batch.py [--emulator]`` (needs ``pip install
"openai-ws[ray]"``). It starts a local Ray cluster (or joins the one
``RAY_ADDRESS`` names). Against the real API the workers read
``OPENAI_API_KEY``/``OPENAI_BASE_URL`` from their own environment, which a
local cluster inherits from this process; on a real cluster, put the key in the
nodes' environment or in a ``runtime_env``'s ``env_vars``, never in the rows.
Offline (or with ``--emulator``) the bundled emulator answers, and its URL and
throw-away key are passed to the actors as constructor arguments.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Dict, Iterator, List, Tuple

from _common import offline, options


@contextlib.contextmanager
def recipe_settings() -> Iterator[Tuple[Dict[str, Any], str]]:
    """Yield the recipe's connection settings and the model; runs the emulator when offline."""
    if not offline():
        # Nothing secret here: each worker takes the key from its own environment.
        yield {}, os.environ.get("OPENAI_MODEL", "gpt-4o-mini")
        return
    from openai_ws.emulator import Emulator

    why = "--emulator" if options().emulator else "OPENAI_API_KEY is not set"
    with Emulator() as emulator:
        print(f"{why}: using the bundled emulator at {emulator.base_url}")
        yield {"base_url": emulator.base_url, "api_key": emulator.api_key}, "gpt-4o-mini"


def main() -> None:
    options()  # --help answers before Ray starts
    import ray

    from openai_ws.integrations.ray import OpenAIResponses

    rows: List[Dict[str, Any]] = [
        {"id": i, "input": f"In one line: what is {topic}?", "turns": None}
        for i, topic in enumerate(["a socket", "a lane", "a batch", "an actor", "a token"])
    ]
    chat = ["My name is Ada.", "What is Ray?", "What was my name?"]
    rows.append({"id": 5, "input": None, "turns": chat})  # one conversation, kept together
    rows.append({"id": 6, "input": None, "turns": None})  # nothing to send: an error row
    with recipe_settings() as (connection, model):
        ray.init(include_dashboard=False, logging_level="warning")
        try:
            context = ray.data.DataContext.get_current()
            context.execution_options.preserve_order = True  # rows come back in input order
            context.enable_progress_bars = False
            answered = ray.data.from_items(rows).map_batches(
                OpenAIResponses,
                fn_constructor_kwargs={
                    **connection,
                    "model": model,
                    "request_fields": {"max_output_tokens": 200},
                    "max_in_flight": 16,
                },
                compute=ray.data.ActorPoolStrategy(size=2),  # 2 actors = 2 sessions
                batch_size=4,
            )
            for row in answered.take_all():
                if row["error_type"]:
                    print(f"[{row['id']}] {row['error_type']}: {row['error_message']}")
                    continue
                tokens = row["total_tokens"]
                print(f"[{row['id']}] {row['status']} ({tokens} tokens): {row['output_text']}")
                if len(row["turn_texts"]) > 1:
                    print(f"    answered turn by turn: {len(row['turn_texts'])} turns")
        finally:
            ray.shutdown()


if __name__ == "__main__":
    main()
