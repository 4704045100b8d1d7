"""Soak: many threads share one session while some requests script faults of their own.

Each of ``--threads`` threads sends ``--requests`` requests, alternating
``send()`` and ``stream()``, on one session to the bundled emulator. A share
``--fault-rate`` of them carries a fault of its own in its ``metadata``: the
socket closes (1011, 1006 or a silent 1000) before or after some events, or
the server answers a retryable error once. Every other request shares those
sockets and must be answered anyway.

Printed (and the exit status is 1 unless all of the first four are 0):

* ``wrong``: an answer whose text is not the request's own;
* ``duplicates``: a stream that delivered more than one response, or text twice;
* ``untyped``: an exception that is not an ``openai_ws.OpenAIWSError``;
* ``unfaulted_failed``: a request without a fault of its own that failed;
* ``unfaulted_stream_cut``: with ``--no-store`` only, a ``stream()`` that had
  delivered events when another request's fault closed the shared socket
  (``ReplayUnsafeError``: replaying it could answer it twice; a stored response
  is read to its end over HTTP instead);
* the outcomes of the faulted requests, by type.

Run: ``python benchmarks/soak.py`` (defaults: 16 threads x 300 requests, 5 %
faults, seed 1).
"""

from __future__ import annotations

import argparse
import collections
import random
import sys
import threading
import time
from typing import Any, Counter, Dict, List, Optional, Tuple

from _common import REPO  # noqa: F401  (puts the repository on sys.path)

import openai_ws
from openai_ws.emulator import Emulator

KEY = "sk-soak"

FAULTS: List[Dict[str, str]] = [
    {"emulator_close_code": "1011", "emulator_close_times": "1"},
    {"emulator_close_code": "1006", "emulator_close_after": "3", "emulator_close_times": "1"},
    {"emulator_close_code": "1000", "emulator_close_times": "1"},
    {"emulator_close_code": "1000", "emulator_close_after": "4", "emulator_close_times": "1"},
    {"emulator_error": "rate_limit_exceeded", "emulator_error_times": "1"},
    {"emulator_error": "server_error", "emulator_error_times": "1"},
]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--requests", type=int, default=300, help="requests per thread")
    parser.add_argument("--fault-rate", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--token-interval", default="0.0005", help="seconds between deltas")
    parser.add_argument(
        "--no-store",
        action="store_true",
        help="send store=false: a stream cut mid-answer then has no stored response to "
        "be read from, and raises ReplayUnsafeError (counted as unfaulted_stream_cut)",
    )
    args = parser.parse_args(argv)

    counts: Counter[str] = collections.Counter()
    faulted: Counter[str] = collections.Counter()
    lock = threading.Lock()
    started = time.monotonic()

    with Emulator(api_key=KEY) as emu:
        client = openai_ws.OpenAI(api_key=KEY, base_url=emu.base_url, max_retries=2)
        with client.ws_session() as session:

            def worker(n: int) -> None:
                rng = random.Random(args.seed * 1000 + n)
                for i in range(args.requests):
                    text = f"t{n} r{i} " + " ".join(f"w{rng.randrange(1000)}" for _ in range(5))
                    metadata = {"emulator_token_interval": args.token_interval}
                    fault = rng.random() < args.fault_rate
                    if fault:
                        metadata.update(rng.choice(FAULTS))
                    mode = "send" if i % 2 == 0 else "stream"
                    kind, detail = _one(session, mode, text, metadata, not args.no_store)
                    with lock:
                        counts["requests"] += 1
                        if fault:
                            faulted[f"{mode}:{kind}"] += 1
                            if kind == "untyped":
                                faulted[f"  {mode} untyped: {detail[:120]}"] += 1
                        elif kind == "ok":
                            counts["answered"] += 1
                        elif kind == "cut":
                            counts["unfaulted_stream_cut"] += 1
                        else:
                            counts[kind] += 1
                            if kind == "failed":
                                counts["unfaulted_failed"] += 1
                            if kind in ("failed", "untyped", "wrong", "duplicates"):
                                faulted[f"unfaulted {mode} {kind}: {detail[:120]}"] += 1

            threads = [threading.Thread(target=worker, args=(n,)) for n in range(args.threads)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            stats = session.stats

    elapsed = time.monotonic() - started
    print(f"soak: {args.threads} threads x {args.requests} requests, "
          f"{args.fault_rate:.0%} faults, seed {args.seed}, {elapsed:.1f} s")
    for name in ("requests", "answered", "wrong", "duplicates", "untyped", "unfaulted_failed",
                 "unfaulted_stream_cut"):
        print(f"  {name:22} {counts[name]}")
    print("  faulted requests / other outcomes:")
    for name, n in sorted(faulted.items()):
        print(f"    {name:40} {n}")
    print(f"  session: connects={stats.connects} replays={stats.replays} "
          f"http_fallbacks={stats.http_fallbacks} retries={stats.retries}")
    bad = counts["wrong"] + counts["duplicates"] + counts["untyped"] + counts["unfaulted_failed"]
    return 1 if bad else 0


def _one(
    session: Any, mode: str, text: str, metadata: Dict[str, str], store: bool
) -> Tuple[str, str]:
    """Run one request; ``(kind, detail)`` with kind ok/wrong/duplicates/untyped/failed/cut."""
    fields = {"model": "gpt-soak", "input": text, "metadata": metadata, "store": store}
    try:
        if mode == "send":
            got = session.send(**fields).output_text
            return ("ok", "") if got == text else ("wrong", got)
        ids = set()
        parts: List[str] = []
        for event in session.stream(**fields):
            response = getattr(event, "response", None)
            if response is not None:
                ids.add(response.id)
            delta = getattr(event, "delta", None)
            if isinstance(delta, str) and event.type == "response.output_text.delta":
                parts.append(delta)
        got = "".join(parts)
        if len(ids) > 1 or (got != text and text in got):
            return "duplicates", got
        return ("ok", "") if got == text else ("wrong", got)
    except openai_ws.ReplayUnsafeError:
        return "cut", ""
    except openai_ws.OpenAIWSError as exc:
        return "failed", type(exc).__name__
    except Exception as exc:
        return "untyped", repr(exc)


if __name__ == "__main__":
    sys.exit(main())
