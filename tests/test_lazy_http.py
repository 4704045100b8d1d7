"""The HTTP stack (requests, urllib3) is imported on first use, once, even when many
threads reach it at the same moment (their imports are circular: two threads importing
at once could each see the other's half-built modules and fail with ImportError)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_RACE = """
import sys, threading
import openai_ws
from openai_ws._session.engine import Engine
from openai_ws._session.options import SessionOptions

assert "requests" not in sys.modules  # not loaded with the package
client = openai_ws.OpenAI(api_key="k", base_url="http://127.0.0.1:9/v1")
engine = Engine(SessionOptions(url="ws://127.0.0.1:9/v1/responses", headers={}, ssl_context=None,
                               proxy=None, connect_timeout=1, request_timeout=1, event_timeout=None))
errors = []
start = threading.Barrier(8)

def first_use(i):
    start.wait()
    try:
        client._http_transport() if i % 2 else engine.begin_http_call()
    except Exception as exc:
        errors.append(repr(exc))

threads = [threading.Thread(target=first_use, args=(i,)) for i in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
client.close()
print(errors)
sys.exit(1 if errors else 0)
"""


def test_first_http_use_from_many_threads_at_once() -> None:
    """Eight threads making the first HTTP call and token at once: no ImportError (x10)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for _ in range(10):
        result = subprocess.run(
            [sys.executable, "-c", _RACE], capture_output=True, text=True, timeout=60, env=env
        )
        assert result.returncode == 0, result.stdout + result.stderr
