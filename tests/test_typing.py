"""What a user's mypy sees: typed keyword fields, ``map`` overloads, ``match`` bindings, the README.

Small user snippets are written to a temporary folder and checked once with
``mypy --strict`` (``mypy.api.run``, in-process, against this checkout through
``mypy_path``); each test then looks at the messages for its own snippet.
Lines marked ``# E`` must have an error and every other line must have none
(expectations are written as annotated assignments, not ``reveal_type``, so
they do not depend on how a mypy version prints types).
"""

from __future__ import annotations

import os
import re
import sys
import textwrap
from typing import Dict, List, Tuple

import mypy.api as mypy_api  # the test extra installs mypy
import pytest

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: Snippets with ``match`` statements: mypy parses with the running Python's parser.
_NEEDS_MATCH = {"match_patterns"}

SNIPPETS: Dict[str, str] = {
    # Item 7: the keyword form is typed; typos and wrong types fail in mypy.
    "keywords": """
        from openai_ws import OpenAI, ResponseCreateRequest

        client = OpenAI(api_key="k", base_url="http://127.0.0.1:9/v1")
        session = client.ws_session()
        session.send(model="m", input="x", temperature=0.5, max_output_tokens=16)
        session.send(model="m", input="x", temprature=0.5)  # E
        session.send(model="m", input="x", max_output_tokens="16")  # E
        session.stream(model="m", input="x", store=False, metadata={"k": "v"})
        session.stream(model="m", inptu="x")  # E
        session.warmup(model="m", input="x", instructions="be brief")
        session.warmup(model="m", instructons="be brief")  # E
        session.run(model="m", input="x", tools={"f": print}, max_turns=3)
        session.run(model="m", input="x", tools={"f": print}, parallel_tool_call=True)  # E
        client.responses.create(model="m", input="x", top_p=0.9, timeout=3.0)
        client.responses.create(model="m", input="x", top_pp=0.9)  # E
        client.responses.stream(model="m", input="x", reasoning={"effort": "low"})
        client.responses.stream(model="m", input="x", reasonin={"effort": "low"})  # E
        session.send(ResponseCreateRequest(model="m"), timeout=2.0, extra_body={"seed": 1})
        client.responses.create(
            model="m", extra_headers={"X-A": "b"}, extra_query={"v": "1"}, extra_body={}
        )
        messages: list[dict[str, str]] = [{"role": "user", "content": "hi"}]
        tool_specs: list[dict[str, object]] = [{"type": "function", "name": "f"}]
        session.send(model="m", input=messages, tools=tool_specs, include=("a", "b"))
        ResponseCreateRequest(model="m", input=messages, tools=tool_specs)
    """,
    # Item 6: map() is typed by return_exceptions.
    "map_overloads": """
        from typing import Iterator, List, Union
        from openai_ws import OpenAI, Response, ResponseCreateRequest

        session = OpenAI(api_key="k", base_url="http://127.0.0.1:9/v1").ws_session()
        requests: List[ResponseCreateRequest] = []
        plain: Iterator[Response] = session.map(requests)
        also_plain: Iterator[Response] = session.map(requests, return_exceptions=False)
        mixed: Iterator[Union[Response, Exception]] = session.map(requests, return_exceptions=True)
        not_plain: Iterator[Response] = session.map(requests, return_exceptions=True)  # E
        flag: bool = bool(requests)
        maybe: Iterator[Response] = session.map(requests, return_exceptions=flag)  # E
        for response in session.map(requests, concurrency=4):
            print(response.output_text)
    """,
    # Item 5: positional class patterns bind the field a user means.
    "match_patterns": """
        from openai_ws import (
            ResponseCompleted,
            ResponseContentPartAdded,
            ResponseOutputItemDone,
            ResponseOutputTextDelta,
            ServerEvent,
        )

        def show(event: ServerEvent) -> None:
            match event:
                case ResponseOutputTextDelta(delta):
                    piece: str = delta
                    print(piece)
                case ResponseContentPartAdded(part):
                    print(part.type)
                case ResponseOutputItemDone(item):
                    print(item.type)
                case ResponseCompleted(response):
                    print(response.id)
                case _:
                    pass
    """,
    # Item 3 and 8: the stream is typed, and usage needs a check.
    "streams_and_usage": """
        from openai_ws import EventStream, OpenAI, ResponseOutputTextDelta

        client = OpenAI(api_key="k", base_url="http://127.0.0.1:9/v1")
        with client.responses.stream(model="m", input="x") as events:
            for event in events:
                if isinstance(event, ResponseOutputTextDelta):
                    print(event.delta)
        http_stream: EventStream = client.responses.stream(model="m", input="x")
        ws_stream: EventStream = client.ws_session().stream(model="m", input="x")
        response = client.responses.create(model="m", input="x")
        print(response.usage.input_tokens)  # E
        if response.usage:
            print(response.usage.input_tokens)
    """,
}


