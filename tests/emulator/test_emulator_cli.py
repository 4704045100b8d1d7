"""The emulator's command line (``python -m openai_ws.emulator``) and its stable CA path.

Each CLI test runs the module as a real subprocess with this checkout on
``PYTHONPATH``; servers bind 127.0.0.1 port 0 (or a port a test holds busy) and
every child is killed and reaped by the end of its test.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, List

import pytest
import requests

from openai_ws.emulator import Emulator

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROG = "python -m openai_ws.emulator"


def _env() -> Dict[str, str]:
    return dict(os.environ, PYTHONPATH=_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the emulator CLI to completion (for commands that exit by themselves)."""
    return subprocess.run(
        [sys.executable, "-m", "openai_ws.emulator", *args],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=30,
        check=False,
    )


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port on 127.0.0.1 held by a listening socket for the whole test."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield sock.getsockname()[1]


@pytest.fixture
def serve() -> Iterator[List[subprocess.Popen[str]]]:
    """Started emulator children; each is stopped (SIGINT, then kill) and reaped at the end."""
    children: List[subprocess.Popen[str]] = []
    yield children
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGINT)
            try:
                child.communicate(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover - a bug
                child.kill()
                child.communicate()


def start(children: List[subprocess.Popen[str]], *args: str) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-m", "openai_ws.emulator", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    children.append(child)
    return child


def read_banner(child: subprocess.Popen[str]) -> List[str]:
    """The lines the emulator prints before it serves (up to "Press Ctrl-C")."""
    assert child.stdout is not None
    lines = []
    while True:
        line = child.stdout.readline()
        assert line, f"the emulator exited early: {lines}"
        lines.append(line.rstrip("\n"))
        if line.startswith("Press Ctrl-C"):
            return lines


# -- item: one line, exit 2 ------------------------------------------------------------


def test_busy_port_is_one_line_and_exit_2(busy_port: int) -> None:
    """A port already in use: one error line naming the address, no traceback, exit 2."""
    result = run("--port", str(busy_port))
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{PROG}: error: ")
    assert f"127.0.0.1:{busy_port}" in lines[0]
    assert "in use" in lines[0]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--port", "99999"], "--port: must be a port number from 0 to 65535, got 99999"),
        (["--port", "-1"], "--port: must be a port number from 0 to 65535, got -1"),
        (["--port", "http"], "--port: not an integer: 'http'"),
        (["--ttft", "soon"], "--ttft: not a number: 'soon'"),
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--cert-dir", "/tmp"], "--cert-dir needs --tls"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(args: List[str], words: str) -> None:
    """Out-of-range ports, bad numbers and unknown flags: one `error:` line, exit 2."""
    result = run(*args)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{PROG}: error: ")
    assert words in lines[0]
    assert "Traceback" not in result.stderr


def test_help_says_the_key_first_and_shows_defaults() -> None:
    """--help names the accepted API key in its first lines and shows each default."""
    result = run("--help")
    assert result.returncode == 0
    head = "\n".join(result.stdout.splitlines()[:6])
    assert "sk-emulator" in head
    assert "--no-auth" in head
    text = " ".join(result.stdout.split())
    for default in (
        "interface to bind (default: 127.0.0.1)",
        "(default: 0: any free port)",
        "(default: 3600)",
        "(default: support)",
        "(default: 16777216)",
    ):
        assert default in text


def test_banner_says_which_key_it_accepts(serve: List[subprocess.Popen[str]]) -> None:
    """The banner names the default key, never a key given with --api-key."""
    default = read_banner(start(serve, "--port", "0"))
    assert default[0].startswith("http://127.0.0.1:")
    assert any("API key: sk-emulator" in line for line in default)
    custom = read_banner(start(serve, "--port", "0", "--api-key", "sk-my-own-secret"))
    assert not any("sk-my-own-secret" in line for line in custom)
    assert any(line.startswith("API key: the one given with --api-key") for line in custom)
    anyone = read_banner(start(serve, "--port", "0", "--no-auth"))
    assert any(line.startswith("API key: any") for line in anyone)


# -- stable CA path ------------------------------------------------------------------


def test_cert_dir_keeps_the_ca_file_at_one_path(tmp_path: Path) -> None:
    """Emulator(cert_dir=...) writes its CA to DIR/emulator-ca.pem, restart after restart."""
    cert_dir = tmp_path / "certs"  # created on demand
    first = Emulator(tls=True, cert_dir=str(cert_dir))
    with first:
        assert first.ca_file == str(cert_dir / "emulator-ca.pem")
        context = ssl.create_default_context(cafile=first.ca_file)
        assert context.get_ca_certs()
    second = Emulator(tls=True, cert_dir=str(cert_dir))
    with second:
        assert second.ca_file == first.ca_file
        # The file now holds the second emulator's CA: a client reading the
        # exported path trusts the running server.
        response = requests.post(
            second.base_url + "/responses",
            json={"model": "m", "input": "same path"},
            headers={"Authorization": f"Bearer {second.api_key}"},
            verify=second.ca_file,
            timeout=5,
        )
        assert response.status_code == 200
    del first, second
    assert (cert_dir / "emulator-ca.pem").exists()  # kept after the emulators are gone
    assert list(cert_dir.iterdir()) == [cert_dir / "emulator-ca.pem"]  # no key on disk


def test_cert_dir_needs_tls(tmp_path: Path) -> None:
    """cert_dir without tls=True is a ValueError, like client_auth."""
    with pytest.raises(ValueError, match="cert_dir needs tls=True"):
        Emulator(cert_dir=str(tmp_path))


def test_cli_cert_dir_prints_the_stable_path(
    tmp_path: Path, serve: List[subprocess.Popen[str]]
) -> None:
    """`--tls --cert-dir DIR` prints DIR/emulator-ca.pem as the CA to trust, and it works."""
    banner = read_banner(start(serve, "--tls", "--cert-dir", str(tmp_path)))
    ca_file = str(tmp_path / "emulator-ca.pem")
    assert any(f"SSL_CERT_FILE={ca_file}" in line for line in banner)
    response = requests.post(
        banner[0] + "/responses",
        json={"model": "m", "input": "cli cert dir"},
        headers={"Authorization": "Bearer sk-emulator"},
        verify=ca_file,
        timeout=5,
    )
    assert response.status_code == 200


def test_decimal_rule_and_sse_error_shape_flags_reach_the_config() -> None:
    """--decimal-rule and --sse-error-shape set the matching EmulatorConfig fields."""
    from openai_ws.emulator.__main__ import build_parser, config_from_args

    args = build_parser().parse_args(
        ["--decimal-rule", "any_fraction", "--sse-error-shape", "nested"]
    )
    config = config_from_args(args)
    assert config.decimal_sampling_rule == "any_fraction"
    assert config.sse_error_shape == "nested"
    defaults = config_from_args(build_parser().parse_args([]))
    assert (defaults.decimal_sampling_rule, defaults.sse_error_shape) == ("non_integer", "flat")


def test_steering_and_cost_model_flags_reach_the_config() -> None:
    """The steering and cost-model flags set their EmulatorConfig fields; the defaults
    are the config's own."""
    from openai_ws.emulator import EmulatorConfig
    from openai_ws.emulator.__main__ import build_parser, config_from_args

    args = build_parser().parse_args(
        [
            "--steering-models", "gpt-6, o9",
            "--max-pending-steers", "2",
            "--steering-token-interval", "0.1",
            "--history-rebuild-base", "0.3",
            "--history-rebuild-per-item", "0.01",
        ]
    )  # fmt: skip
    config = config_from_args(args)
    assert config.steering_models == ("gpt-6", "o9")
    assert (config.max_pending_steers, config.steering_token_interval) == (2, 0.1)
    assert (config.history_rebuild_base, config.history_rebuild_per_item) == (0.3, 0.01)
    defaults = config_from_args(build_parser().parse_args([]))
    plain = EmulatorConfig()
    assert defaults.steering_models == plain.steering_models
    assert defaults.max_pending_steers == plain.max_pending_steers
    assert defaults.steering_token_interval == plain.steering_token_interval
    assert (defaults.history_rebuild_base, defaults.history_rebuild_per_item) == (0.0, 0.0)
    assert config_from_args(build_parser().parse_args(["--steering-models", ""])).steering_models == ()
