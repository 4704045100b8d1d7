"""Every example runs as written against the bundled emulator, so they never rot."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Dict, Optional

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


SCRIPTS = [
    "websocket_session.py",
    "agent_loop.py",
    "concurrent_threads.py",
    "fallback.py",
    "conversation.py",
    "steering.py",
    "ray_batch.py",
]


def example_env(**extra: str) -> Dict[str, str]:
    """A child's environment: this checkout importable, no OPENAI_* settings but ``extra``."""
    env: Dict[str, str] = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def run_example(name: str, *args: str, env: Optional[Dict[str, str]] = None) -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=example_env() if env is None else env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def unreachable_url() -> str:
    """An http base URL on 127.0.0.1 where nothing listens (a port bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def test_every_example_is_tested() -> None:
    """Each script in examples/ has a test below."""
    scripts = {p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_")}
    assert scripts == set(SCRIPTS)


@pytest.mark.parametrize("name", SCRIPTS)
def test_emulator_flag_wins_over_an_exported_key(name: str) -> None:
    """With OPENAI_API_KEY exported, `--emulator` still runs the example on the emulator."""
    if name == "ray_batch.py":
        pytest.importorskip("ray")
    # The exported settings point at a closed local port, never at the real API:
    # an example that ignored --emulator would fail to connect.
    env = example_env(OPENAI_API_KEY="sk-exported-key", OPENAI_BASE_URL=unreachable_url())
    out = run_example(name, "--emulator", env=env)
    assert "--emulator: using the bundled emulator at http://127.0.0.1:" in out
    assert "sk-exported-key" not in out


@pytest.mark.parametrize("name", SCRIPTS)
def test_examples_answer_help_without_running(name: str) -> None:
    """`--help` prints the example's usage with the --emulator flag and starts nothing."""
    out = run_example(name, "--help")
    assert out.startswith(f"usage: {name} [-h] [--emulator]")
    assert "bundled emulator" in out
    assert "using the bundled emulator at" not in out


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


def test_conversation_example() -> None:
    """The store=false chat answers every turn through a dropped socket and a silent close."""
    out = run_example("conversation.py")
    assert "[5] you: Thanks, bye." in out
    assert "model: What was my name again?" in out
    assert "10 items in the history" in out
    assert "http_fallbacks=1" in out and "reconnects=0" not in out



def test_steering_example() -> None:
    """A stream steered mid-answer goes on with its successor; a steer from another thread
    changes a submitted request's answer; an older model refuses, its answer untouched."""
    out = run_example("steering.py")
    assert "the server took the steer" in out
    assert "stopped: steered" in out
    assert "answered: 'Focus on the rollback plan.'" in out
    assert "steer: applied (successor resp_" in out
    assert "gpt-4o-mini answered anyway: 'A short answer, please.'" in out


def test_ray_batch_example() -> None:
    """Five prompts and a 3-turn chat answered on two actors; the empty row is an error."""
    pytest.importorskip("ray")
    out = run_example("ray_batch.py")
    assert "[4] completed" in out
    assert "[5] completed" in out and "answered turn by turn: 3 turns" in out
    assert "[6] ValueError: the row has no 'input'" in out