def _readme_tour() -> List[str]:
    """The ``python`` code blocks of the README's "API tour" section."""
    with open(os.path.join(_ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    section = readme.split("\n## API tour", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert blocks, "the API tour has no python block"
    return blocks


@pytest.fixture(scope="module")
def mypy_messages(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, List[Tuple[int, str]]]:
    """Run mypy --strict once over every snippet (and the README tour); messages by snippet."""
    folder = tmp_path_factory.mktemp("typing")
    sources = {name: textwrap.dedent(code).lstrip("\n") for name, code in SNIPPETS.items()}
    for number, block in enumerate(_readme_tour()):
        sources[f"readme_tour_{number}"] = block
    if sys.version_info < (3, 10):
        sources = {n: c for n, c in sources.items() if not re.search(r"^\s+match ", c, re.M)}
    for name, code in sources.items():
        (folder / f"snippet_{name}.py").write_text(code, encoding="utf-8")
    config = folder / "mypy.ini"
    config.write_text(
        "[mypy]\n"
        "strict = True\n"
        f"mypy_path = {_ROOT}\n"
        "[mypy-websocket.*]\nignore_missing_imports = True\n"
        "[mypy-trustme.*]\nignore_missing_imports = True\n",
        encoding="utf-8",
    )
    stdout, stderr, _status = mypy_api.run(
        [
            "--config-file",
            str(config),
            "--cache-dir",
            str(folder / ".mypy_cache"),
            "--hide-error-context",
            "--no-error-summary",
            "--show-absolute-path",
            *(str(folder / f"snippet_{name}.py") for name in sources),
        ]
    )
    assert "error: Cannot find implementation" not in stdout, stdout
    assert not stderr.strip(), stderr
    messages: Dict[str, List[Tuple[int, str]]] = {name: [] for name in sources}
    messages.update({name: [] for name in SNIPPETS if name not in sources})
    pattern = re.compile(r"^(.*?snippet_(\w+)\.py):(\d+): (.*)$")
    for line in stdout.splitlines():
        found = pattern.match(line)
        if found:  # messages about openai_ws's own files are not the user's
            messages[found.group(2)].append((int(found.group(3)), found.group(4)))
    return messages


def _error_lines(name: str) -> List[int]:
    """The lines of a snippet marked ``# E`` (each must have a mypy error)."""
    code = textwrap.dedent(SNIPPETS[name]).lstrip("\n")
    return [n for n, line in enumerate(code.splitlines(), 1) if line.rstrip().endswith("# E")]


@pytest.mark.parametrize("name", sorted(SNIPPETS))
def test_user_snippet_type_checks_as_expected(
    mypy_messages: Dict[str, List[Tuple[int, str]]], name: str
) -> None:
    """Lines marked ``# E`` fail mypy --strict; every other line of the snippet passes."""
    if name in _NEEDS_MATCH and sys.version_info < (3, 10):
        pytest.skip("match statements need Python 3.10 to be parsed")
    messages = mypy_messages[name]
    marked = _error_lines(name)
    for line in marked:
        assert any(at == line and text.startswith("error:") for at, text in messages), (
            line,
            messages,
        )
    stray = [(at, text) for at, text in messages if at not in marked]
    assert stray == [], stray


def test_readme_api_tour_passes_strict_mypy(
    mypy_messages: Dict[str, List[Tuple[int, str]]],
) -> None:
    """The README's API tour code (every block) is accepted by mypy --strict as a user's is."""
    tour = {name: found for name, found in mypy_messages.items() if name.startswith("readme_")}
    assert len(tour) >= (2 if sys.version_info >= (3, 10) else 1)  # the tour, its match example
    assert all(found == [] for found in tour.values()), tour


def test_keyword_field_types_match_the_request_class() -> None:
    """RequestFields has every ResponseCreateRequest field but extra_body, with the same types;
    RunFields is the same without tools."""
    from typing import get_type_hints

    import attrs

    from openai_ws._types import RequestFields, RunFields
    from openai_ws.models import ResponseCreateRequest

    fields = {a.name: a.type for a in attrs.fields(ResponseCreateRequest) if a.name != "extra_body"}
    assert get_type_hints(RequestFields) == fields
    assert get_type_hints(RunFields) == {k: v for k, v in fields.items() if k != "tools"}
    assert RequestFields.__total__ is False and RunFields.__total__ is False
