"""What ``import openai_ws`` costs: no transport library, no cattrs, every public name still there.

Each check runs in a fresh interpreter (``sys.modules`` of the test process already
holds everything), so it sees exactly what a user's first import loads. The heavy
libraries (websocket-client, requests, urllib3, ssl, cattrs) load on first use: the
first socket, the first HTTP call, the first event typed. Deterministic: module
names, not timings (``benchmarks/import_time.py`` measures the time).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest

ROOT = Path(__file__).resolve().parent.parent

HEAVY = ("requests", "urllib3", "ssl", "_ssl", "websocket", "aiohttp", "cattrs", "certifi")
"""Modules that ``import openai_ws`` (and naming the client) must not load."""

_LOADED = """
import json, sys
{code}
print(json.dumps(sorted(name for name in {heavy!r} if name in sys.modules)))
"""


def _python(code: str, *args: str, timeout: float = 60) -> str:
    """Run ``code`` in a fresh interpreter with the checkout on the path; return its stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _loaded_by(code: str) -> List[str]:
    """Which of :data:`HEAVY` are in ``sys.modules`` after running ``code``."""
    out = _python(_LOADED.format(code=code, heavy=HEAVY))
    loaded: List[str] = json.loads(out.strip().splitlines()[-1])
    return loaded


def test_import_loads_no_transport_library_and_no_cattrs() -> None:
    """`import openai_ws` loads no websocket-client, requests, urllib3, ssl, aiohttp, cattrs."""
    assert _loaded_by("import openai_ws") == []


@pytest.mark.parametrize(
    "code",
    [
        "from openai_ws import OpenAI, Session, Conversation, EventStream",
        "import openai_ws; openai_ws.OpenAI; openai_ws.Session; openai_ws.Response",
        "from openai_ws import ResponseOutputTextDelta, APIError, ResponseCreateRequest",
        "import openai_ws; openai_ws.OpenAI(api_key='sk-x', base_url='https://127.0.0.1:9/v1')",
    ],
)
def test_naming_the_client_loads_no_transport_library(code: str) -> None:
    """Naming (or building) the client, session, models or errors still loads no transport."""
    assert _loaded_by(code) == []


def test_every_public_name_resolves_and_is_listed() -> None:
    """Every name in `__all__` resolves, `dir()` lists it, and `import *` binds it."""
    code = """
import json, openai_ws
names = list(openai_ws.__all__)
missing = [n for n in names if getattr(openai_ws, n, None) is None]
not_listed = sorted(set(names) - set(dir(openai_ws)))
star = {}
exec("from openai_ws import *", star)
print(json.dumps([len(names), missing, not_listed, sorted(set(names) - set(star))]))
"""
    count, missing, not_listed, not_starred = json.loads(_python(code).strip())
    assert count > 80
    assert (missing, not_listed, not_starred) == ([], [], [])


def test_public_names_are_the_defining_objects() -> None:
    """`openai_ws.X` is the very object its module defines (no copy, no proxy)."""
    import openai_ws
    from openai_ws import client, errors, events, models, session

    assert openai_ws.OpenAI is client.OpenAI
    assert openai_ws.Session is session.Session
    assert openai_ws.APIError is errors.APIError
    assert openai_ws.ResponseOutputTextDelta is events.ResponseOutputTextDelta
    assert openai_ws.Usage is models.Usage


def test_an_unknown_name_is_an_attribute_error_naming_it() -> None:
    """`openai_ws.Nope` raises AttributeError naming the module and the name."""
    import openai_ws

    with pytest.raises(AttributeError, match=r"module 'openai_ws' has no attribute 'Nope'"):
        openai_ws.Nope  # noqa: B018 - the access is the test
    with pytest.raises(ImportError):
        exec("from openai_ws import Nope", {})


_FIRST_USE = """
import json, sys
import openai_ws

base_url, api_key = sys.argv[1], sys.argv[2]
before = sorted(name for name in {heavy!r} if name in sys.modules)
client = openai_ws.OpenAI(api_key=api_key, base_url=base_url)
with client.ws_session() as session:
    over_ws = session.send(model="gpt-emulator", input="hello").output_text
    streamed = [type(e).__name__ for e in session.stream(model="gpt-emulator", input="hi")]
over_http = client.responses.create(model="gpt-emulator", input="hello").output_text
client.close()
used = ("websocket", "requests", "urllib3", "cattrs")
after = sorted(name for name in used if name in sys.modules)
print(json.dumps([before, bool(over_ws), streamed[-1], bool(over_http), after]))
"""


def test_first_session_and_create_work_after_the_light_import(emulator: Any) -> None:
    """In a fresh process the first Session.send/stream and responses.create work."""
    code = _FIRST_USE.format(heavy=HEAVY)
    out = _python(code, emulator.base_url, emulator.api_key)
    before, over_ws, last, over_http, after = json.loads(out.strip().splitlines()[-1])
    assert before == []
    assert (over_ws, last, over_http) == (True, "ResponseCompleted", True)
    assert after == ["cattrs", "requests", "urllib3", "websocket"]


_RACE = """
import sys, threading
import openai_ws

names = [n for n in openai_ws.__all__ if not n.startswith("_")]
start = threading.Barrier(8)
errors = []

def first_use(i):
    start.wait()
    try:
        for name in names[i::2] + names:
            getattr(openai_ws, name)
        if i % 2:
            from openai_ws._convert import structure_event
            structure_event({"type": "response.output_text.delta", "delta": "x",
                             "item_id": "i", "output_index": 0, "content_index": 0})
        else:
            from openai_ws._transports.ws import WSTransport
            WSTransport("ws://127.0.0.1:9/", headers={}, connect_timeout=1)
    except Exception as exc:
        errors.append(repr(exc))

threads = [threading.Thread(target=first_use, args=(i,)) for i in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(errors)
sys.exit(1 if errors else 0)
"""


def test_first_use_from_many_threads_at_once() -> None:
    """Eight threads naming every public name, typing an event or making a socket at once (x5)."""
    for _ in range(5):
        assert _python(_RACE).strip() == "[]"


def test_lazy_table_matches_all() -> None:
    """Every name of `__all__` is either imported eagerly or in the lazy table, never both."""
    import openai_ws

    lazy: Dict[str, str] = getattr(openai_ws, "_LAZY", {})
    eager = {n for n in openai_ws.__all__ if n in vars(openai_ws) and n not in lazy}
    assert set(lazy) | eager == set(openai_ws.__all__)
