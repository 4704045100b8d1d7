"""The Emulator object: lifecycle, restart on the same port, stats, TLS (trustme), the CLI."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time

import pytest
import requests
import websocket
from emutools import MODEL, ask, connect, frames_until_close, http, text_of

from openai_ws.emulator import Emulator, EmulatorConfig

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_start_and_stop_are_idempotent_and_leave_no_thread() -> None:
    """start() twice and stop() twice are harmless; the loop thread is gone after stop."""
    emu = Emulator()
    emu.stop()
    emu.start()
    emu.start()
    assert emu.running and emu.port > 0
    assert any(t.name == "openai-ws-emulator" for t in threading.enumerate())
    emu.stop()
    emu.stop()
    assert not emu.running
    assert not any(t.name == "openai-ws-emulator" for t in threading.enumerate())


def test_urls_and_repr_do_not_leak_the_key() -> None:
    """base_url/ws_url follow the port; repr never shows the API key."""
    with Emulator(api_key="sk-secret-value-123456") as emu:
        assert emu.base_url == f"http://127.0.0.1:{emu.port}/v1"
        assert emu.ws_url == f"ws://127.0.0.1:{emu.port}/v1/responses"
        assert emu.ca_file is None
        assert emu.api_key == "sk-secret-value-123456"
        assert "sk-secret" not in repr(emu)


def test_stop_closes_open_sockets_with_1001_and_restart_reuses_the_port(emulator: Emulator) -> None:
    """stop() sends 1001 to open sockets; connecting fails while down and works after start()."""
    ws = connect(emulator)
    try:
        emulator.stop()
        frames, code = frames_until_close(ws)
    finally:
        ws.close()
    assert (frames, code) == ([], 1001)
    with pytest.raises((ConnectionError, OSError)):
        connect(emulator, timeout=1)
    port = emulator.port
    emulator.start()
    assert emulator.port == port
    ws = connect(emulator)
    try:
        assert text_of(ask(ws, input="back again")) == "back again"
    finally:
        ws.close()


def test_stop_during_a_slow_stream_is_prompt(emulator: Emulator) -> None:
    """stop() while a response and an SSE stream are mid-way finishes quickly and cleanly."""
    emulator.config.token_interval = 0.5
    ws = connect(emulator)
    result = {}

    def slow_http() -> None:
        try:
            result["status"] = _post_stream(emulator)
        except requests.RequestException as exc:
            result["error"] = repr(exc)

    worker = threading.Thread(target=slow_http)
    try:
        ask_nowait = {"type": "response.create", "model": MODEL, "input": "a b c d e f"}
        ws.send(json.dumps(ask_nowait))
        worker.start()
        ws.recv()
        time.sleep(0.1)
        started = time.monotonic()
        emulator.stop()
        assert time.monotonic() - started < 2.0
    finally:
        worker.join(5)
        ws.close()
    assert result


def _post_stream(emu: Emulator) -> int:
    with http(emu).post(
        emu.base_url + "/responses",
        json={"model": MODEL, "input": "slow one two three", "stream": True},
        stream=True,
        timeout=5,
    ) as response:
        for _ in response.iter_content(chunk_size=None):
            pass
        return response.status_code


def test_port_can_be_chosen(emulator: Emulator) -> None:
    """Passing port=N binds that port (here: the port another emulator just released)."""
    port = emulator.port
    emulator.stop()
    with Emulator(port=port) as other:
        assert other.port == port
        assert http(other).post(
            other.base_url + "/responses", json={"model": "m"}, timeout=5
        ).status_code in (
            200,
            401,
        )


def test_disconnect_all_closes_every_socket(emulator: Emulator) -> None:
    """disconnect_all(code) closes every open WebSocket with that code."""
    first, second = connect(emulator), connect(emulator)
    try:
        assert emulator.disconnect_all(1012) == 2
        assert frames_until_close(first)[1] == 1012
        assert frames_until_close(second)[1] == 1012
    finally:
        first.close()
        second.close()


def test_stats_count_connections_creates_and_responses(emulator: Emulator) -> None:
    """stats counts upgrades, creates per transport, terminal events and errors."""
    ws = connect(emulator)
    try:
        ask(ws, input="a")
        ask(ws, input="b c", max_output_tokens=1)
        ask(ws, input="c", metadata={"emulator_fail": "server_error"})
        ask(ws, input="d", temperature="bad")
    finally:
        ws.close()
    http(emulator).post(
        emulator.base_url + "/responses", json={"model": "m", "input": "e"}, timeout=5
    )
    stats = emulator.stats
    assert stats.ws_connections == 1
    assert stats.ws_creates == 4
    assert stats.http_creates == 1
    assert stats.responses_completed == 2  # one over WS, one over HTTP
    assert stats.responses_incomplete == 1
    assert stats.responses_failed == 1
    assert stats.errors_sent == 1
    assert stats.events_sent > 10
    snapshot = stats.snapshot()
    assert snapshot["ws_creates"] == 4 and snapshot["closes_sent"] == {}
    stats.reset()
    assert stats.ws_creates == 0


def test_config_object_is_live_and_replaceable() -> None:
    """emu.config is the live object; assigning a new config applies to new requests."""
    with Emulator(config=EmulatorConfig(output_tokens=2)) as emu:
        ws = connect(emu)
        try:
            assert text_of(ask(ws, input="one two three four")) == "one two "
            emu.config = EmulatorConfig()
            assert text_of(ask(ws, input="one two three four")) == "one two three four"
        finally:
            ws.close()


def test_tls_wss_and_https_with_the_trustme_ca() -> None:
    """tls=True serves wss/https with a certificate that verifies against ca_file only."""
    with Emulator(tls=True) as emu:
        assert emu.base_url.startswith("https://") and emu.ws_url.startswith("wss://")
        assert emu.ca_file is not None and os.path.exists(emu.ca_file)
        ws = connect(emu)
        try:
            assert text_of(ask(ws, input="secure words")) == "secure words"
        finally:
            ws.close()
        response = http(emu).post(
            emu.base_url + "/responses", json={"model": "m", "input": "hi"}, timeout=5
        )
        assert response.status_code == 200
        with pytest.raises(requests.exceptions.SSLError):
            requests.post(emu.base_url + "/responses", json={"model": "m"}, timeout=5)
        with pytest.raises(ssl.SSLError):
            websocket.create_connection(emu.ws_url, timeout=5)
        context = emu.ssl_context()
        assert isinstance(context, ssl.SSLContext)
        ca_file = emu.ca_file
        emu.stop()
        assert os.path.exists(ca_file)


def test_cli_prints_base_url_first_and_exits_zero_on_sigterm() -> None:
    """`python -m openai_ws.emulator` prints the base URL on line 1 and exits 0 on SIGTERM."""
    env = dict(os.environ, PYTHONPATH=_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "openai_ws.emulator",
            "--port",
            "0",
            "--api-key",
            "sk-cli-key",
            "--ttft",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline().strip()
        assert first.startswith("http://127.0.0.1:") and first.endswith("/v1")
        response = requests.post(
            first + "/responses",
            json={"model": "m", "input": "cli works"},
            headers={"Authorization": "Bearer sk-cli-key"},
            timeout=5,
        )
        assert response.json()["output"][0]["content"][0]["text"] == "cli works"
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "sk-cli-key" not in out + err


def test_cli_tls_prints_how_to_trust_it() -> None:
    """With --tls the CLI prints the https URL, then how to trust the CA; Ctrl-C exits 0."""
    env = dict(os.environ, PYTHONPATH=_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "openai_ws.emulator",
            "--tls",
            "--no-quirks",
            "--stream-id-mode",
            "ignore",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline().strip()
        assert first.startswith("https://127.0.0.1:")
        lines = [process.stdout.readline() for _ in range(3)]
        export = next(line for line in lines if "export SSL_CERT_FILE=" in line)
        ca_file = export.split("SSL_CERT_FILE=")[1].split()[0]
        assert os.path.exists(ca_file)
        response = requests.post(
            first + "/responses",
            json={"model": "m", "input": "tls cli"},
            headers={"Authorization": "Bearer sk-emulator"},
            verify=ca_file,
            timeout=5,
        )
        assert response.status_code == 200
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0


def test_start_on_a_busy_port_fails_cleanly(emulator: Emulator) -> None:
    """Binding a port that is taken raises RuntimeError and leaves no thread behind."""
    other = Emulator(port=emulator.port)
    with pytest.raises(RuntimeError, match="failed to start"):
        other.start()
    assert not other.running
    other.stop()
