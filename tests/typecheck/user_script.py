"""A user's script that `.ci/run` type-checks with ``mypy --strict`` against the installed package.

CI runs it from outside the checkout (``cd /tmp && mypy --strict .../user_script.py``)
so that mypy can only find ``openai_ws`` the way a user's mypy does: through
the installed package (its ``py.typed`` marker and the path the editable
install put on ``sys.path``). It is not a test module and is never run; it
only has to type-check.
"""

from __future__ import annotations

import openai_ws
from openai_ws import ResponseCompleted, ResponseCreateRequest, ResponseOutputTextDelta


def ask(client: openai_ws.OpenAI, question: str) -> str:
    """One turn over the WebSocket, then a streamed follow-up; returns all the text."""
    parts: list[str] = []
    with client.ws_session() as session:
        request = ResponseCreateRequest(model="gpt-4o-mini", input=question)
        response = session.send(request)
        parts.append(response.output_text)
        if response.usage is not None:
            tokens: int = response.usage.input_tokens
            parts.append(f"({tokens} tokens in)")
        follow_up = ResponseCreateRequest(
            model="gpt-4o-mini", input="And then?", previous_response_id=response.id
        )
        for event in session.stream(follow_up):
            if isinstance(event, ResponseOutputTextDelta):
                parts.append(event.delta)
            elif isinstance(event, ResponseCompleted):
                parts.append(event.response.status or "")
    return " ".join(parts)


def main() -> int:
    """Ask once; a refused key is an ``AuthenticationError``, as in the official SDK."""
    client = openai_ws.OpenAI(api_key="sk-test", base_url="http://127.0.0.1:9/v1")
    try:
        print(ask(client, "Hello"))
    except openai_ws.AuthenticationError as exc:
        print(f"bad key: {exc.status}")
        return 1
    except openai_ws.OpenAIWSError as exc:
        print(f"failed: {exc}")
        return 1
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
