"""Steering a response while it runs: a correction mid-answer, from another thread.

A newer model (the GPT-6 family; the emulator steers every model whose name
starts with ``gpt-6``) accepts more input while a response runs. This example:

1. streams a long answer and, after its first words, steers it from the loop:
   the response stops early (``incomplete``, reason ``steered``) and a successor
   response carrying the correction goes on in the same stream;
2. submits a request and steers it from a second thread while the main thread
   waits for the answer, which is the successor's;
3. steers an older model, which refuses with ``SteeringNotSupportedError``
   while its own answer arrives untouched.

Run: ``python examples/steering.py [--emulator]`` (set ``OPENAI_MODEL`` to a
steerable model to run it against the real API).
"""

from __future__ import annotations

import os
import threading

from _common import client_and_model, offline

from openai_ws import SteerError


def main() -> None:
    with client_and_model() as (client, model), client.ws_session() as session:
        steerable = "gpt-6" if offline() else os.environ.get("OPENAI_MODEL", model)

        # 1. Steer a stream from its own loop.
        stream = session.stream(
            model=steerable, input="Describe, step by step, how to migrate a database."
        )
        steer = None
        for event in stream:
            if event.type == "response.created":
                print(f"response {event.response.id} started")
            elif event.type == "response.output_text.delta" and steer is None:
                steer = stream.steer("Focus on the rollback plan.")
            elif event.type == "response.steer.accepted":
                print("the server took the steer")
            elif event.type == "response.incomplete":
                reason = event.response.incomplete_details
                print(f"response {event.response.id} stopped: {reason.reason if reason else '?'}")
            elif event.type == "response.completed":
                print(f"response {event.response.id} answered: {event.response.output_text!r}")
        assert steer is not None
        print(f"steer: {steer.result(timeout=10)} (successor {steer.successor_id})")

        # 2. Steer a request another thread waits for.
        pending = session.submit(model=steerable, input="Write a long status report for the team.")

        def correct() -> None:
            try:
                print(f"steer from a thread: {pending.steer('Three bullet points only.').result(10)}")
            except SteerError as exc:  # e.g. the answer was complete before the steer
                print(f"steer from a thread: {type(exc).__name__}: {exc}")

        steering = threading.Thread(target=correct)
        steering.start()
        answer = pending.result()
        steering.join()
        print(f"submitted request answered by {answer.id}: {answer.output_text!r}")

        # 3. A model that cannot be steered says so (or the answer was already complete:
        # SteerResponseCompletedError); its answer is untouched either way.
        older = session.submit(model=model, input="A short answer, please.")
        try:
            older.steer("Longer.").result(timeout=10)
        except SteerError as exc:
            print(f"{type(exc).__name__}: {exc}")
        print(f"{model} answered anyway: {older.result().output_text!r}")


if __name__ == "__main__":
    main()
