"""A tool-calling agent loop on one socket with ``Session.run``.

The model asks for ``get_weather`` (twice, in parallel); ``run`` calls the
Python functions, sends their outputs back chained with ``previous_response_id``
and stops when the model answers in text. Offline, the emulator is scripted
through request metadata to make those calls.

Run: ``python examples/agent_loop.py [--emulator]``
"""

from __future__ import annotations

import json

from _common import client_and_model, offline

from openai_ws import ResponseCreateRequest


def get_weather(city: str) -> dict:
    """A stand-in for a real lookup."""
    return {"city": city, "forecast": "sunny", "celsius": 21 if city == "Paris" else 17}


TOOLS = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    }
]


def main() -> None:
    with client_and_model() as (client, model), client.ws_session() as session:
        metadata = None
        if offline():
            calls = [
                {"name": "get_weather", "arguments": {"city": "Paris"}},
                {"name": "get_weather", "arguments": {"city": "Berlin"}},
            ]
            metadata = {"emulator_function_call": json.dumps(calls)}
        request = ResponseCreateRequest(
            model=model,
            input="What is the weather in Paris and in Berlin?",
            tools=TOOLS,
            metadata=metadata,
        )
        result = session.run(request, tools={"get_weather": get_weather}, max_turns=5)
        for turn, response in enumerate(result.responses, 1):
            for call in response.function_calls:
                print(f"turn {turn}: the model called {call.name}({call.arguments})")
        print(f"Answer after {result.turns} turns: {result.response.output_text}")


if __name__ == "__main__":
    main()
