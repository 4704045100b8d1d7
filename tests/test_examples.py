"""Every example runs as written against the bundled emulator, so they never rot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Dict

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def run_example(name: str) -> str:
    env: Dict[str, str] = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def test_every_example_is_tested() -> None:
    """Each script in examples/ has a test below."""
    scripts = {p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_")}
    assert scripts == {
        "websocket_session.py",
        "agent_loop.py",
        "concurrent_threads.py",
        "fallback.py",
    }


def test_websocket_session_example() -> None:
    """The seed's three scenarios print an answer, usage, a follow-up and a stream."""
    out = run_example("websocket_session.py")
    assert "using the bundled emulator" in out
    assert "Answer: What is the capital of France?" in out
    assert "Tokens: " in out
    assert "Follow-up: What about Germany?" in out
    assert "Streaming: Tell me a very short story.\n[completed]" in out
    assert "Session closed." in out


def test_agent_loop_example() -> None:
    """The agent loop calls the tool twice in parallel and then answers."""
    out = run_example("agent_loop.py")
    assert out.count("the model called get_weather") == 2
    assert "Answer after 2 turns:" in out
    assert "sunny" in out


def test_concurrent_example() -> None:
    """Sixteen threads share one socket and map keeps the input order."""
    out = run_example("concurrent_threads.py")
    assert "16 threads x 4 requests" in out
    assert "map kept the order: ['item 0', 'item 1', 'item 2']" in out
    assert "sockets opened: 1" in out


@pytest.mark.parametrize("name", ["fallback.py"])
def test_fallback_example(name: str) -> None:
    """A decimal temperature is answered over HTTP, with the log line that says so."""
    out = run_example(name)
    assert "Answer with temperature=1.2: Say hi." in out
    assert "silent" in out and "goes over HTTP" in out
    assert "Integer/absent temperature, over the socket: And over the socket?" in out
