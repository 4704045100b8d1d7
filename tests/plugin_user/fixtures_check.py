"""A user's tests of the plugin's fixtures, run by ``tests/test_plugin.py`` in a separate directory.

This file is data for ``test_plugin.py``: it is copied into a temporary
directory as ``test_fixtures.py`` and run there with ``python -m pytest``, as a
user of the installed package would run their own tests (no conftest.py of this
repository applies). Its name does not match ``test_*.py``, so the main test run
never collects it. The tests run in file order (pytest's default).
"""

from __future__ import annotations

import os
import ssl
import threading
from typing import List

import pytest
import requests

import openai_ws
from openai_ws.emulator import Emulator
from openai_ws.pytest_plugin import EmulatorEndpoint

_PORTS: List[int] = []
_CA_BEFORE = os.environ.get("SSL_CERT_FILE")  # the machine may set one already


def _emulator_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "openai-ws-emulator")


def test_client_talks_to_the_emulator(openai_ws_client: openai_ws.OpenAI) -> None:
    """The client fixture answers over a WebSocket session (the emulator echoes)."""
    with openai_ws_client.ws_session() as session:
        assert session.send(model="m", input="echo me").output_text == "echo me"
        assert session.stats.connects == 1


def test_config_sets_faults(openai_emulator: Emulator, openai_ws_client: openai_ws.OpenAI) -> None:
    """A fault set on openai_emulator.config applies: refused upgrades go to HTTP."""
    openai_emulator.config.upgrade_status = 426
    with openai_ws_client.ws_session() as session:
        assert session.send(model="m", input="over http").output_text == "over http"
        assert session.stats.http_fallbacks >= 1
    assert openai_emulator.stats.ws_rejected >= 1


def test_each_test_gets_a_fresh_emulator(openai_emulator: Emulator) -> None:
    """The previous test's fault is gone: a new emulator with a default config."""
    assert openai_emulator.config.upgrade_status is None
    assert openai_emulator.stats.ws_rejected == 0
    assert _emulator_threads() == 1


def test_no_emulator_is_left_running() -> None:
    """Function-scoped emulators are stopped after their test."""
    assert _emulator_threads() == 0


@pytest.mark.openai_emulator(tls=True, ttft=0.01, api_key="sk-user-chosen")
def test_marker_starts_a_tls_emulator(
    openai_emulator: Emulator, openai_ws_client: openai_ws.OpenAI
) -> None:
    """@pytest.mark.openai_emulator(tls=True, ...) gives https, the key, a CA the client trusts."""
    assert openai_emulator.base_url.startswith("https://127.0.0.1:")
    assert openai_emulator.api_key == "sk-user-chosen"
    assert openai_emulator.config.ttft == 0.01
    assert os.path.exists(openai_emulator.ca_file)
    with openai_ws_client.ws_session() as session:
        assert session.send(model="m", input="secure").output_text == "secure"


@pytest.mark.openai_emulator(tls=True)
def test_env_points_plain_http_clients_at_the_emulator(
    openai_emulator_env: EmulatorEndpoint,
) -> None:
    """openai_emulator_env sets OPENAI_BASE_URL, OPENAI_API_KEY and the CA for TLS clients."""
    assert os.environ["OPENAI_BASE_URL"] == openai_emulator_env.base_url
    assert os.environ["OPENAI_API_KEY"] == openai_emulator_env.api_key
    assert os.environ["SSL_CERT_FILE"] == openai_emulator_env.ca_file
    assert ssl.create_default_context(cafile=openai_emulator_env.ca_file).get_ca_certs()
    # What any HTTP client built from the environment does (requests reads REQUESTS_CA_BUNDLE).
    answer = requests.post(
        os.environ["OPENAI_BASE_URL"] + "/responses",
        headers={"Authorization": "Bearer " + os.environ["OPENAI_API_KEY"]},
        json={"model": "m", "input": "from the environment"},
        timeout=5,
    )
    assert answer.json()["output"][0]["content"][0]["text"] == "from the environment"


def test_env_is_restored_afterwards() -> None:
    """The variables the env fixture set are back to what they were after its test."""
    assert os.environ.get("SSL_CERT_FILE") == _CA_BEFORE
    assert os.environ.get("OPENAI_API_KEY") != "sk-emulator"


def test_session_emulator_is_shared(openai_emulator_session: Emulator) -> None:
    """The session-scoped emulator runs and answers plain HTTP."""
    _PORTS.append(openai_emulator_session.port)
    answer = requests.post(
        openai_emulator_session.base_url + "/responses",
        headers={"Authorization": f"Bearer {openai_emulator_session.api_key}"},
        json={"model": "m", "input": "shared"},
        timeout=5,
    )
    assert answer.status_code == 200


def test_session_emulator_is_the_same_one(openai_emulator_session: Emulator) -> None:
    """A second test gets the same session-scoped emulator (same port, still running)."""
    assert openai_emulator_session.port == _PORTS[-1]
    assert openai_emulator_session.running
