"""Throughput of the emulator: small events per second to one plain websocket-client reader.

Starts an ``Emulator`` (ttft 0, token_interval 0; in this process by default,
so emulator and reader share one GIL, or as a child process), opens a bare
``websocket.create_connection`` (no client library), asks for one long answer
(``emulator_output_tokens``) and times a recv + ``json.loads`` loop until the
terminal event, over ws and over wss (trusting the emulator's CA). It measures
the emulator plus a minimal reader on the same machine; it must never be read
as a figure for the ``openai_ws`` client itself.

Usage::

    python benchmarks/emulator_throughput.py [--tokens 20000] [--rounds 3]
        [--validate-utf8] [--separate-process] [--min-rate 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import ssl
import subprocess
import sys
import time
from typing import Dict, List, Optional

import websocket

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
try:
    from openai_ws.emulator import Emulator, EmulatorConfig
except ImportError:  # run from a checkout that is not installed
    sys.path.insert(0, _ROOT)
    from openai_ws.emulator import Emulator, EmulatorConfig


def measure(
    url: str, api_key: str, tokens: int, ca_file: Optional[str], validate_utf8: bool
) -> Dict[str, float]:
    """Run one long response; return events, seconds and events per second."""
    sslopt = {"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": ca_file} if ca_file else None
    # websocket-client checks UTF-8 of text frames with a pure-Python validator
    # unless told not to; that check alone costs more than the emulator's whole
    # per-event work. Skipping it is safe: recv() still decodes the payload with
    # str.decode("utf-8"), which rejects invalid UTF-8.
    ws = websocket.create_connection(
        url,
        header=[f"Authorization: Bearer {api_key}"],
        sslopt=sslopt,
        skip_utf8_validation=not validate_utf8,
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


class _Target:
    """Where the emulator runs: a thread of this process, or a ``python -m`` child."""

    def __init__(self, tls: bool, separate_process: bool) -> None:
        self._emulator: Optional[Emulator] = None
        self._process: Optional[subprocess.Popen[str]] = None
        self.api_key = "sk-emulator"
        self.ca_file: Optional[str] = None
        if not separate_process:
            self._emulator = Emulator(tls=tls, config=EmulatorConfig()).start()
            self.ws_url = self._emulator.ws_url
            self.ca_file = self._emulator.ca_file
            return
        command = [sys.executable, "-m", "openai_ws.emulator", "--port", "0"]
        path = os.pathsep.join(p for p in (_ROOT, os.environ.get("PYTHONPATH")) if p)
        self._process = subprocess.Popen(
            command + (["--tls"] if tls else []),
            stdout=subprocess.PIPE,
            text=True,
            env=dict(os.environ, PYTHONPATH=path),
        )
        assert self._process.stdout is not None
        base_url = self._process.stdout.readline().strip()
        self.ws_url = base_url.replace("http", "ws", 1) + "/responses"
        while tls and self.ca_file is None:
            line = self._process.stdout.readline()
            if "SSL_CERT_FILE=" in line:
                self.ca_file = line.split("SSL_CERT_FILE=")[1].split()[0]
            elif not line:
                raise RuntimeError("the emulator process did not print its CA file")

    def close(self) -> None:
        if self._emulator is not None:
            self._emulator.stop()
        if self._process is not None:
            self._process.send_signal(signal.SIGINT)
            self._process.communicate(timeout=10)


def main(argv: Optional[List[str]] = None) -> int:
    """Print events/s for ws and wss; exit 1 if either is below ``--min-rate``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=20000, help="deltas per response")
    parser.add_argument("--rounds", type=int, default=3, help="responses per transport")
    parser.add_argument("--min-rate", type=float, default=0.0, help="fail below this rate")
    parser.add_argument(
        "--validate-utf8",
        action="store_true",
        help="let websocket-client run its pure-Python UTF-8 check on every frame",
    )
    parser.add_argument(
        "--separate-process",
        action="store_true",
        help="run the emulator as `python -m openai_ws.emulator` (no shared GIL)",
    )
    args = parser.parse_args(argv)
    where = "separate process" if args.separate_process else "same process (shared GIL)"
    print(f"emulator in {where}; {args.tokens} tokens per response", flush=True)
    worst = float("inf")
    for tls in (False, True):
        target = _Target(tls, args.separate_process)
        try:
            rates = []
            for _ in range(args.rounds):
                result = measure(
                    target.ws_url, target.api_key, args.tokens, target.ca_file, args.validate_utf8
                )
                rates.append(result["events_per_s"])
        finally:
            target.close()
        best = max(rates)
        worst = min(worst, best)
        label = "wss" if tls else "ws "
        print(
            f"{label}: {int(result['events'])} events/response, "
            f"best {best:,.0f} events/s, rounds: " + ", ".join(f"{rate:,.0f}" for rate in rates),
            flush=True,
        )
    return 0 if worst >= args.min_rate else 1


if __name__ == "__main__":
    sys.exit(main())
