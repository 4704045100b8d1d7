"""Throughput of the emulator: small events per second to one plain websocket-client reader.

Starts an ``Emulator`` (ttft 0, token_interval 0), opens a bare
``websocket.create_connection`` (no client library), asks for one long answer
(``emulator_output_tokens``) and times a recv + ``json.loads`` loop until the
terminal event, over ws and over wss (trusting the emulator's CA). It measures
the emulator plus a minimal reader on the same machine; it must never be read
as a figure for the ``openai_ws`` client itself.

Usage::

    python benchmarks/emulator_throughput.py [--tokens 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import ssl
import sys
import time
from typing import Dict, List, Optional

import websocket

from openai_ws.emulator import Emulator, EmulatorConfig


def measure(url: str, api_key: str, tokens: int, ca_file: Optional[str]) -> Dict[str, float]:
    """Run one long response; return events, seconds and events per second."""
    sslopt = {"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": ca_file} if ca_file else None
    ws = websocket.create_connection(
        url, header=[f"Authorization: Bearer {api_key}"], sslopt=sslopt, skip_utf8_validation=True
    )
    try:
        request = {
            "type": "response.create",
            "model": "gpt-emulator",
            "input": "benchmark tokens flow",
            "store": False,
            "metadata": {"emulator_output_tokens": str(tokens)},
        }
        started = time.perf_counter()
        ws.send(json.dumps(request))
        events = 0
        while True:
            event = json.loads(ws.recv())
            events += 1
            if event["type"] in ("response.completed", "response.incomplete", "error"):
                break
        elapsed = time.perf_counter() - started
    finally:
        ws.close()
    return {"events": float(events), "seconds": elapsed, "events_per_s": events / elapsed}


def main(argv: Optional[List[str]] = None) -> int:
    """Print events/s for ws and wss; exit 1 if either is below ``--min-rate``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=20000, help="deltas per response")
    parser.add_argument("--rounds", type=int, default=3, help="responses per transport")
    parser.add_argument("--min-rate", type=float, default=0.0, help="fail below this rate")
    args = parser.parse_args(argv)
    config = EmulatorConfig(ttft=0.0, token_interval=0.0)
    worst = float("inf")
    for tls in (False, True):
        with Emulator(tls=tls, config=config) as emu:
            rates = []
            for _ in range(args.rounds):
                result = measure(emu.ws_url, emu.api_key, args.tokens, emu.ca_file)
                rates.append(result["events_per_s"])
            best = max(rates)
            worst = min(worst, best)
            label = "wss" if tls else "ws "
            print(
                f"{label}: {int(result['events'])} events/response, "
                f"best {best:,.0f} events/s, rounds: "
                + ", ".join(f"{rate:,.0f}" for rate in rates),
                flush=True,
            )
    return 0 if worst >= args.min_rate else 1


if __name__ == "__main__":
    sys.exit(main())
