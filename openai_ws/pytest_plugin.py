"""A pytest plugin: the bundled emulator as fixtures for your own tests.

Installed with the package, it is registered through the ``pytest11`` entry
point named ``openai_ws.pytest_plugin``, so pytest loads it by itself (disable it
with ``-p no:openai_ws.pytest_plugin``; with ``PYTEST_DISABLE_PLUGIN_AUTOLOAD``
set, load it with ``-p openai_ws.pytest_plugin``). The fixtures need the
``emulator`` extra (aiohttp, trustme); without it they fail with a one-line
message saying what to install, and nothing else in the test run changes.

Fixtures:

``openai_emulator``
    A running :class:`~openai_ws.emulator.Emulator` on 127.0.0.1 (a free port),
    new for each test and stopped after it. Its ``config`` is live: set faults
    and delays on it (``openai_emulator.config.upgrade_status = 426``). Mark a
    test ``@pytest.mark.openai_emulator(tls=True, ttft=0.05, ...)`` to start it
    with TLS (``ca_file``), another ``api_key``, or any ``EmulatorConfig`` field.
``openai_emulator_session``
    One emulator for the whole test session (faster start-up; shared, so do not
    change its ``config`` — use ``openai_emulator`` for faults).
``openai_ws_client``
    An :class:`openai_ws.OpenAI` pointed at ``openai_emulator`` (its key, base
    URL and CA), closed after the test.
``openai_emulator_env``
    Points the environment at ``openai_emulator`` for the duration of the test:
    ``OPENAI_BASE_URL`` and ``OPENAI_API_KEY`` (read by ``openai_ws.OpenAI.from_env()``
    and by the official ``openai`` package), and with TLS ``SSL_CERT_FILE`` and
    ``REQUESTS_CA_BUNDLE``; other ``OPENAI_*`` variables are removed. Returns an
    :class:`EmulatorEndpoint` (``base_url``, ``api_key``, ``ca_file``).

What it must never do: import aiohttp, the emulator or the client when pytest
loads it (only when a fixture runs), change anything for tests that use none of
its fixtures, or leave an emulator running after the scope that started it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Iterator, NamedTuple, Optional

import pytest

if TYPE_CHECKING:
    from .client import OpenAI
    from .emulator import Emulator

__all__ = [
    "EmulatorEndpoint",
    "openai_emulator",
    "openai_emulator_env",
    "openai_emulator_session",
    "openai_ws_client",
]

MARKER = "openai_emulator"

_ENV_TO_CLEAR = (
    "OPENAI_WEBSOCKET_BASE_URL",
    "OPENAI_ORG_ID",
    "OPENAI_PROJECT_ID",
    "OPENAI_ORGANIZATION",
    "OPENAI_PROJECT",
)
"""Settings that would send a client somewhere else, or with other headers."""


class EmulatorEndpoint(NamedTuple):
    """Where an emulator listens, and what a client needs to talk to it."""

    base_url: str
    """``http://127.0.0.1:PORT/v1`` (``https`` with TLS): the ``base_url`` of any client."""
    api_key: str
    """The bearer token the emulator accepts."""
    ca_file: Optional[str]
    """PEM file of the CA to trust with TLS (``None`` without TLS)."""


def pytest_configure(config: pytest.Config) -> None:
    """Declare the ``openai_emulator`` marker (so ``--strict-markers`` accepts it)."""
    config.addinivalue_line(
        "markers",
        f"{MARKER}(tls=False, api_key=..., **config): start the openai_emulator fixture "
        "with TLS, another API key, or EmulatorConfig fields (openai_ws plugin)",
    )


def _start_emulator(options: Dict[str, Any]) -> Emulator:
    """Start an emulator with marker ``options``; fail the test clearly without the extra."""
    try:
        from .emulator import Emulator, EmulatorConfig
    except ImportError as exc:
        pytest.fail(
            "the openai_ws emulator fixtures need the emulator extra: "
            f"pip install 'openai-ws[emulator]' ({exc})",
            pytrace=False,
        )
    options = dict(options)
    emulator_options = {
        name: options.pop(name)
        for name in ("tls", "api_key", "client_auth", "cert_dir")
        if name in options
    }
    try:
        config = EmulatorConfig(**options)
    except TypeError as exc:
        pytest.fail(f"@pytest.mark.{MARKER}: {exc}", pytrace=False)
    return Emulator(config=config, **emulator_options).start()


def _marker_options(request: pytest.FixtureRequest) -> Dict[str, Any]:
    """The keyword arguments of the closest ``openai_emulator`` marker, if any."""
    marker = request.node.get_closest_marker(MARKER)
    if marker is None:
        return {}
    if marker.args:
        pytest.fail(f"@pytest.mark.{MARKER} takes keyword arguments only", pytrace=False)
    return dict(marker.kwargs)


@pytest.fixture
def openai_emulator(request: pytest.FixtureRequest) -> Iterator[Emulator]:
    """A running emulator of the Responses API for this test (``config`` sets faults)."""
    emulator = _start_emulator(_marker_options(request))
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture(scope="session")
def openai_emulator_session() -> Iterator[Emulator]:
    """One emulator shared by the whole test session; leave its ``config`` alone."""
    emulator = _start_emulator({})
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def openai_ws_client(openai_emulator: Emulator) -> Iterator[OpenAI]:
    """An ``openai_ws.OpenAI`` client pointed at ``openai_emulator``; closed after the test."""
    from .client import OpenAI

    client = OpenAI(
        api_key=openai_emulator.api_key,
        base_url=openai_emulator.base_url,
        ca_bundle=openai_emulator.ca_file,
    )
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def openai_emulator_env(
    openai_emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> EmulatorEndpoint:
    """``OPENAI_BASE_URL``/``OPENAI_API_KEY`` (and the CA with TLS) name ``openai_emulator``."""
    for name in _ENV_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", openai_emulator.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", openai_emulator.api_key)
    ca_file = openai_emulator.ca_file
    if ca_file is not None:
        monkeypatch.setenv("SSL_CERT_FILE", ca_file)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca_file)
    return EmulatorEndpoint(openai_emulator.base_url, openai_emulator.api_key, ca_file)
