"""The three scenarios of openai-oxide's WebSocket example, in Python.

1. a simple ``send`` printing the answer and the token usage;
2. a multi-turn follow-up through ``previous_response_id`` on the same socket;
3. a stream printing text deltas as they arrive, then ``[completed]``;
then ``close()`` (done by the ``with`` block).

Run: ``python examples/websocket_session.py [--emulator]`` (offline, or with
``--emulator``, it uses the bundled emulator, which echoes the question back
word by word). The file is not called
``websocket.py``: that name would shadow the ``websocket`` package (from
websocket-client, which openai_ws uses) for every script in this folder.
"""

from __future__ import annotations

from _common import client_and_model

from openai_ws import ResponseCompleted, ResponseCreateRequest, ResponseOutputTextDelta


def main() -> None:
    with client_and_model() as (client, model), client.ws_session() as session:
        # 1. One request, one whole response.
        request = ResponseCreateRequest(
            model=model, input="What is the capital of France?", max_output_tokens=256
        )
        response = session.send(request)
        print(f"Answer: {response.output_text}")
        if response.usage is not None:
            print(f"Tokens: {response.usage.input_tokens} in, {response.usage.output_tokens} out")

        # 2. A follow-up that the server chains from the cached previous response.
        follow_up = ResponseCreateRequest(
            model=model, input="What about Germany?", previous_response_id=response.id
        )
        print(f"Follow-up: {session.send(follow_up).output_text}")

        # 3. Stream the answer as it is generated.
        print("Streaming: ", end="", flush=True)
        story = ResponseCreateRequest(model=model, input="Tell me a very short story.")
        for event in session.stream(story):
            if isinstance(event, ResponseOutputTextDelta):
                print(event.delta, end="", flush=True)
            elif isinstance(event, ResponseCompleted):
                print("\n[completed]")
    print("Session closed.")


if __name__ == "__main__":
    main()
