"""A decimal ``temperature`` over WebSocket, answered over HTTP.

The real service closes the socket with code 1000 and no event when a
``response.create`` carries a non-integer ``temperature`` (see the README's
"Known server quirks"); the emulator reproduces that. The session notices the
silent close, completes the request over HTTP with the very same parameters,
reopens the socket for later requests, and sends requests of that shape
straight to HTTP afterwards. The INFO log lines show each step.

Run: ``python examples/fallback.py [--emulator]``
"""

from __future__ import annotations

import logging

from _common import client_and_model

from openai_ws import ResponseCreateRequest


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    with client_and_model() as (client, model), client.ws_session() as session:
        warm = ResponseCreateRequest(model=model, input="Say hi.", temperature=1.2)
        response = session.send(warm)
        print(f"Answer with temperature={response.temperature}: {response.output_text}")
        again = session.send(ResponseCreateRequest(model=model, input="Again?", temperature=0.7))
        print(f"Second decimal request, straight over HTTP: {again.output_text}")
        plain = session.send(ResponseCreateRequest(model=model, input="And over the socket?"))
        print(f"Integer/absent temperature, over the socket: {plain.output_text}")
        stats = session.stats
        print(f"HTTP fallbacks: {stats.http_fallbacks}, sockets opened: {stats.connects}")


if __name__ == "__main__":
    main()
