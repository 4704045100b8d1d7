"""Many threads sharing one session: each request runs on its own lane.

Sixteen worker threads each ask four questions on the same socket; the reader
thread routes every event to the request that owns it. ``Session.map`` does the
same for a list of requests and keeps the input order.

Run: ``python examples/concurrent_threads.py [--emulator]``
(It is not called ``concurrent.py``: that name would shadow the standard
library's ``concurrent`` package for any script in this folder.)
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from _common import client_and_model

from openai_ws import ResponseCreateRequest


def main() -> None:
    with client_and_model() as (client, model), client.ws_session() as session:

        def worker(n: int) -> str:
            answers = []
            for i in range(4):
                request = ResponseCreateRequest(model=model, input=f"worker {n} question {i}")
                answers.append(session.send(request).output_text)
            return answers[-1]

        started = time.perf_counter()
        with ThreadPoolExecutor(16) as pool:
            last_answers = list(pool.map(worker, range(16)))
        elapsed = time.perf_counter() - started
        print(f"16 threads x 4 requests in {elapsed:.2f}s on one socket")
        print(f"e.g. {last_answers[0]!r} ... {last_answers[-1]!r}")

        requests = [ResponseCreateRequest(model=model, input=f"item {i}") for i in range(10)]
        in_order = [response.output_text for response in session.map(requests)]
        print(f"map kept the order: {in_order[:3]} ...")
        stats = session.stats
        print(f"lanes used: {stats.lanes_used}, sockets opened: {stats.connects}")


if __name__ == "__main__":
    main()
