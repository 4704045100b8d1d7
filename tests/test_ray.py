"""The Ray Data recipe (``openai_ws.integrations.ray``): a session per actor, rows in, columns out.

Most tests call the recipe directly, in this process, on a batch of each format Ray
hands a ``map_batches`` function (a dict of numpy arrays, a pandas DataFrame, a
pyarrow Table), against the ``emulator`` fixture. The last ones run it for real on
one local Ray cluster (``ray.init(num_cpus=2)``, started once for the module): Ray
workers are separate processes on this machine, so they reach the emulator that
runs in this process on 127.0.0.1. Conversations are checked with the emulator's
proof of context (``metadata.emulator_reply = "context_digest"``): each turn's
answer is a digest of the whole context the server saw for it.

Threads: the cluster is started by a module-scoped fixture, which pytest sets up
before the per-test thread snapshot of ``conftest.no_thread_leaks``, so Ray's
driver threads are not counted as the first Ray test's; each test still fails if
it leaves a thread of its own (a session's reader, a pool worker) running.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from typing import Any, Dict, Iterator, List, Optional

import pytest

from openai_ws import AuthenticationError, OpenAIWSError
from openai_ws.emulator import Emulator, context_digest

EMULATOR_KEY = "sk-emulator-test-key"  # conftest.EMULATOR_API_KEY, the emulator fixture's key
DIGEST = {"emulator_reply": "context_digest"}
RESULT_NAMES = (
    "response_id",
    "output_text",
    "status",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "turn_texts",
    "turn_ids",
    "error_type",
    "error_message",
)

# Ray's own deprecation notices (DataContext fields it reads when it ships the context).
pytestmark = pytest.mark.filterwarnings(r"ignore:`\w+` is deprecated:DeprecationWarning")

needs_ray = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None,
    reason='Ray is not installed (pip install "openai-ws[ray]")',
)


def recipe(emulator: Emulator, **kwargs: Any) -> Any:
    """The recipe, made as a Ray actor makes it, pointed at ``emulator``."""
    from openai_ws.integrations.ray import OpenAIResponses

    kwargs.setdefault("base_url", emulator.base_url)
    kwargs.setdefault("api_key", emulator.api_key)
    kwargs.setdefault("model", "gpt-4o-mini")
    return OpenAIResponses(**kwargs)


def expected_digests(turns: List[str], instructions: Optional[str] = None) -> List[str]:
    """The answers a fault-free chain of user ``turns`` gets under the digest rule."""
    history: List[Dict[str, Any]] = []
    digests = []
    for text in turns:
        history.append({"type": "message", "role": "user", "content": text})
        digest = context_digest(history, instructions)
        digests.append(digest)
        history.append(
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": digest}],
            }
        )
    return digests


def objects(values: List[Any]) -> Any:
    """A numpy object column, as Ray builds one for text, lists and nulls."""
    import numpy as np

    column = np.empty(len(values), dtype=object)
    column[:] = values
    return column


# -- without Ray -----------------------------------------------------------------------------


def test_importing_the_recipe_does_not_import_ray() -> None:
    """`import openai_ws.integrations.ray` loads no Ray module (Ray is imported when used)."""
    code = (
        "import sys, openai_ws.integrations.ray as r\n"
        "assert r.OpenAIResponses\n"
        "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"


def test_using_the_recipe_without_ray_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without Ray, making the recipe raises ImportError naming the `ray` extra; no socket opens."""
    from openai_ws.integrations.ray import OpenAIResponses

    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` sees when it is absent
    with pytest.raises(ImportError, match=r'pip install "openai-ws\[ray\]"'):
        OpenAIResponses(base_url="http://127.0.0.1:9/v1", api_key="sk-never-used")


# -- the recipe in this process --------------------------------------------------------------


@needs_ray
def test_rows_become_result_columns_in_input_order(emulator: Emulator) -> None:
    """A numpy batch comes back as a Table: the row's own columns, then one answer per row."""
    import numpy as np

    questions = [f"question {i}" for i in range(6)]
    batch = {"id": np.arange(6), "input": objects(questions)}
    with recipe(emulator) as udf:
        table = udf(batch)
        assert udf.session.stats.connects == 1
    assert table.column_names == ["id", "input", *RESULT_NAMES]
    rows = table.to_pylist()
    assert [row["id"] for row in rows] == list(range(6))
    assert [row["output_text"] for row in rows] == questions  # the emulator echoes the input
    assert all(row["status"] == "completed" for row in rows)
    assert len({row["response_id"] for row in rows}) == 6
    assert all(row["response_id"].startswith("resp_") for row in rows)
    assert all(row["input_tokens"] > 0 and row["output_tokens"] > 0 for row in rows)
    assert all(row["total_tokens"] == row["input_tokens"] + row["output_tokens"] for row in rows)
    assert [row["turn_texts"] for row in rows] == [[q] for q in questions]
    assert [row["turn_ids"] for row in rows] == [[row["response_id"]] for row in rows]
    assert all(row["error_type"] is None and row["error_message"] is None for row in rows)


@needs_ray
def test_result_columns_are_typed_even_when_a_batch_has_no_error(emulator: Emulator) -> None:
    """Error columns are strings and token columns int64 in every batch, nulls or not."""
    import pyarrow as pa

    with recipe(emulator) as udf:
        table = udf({"input": objects(["only"])})
    schema = table.schema
    assert schema.field("error_type").type == pa.string()
    assert schema.field("error_message").type == pa.string()
    assert schema.field("input_tokens").type == pa.int64()
    assert schema.field("turn_texts").type == pa.list_(pa.string())


@needs_ray
def test_pandas_and_arrow_batches_keep_their_format(emulator: Emulator) -> None:
    """A DataFrame comes back a DataFrame, a Table a Table, each with the answers appended."""
    import pandas as pd
    import pyarrow as pa

    with recipe(emulator) as udf:
        frame = udf(pd.DataFrame({"id": [7, 8], "input": ["seven", "eight"]}))
        table = udf(pa.table({"id": [9], "input": ["nine"]}))
    assert isinstance(frame, pd.DataFrame)
    assert list(frame["id"]) == [7, 8]
    assert list(frame["output_text"]) == ["seven", "eight"]
    assert list(frame.columns) == ["id", "input", *RESULT_NAMES]
    assert isinstance(table, pa.Table)
    assert table.column("output_text").to_pylist() == ["nine"]


@needs_ray
def test_a_failing_row_is_an_error_column_not_a_failed_batch(emulator: Emulator) -> None:
    """A refused request, a row with no input and a row with both forms fail alone, typed."""
    fields = [None, json.dumps({"metadata": {"emulator_error": "invalid_prompt"}}), None, None]
    batch = {
        "input": objects(["fine", "refused", None, "both"]),
        "turns": objects([None, None, None, ["a", "b"]]),
        "fields": objects(fields),
    }
    with recipe(emulator, fields_column="fields") as udf:
        rows = udf(batch).to_pylist()
    assert [row["status"] for row in rows] == ["completed", "error", "error", "error"]
    assert rows[0]["output_text"] == "fine" and rows[0]["error_type"] is None
    assert rows[1]["error_type"] == "BadRequestError"
    assert "Invalid prompt" in rows[1]["error_message"]
    assert rows[1]["response_id"] is None and rows[1]["turn_texts"] == []
    assert rows[2]["error_type"] == "ValueError" and "'input'" in rows[2]["error_message"]
    assert rows[3]["error_type"] == "ValueError" and "both" in rows[3]["error_message"]


@needs_ray
def test_raise_on_error_fails_the_batch_with_the_rows_error(emulator: Emulator) -> None:
    """With raise_on_error=True the first failed row's exception fails the whole call."""
    from openai_ws import BadRequestError

    batch = {
        "input": objects(["fine", "refused"]),
        "fields": objects([None, {"metadata": {"emulator_error": "invalid_prompt"}}]),
    }
    udf = recipe(emulator, fields_column="fields", raise_on_error=True)
    with udf, pytest.raises(BadRequestError, match="Invalid prompt"):
        udf(batch)


@needs_ray
def test_a_conversation_row_is_answered_turn_by_turn_on_one_socket(emulator: Emulator) -> None:
    """A row of user turns runs as one conversation: each answer saw the whole chat so far."""
    turns = ["my name is Ada", "what is my name?", "and spelled backwards?"]
    batch = {
        "id": [1, 2, 3],
        "input": objects(["solo", None, "solo again"]),
        "turns": objects([None, turns, None]),
    }
    with recipe(emulator, request_fields={"metadata": DIGEST}, max_in_flight=4) as udf:
        rows = udf(batch).to_pylist()
        assert udf.session.stats.connects == 1
    conversation = rows[1]
    assert conversation["turn_texts"] == expected_digests(turns)
    assert conversation["output_text"] == expected_digests(turns)[-1]
    assert conversation["response_id"] == conversation["turn_ids"][-1]
    assert len(set(conversation["turn_ids"])) == 3
    assert conversation["status"] == "completed" and conversation["error_type"] is None
    singles = [rows[0], rows[2]]
    assert [row["output_text"] for row in singles] == [
        context_digest("solo"),
        context_digest("solo again"),
    ]
    # the usage of a conversation row is the sum over its turns
    assert conversation["input_tokens"] > rows[0]["input_tokens"]


@needs_ray
def test_a_turn_that_raises_ends_its_conversation_and_keeps_the_answered_turns(
    emulator: Emulator,
) -> None:
    """Turn 2 times out (300 tokens 50 ms apart, timeout 1.5 s): turn 1 stays, turn 3 never goes."""
    long_turn = " ".join(f"w{i}" for i in range(300))
    batch = {
        "turns": objects([["hi", long_turn, "never sent"]]),
        "fields": objects([{"metadata": {"emulator_token_interval": "0.05"}}]),
    }
    with recipe(emulator, fields_column="fields", timeout=1.5) as udf:
        (row,) = udf(batch).to_pylist()
    assert row["status"] == "error" and row["error_type"] == "RequestTimeoutError"
    assert row["turn_texts"] == ["hi"]
    assert row["response_id"] == row["turn_ids"][0] and row["output_text"] == "hi"
    assert row["input_tokens"] > 0  # the answered turn's usage is kept


@needs_ray
def test_a_failed_response_ends_its_conversation_and_names_the_code(emulator: Emulator) -> None:
    """A `failed` response is its row's answer (status, code); a conversation stops at it."""
    fail = {"metadata": {"emulator_fail": "server_error"}}
    batch = {
        "input": objects(["single", None]),
        "turns": objects([None, ["first", "second"]]),
        "fields": objects([fail, fail]),
    }
    with recipe(emulator, fields_column="fields") as udf:
        single, conversation = udf(batch).to_pylist()
    for row in (single, conversation):
        assert row["status"] == "failed" and row["error_type"] == "server_error"
        assert row["error_message"] and row["response_id"].startswith("resp_")
    assert len(conversation["turn_ids"]) == 1  # "second" was never sent


@needs_ray
def test_a_row_past_its_timeout_fails_alone_and_promptly(emulator: Emulator) -> None:
    """timeout=0.5 s: the row whose first token waits 30 s is a RequestTimeoutError within 5 s."""
    batch = {
        "input": objects(["slow", "quick"]),
        "fields": objects([{"metadata": {"emulator_ttft": "30"}}, None]),
    }
    with recipe(emulator, fields_column="fields", timeout=0.5) as udf:
        started = time.monotonic()
        rows = udf(batch).to_pylist()
        elapsed = time.monotonic() - started
    assert elapsed < 5.0
    assert rows[0]["error_type"] == "RequestTimeoutError"
    assert rows[1]["output_text"] == "quick"


@needs_ray
def test_the_api_key_is_in_no_row_repr_or_error(emulator: Emulator) -> None:
    """The key given to the recipe shows up in no output cell, no repr and no error text."""
    key = emulator.api_key
    batch = {
        "input": objects(["hello", "refused", None]),
        "fields": objects([None, {"metadata": {"emulator_error": "invalid_prompt"}}, None]),
    }
    with recipe(emulator, fields_column="fields") as udf:
        assert key not in repr(udf)
        rows = udf(batch).to_pylist()
    assert rows[1]["error_type"] == "BadRequestError"
    assert key not in json.dumps(rows)
    with pytest.raises(AuthenticationError) as refused:
        recipe(emulator, api_key="sk-wrong-key-0123456789")
    assert "sk-wrong-key-0123456789" not in str(refused.value)
    assert "sk-wrong-key-0123456789" not in repr(refused.value)


@needs_ray
def test_the_key_comes_from_the_workers_environment(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without api_key, OPENAI_API_KEY (or the variable api_key_env names) of the worker is used."""
    from openai_ws.integrations.ray import OpenAIResponses

    monkeypatch.setenv("OPENAI_API_KEY", emulator.api_key)
    with OpenAIResponses(base_url=emulator.base_url, model="m") as udf:
        assert udf({"input": objects(["env"])}).column("output_text").to_pylist() == ["env"]
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.setenv("TEAM_OPENAI_KEY", emulator.api_key)
    with OpenAIResponses(
        base_url=emulator.base_url, model="m", api_key_env="TEAM_OPENAI_KEY"
    ) as udf:
        assert udf({"input": objects(["team"])}).column("status").to_pylist() == ["completed"]
    monkeypatch.delenv("TEAM_OPENAI_KEY")
    with pytest.raises(OpenAIWSError, match="TEAM_OPENAI_KEY"):
        OpenAIResponses(base_url=emulator.base_url, api_key_env="TEAM_OPENAI_KEY")


@needs_ray
def test_bad_settings_fail_when_the_actor_is_made(emulator: Emulator) -> None:
    """A misspelt request field or a zero max_in_flight raises in __init__, before any socket."""
    with pytest.raises(TypeError, match="temprature"):
        recipe(emulator, request_fields={"temprature": 0.2})
    with pytest.raises(ValueError, match="max_in_flight"):
        recipe(emulator, max_in_flight=0)
    with pytest.raises(ValueError, match="input"):
        recipe(emulator, request_fields={"input": "belongs in the rows"})
    assert emulator.stats.ws_connections == 0


@needs_ray
def test_a_column_named_like_a_result_is_refused_unless_prefixed(emulator: Emulator) -> None:
    """A batch that already has a `status` column is a ValueError; prefix= names ours apart."""
    batch = {"input": objects(["x"]), "status": objects(["mine"])}
    with recipe(emulator) as udf, pytest.raises(ValueError, match="status"):
        udf(batch)
    with recipe(emulator, prefix="llm_") as udf:
        table = udf(batch)
    assert table.column("status").to_pylist() == ["mine"]
    assert table.column("llm_status").to_pylist() == ["completed"]


@needs_ray
def test_a_batch_without_the_named_columns_is_a_clear_error(emulator: Emulator) -> None:
    """No `input`/`turns` column, or a missing fields_column, fails the batch before sending."""
    with recipe(emulator, fields_column="per_row") as udf:
        with pytest.raises(ValueError, match="neither an 'input' nor a 'turns' column"):
            udf({"prompt": objects(["hello"])})
        with pytest.raises(ValueError, match="no 'per_row' column"):
            udf({"input": objects(["hello"])})
        assert udf({"input": objects([]), "per_row": objects([])}).num_rows == 0
    assert emulator.stats.ws_creates == 0  # nothing was sent


@needs_ray
def test_a_closed_recipe_refuses_batches(emulator: Emulator) -> None:
    """After close() a batch raises SessionClosedError instead of hanging; close is idempotent."""
    from openai_ws import SessionClosedError

    udf = recipe(emulator)
    udf.close()
    udf.close()
    with pytest.raises(SessionClosedError):
        udf({"input": objects(["late"])})


# -- on a local Ray cluster ------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Any]:
    """One local Ray cluster for the module; its workers inherit OPENAI_API_KEY from here.

    Started before the first test's thread snapshot (module scope) and stopped after
    the last test. The key is in this process's environment only while ``ray.init``
    starts the cluster (the workers' environment comes from it); the variables Ray
    sets here (``PYTHONBREAKPOINT``, ``RAY_AUTH_MODE``, ...) stay while the cluster
    runs and are put back, with everything else, at the end.
    """
    pytest.importorskip("ray.data")
    import ray

    saved = dict(os.environ)
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # a test run reports nothing anywhere
    os.environ["OPENAI_API_KEY"] = EMULATOR_KEY  # the workers' environment, not the Dataset
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="warning")
    except BaseException:
        os.environ.clear()
        os.environ.update(saved)
        raise
    if "OPENAI_API_KEY" in saved:
        os.environ["OPENAI_API_KEY"] = saved["OPENAI_API_KEY"]
    else:
        del os.environ["OPENAI_API_KEY"]
    context = ray.data.DataContext.get_current()
    order, bars = context.execution_options.preserve_order, context.enable_progress_bars
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    try:
        # Ray Data may start driver threads on its first execution that live as long as
        # the process (with usage stats on, "data-usage-metrics-poller", which outlives
        # ray.shutdown): one tiny execution here makes them predate every test's snapshot.
        assert ray.data.range(1).take_all() == [{"id": 0}]
        yield ray
    finally:
        context.execution_options.preserve_order = order
        context.enable_progress_bars = bars
        ray.shutdown()
        os.environ.clear()
        os.environ.update(saved)


@needs_ray
def test_a_ray_dataset_is_answered_row_by_row_on_actor_sessions(
    ray_cluster: Any, emulator: Emulator
) -> None:
    """map_batches on 2 actors: a row out per row in, in order, each actor on its own socket."""
    from openai_ws.integrations.ray import OpenAIResponses

    turns = ["I am Grace", "who am I?", "say it again"]
    items: List[Dict[str, Any]] = [
        {"id": i, "input": f"row {i}", "turns": None, "fields": None} for i in range(7)
    ]
    items[3] = {"id": 3, "input": None, "turns": turns, "fields": None}
    items[5]["fields"] = json.dumps({"metadata": {"emulator_error": "invalid_prompt"}})
    dataset = ray_cluster.data.from_items(items).map_batches(
        OpenAIResponses,
        fn_constructor_kwargs={
            "base_url": emulator.base_url,  # the key comes from the worker's environment
            "model": "gpt-4o-mini",
            "request_fields": {"metadata": DIGEST},
            "fields_column": "fields",
        },
        compute=ray_cluster.data.ActorPoolStrategy(size=2),
        batch_size=4,
    )
    rows = dataset.take_all()
    assert [row["id"] for row in rows] == list(range(7))
    for row in rows:
        if row["id"] in (3, 5):
            continue
        assert row["status"] == "completed"
        assert row["output_text"] == context_digest(f"row {row['id']}")
        assert row["response_id"].startswith("resp_")
    assert rows[3]["turn_texts"] == expected_digests(turns), rows[3]
    assert rows[3]["status"] == "completed"
    assert rows[5]["status"] == "error" and rows[5]["error_type"] == "BadRequestError"
    assert EMULATOR_KEY not in repr(rows)
    assert emulator.stats.ws_connections == 2  # two actors: a session, a socket, each
    schema = dataset.schema()
    assert schema.names[-len(RESULT_NAMES) :] == list(RESULT_NAMES)
    assert str(schema.types[schema.names.index("error_type")]) == "string"
