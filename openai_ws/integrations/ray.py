"""A Ray Data recipe: :class:`OpenAIResponses`, one ``openai_ws`` session per actor.

For jobs of many requests (evaluations, agent rollouts) spread over a cluster,
Ray Data does the scheduling, the fan-out over machines and the retries; this
class only answers one batch of rows at a time::

    import ray
    from openai_ws.integrations.ray import OpenAIResponses

    answered = ray.data.read_parquet("prompts.parquet").map_batches(
        OpenAIResponses,
        fn_constructor_kwargs={"model": "gpt-4o-mini", "max_in_flight": 16},
        compute=ray.data.ActorPoolStrategy(size=8),   # 8 actors = 8 sessions
        batch_size=64,
    )

How sessions map to workers: Ray makes each actor once (``__init__`` opens one
:class:`~openai_ws.Session`, so one socket pool per actor: one WebSocket, more
only while 16 responses run on each, up to ``max_sockets`` in
``session_options``, with HTTP fallback) and then calls it with batch after
batch, which reuse those sockets. Each batch runs at most ``max_in_flight``
requests at once on the actor's session (the service runs 16 per socket; a
conversation's turns stay on the socket of their parent); the cluster-wide
concurrency is
the number of actors (``compute=ActorPoolStrategy(size=N)``, or ``concurrency=N``,
deprecated since Ray 2.51) times that. Retries of lost actors and batches are Ray's:
``max_restarts``/``max_task_retries`` (and ``retry_exceptions``) passed to
``map_batches`` as ``ray_remote_args``; a retried batch sends all its rows again.
Inside a batch, the session itself replays, reconnects and falls back to HTTP.

Rows: a row with an ``input`` (text, or a list of input item dicts) is one
request; a row with ``turns`` (a list of user messages) is one conversation,
run whole, turn by turn, inside one call: it stays on its actor and its
socket, and each turn continues the previous one. Request fields common to all
rows are ``request_fields`` (and ``model``); a ``fields_column`` may hold
per-row fields (a mapping, or a JSON object as text) that replace them.

Results: the batch comes back with its own columns followed by
:data:`RESULT_COLUMNS`, one value per row: the (last) response's id,
``output_text`` and ``status``, the usage tokens (summed over the turns of a
conversation), the text and id of every turn, and ``error_type`` /
``error_message`` when the row failed: an exception (``status`` is then
``"error"``; ``error_type`` is its class, e.g. ``BadRequestError``) or a
``failed`` response (``error_type`` is its code). A failed row never fails the
batch, unless ``raise_on_error=True``.

The API key: taken from the worker's environment (``OPENAI_API_KEY``, or the
variable ``api_key_env`` names; on a cluster, set it in the nodes' environment
or in the ``env_vars`` of a ``runtime_env``, given to ``ray.init`` or as a
``map_batches`` keyword), or passed as ``api_key`` (then it is
pickled with the actor's constructor arguments). It is never put into the
Dataset, and never shown by a ``repr``, a result cell or a log line.

What this module must never do: import Ray when it is imported (it imports Ray
when a recipe is made, and raises ``ImportError`` naming the ``ray`` extra when
Ray is missing); schedule, retry or restart anything itself (Ray and the
session do); let one row's failure end another row; put the API key in a row,
a ``repr``, an error message or a log line.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import attrs

from .._protocol.routing import MAX_ACTIVE_RESPONSES
from ..client import OpenAI
from ..errors import OpenAIWSError, SessionClosedError
from ..models import Response, ResponseCreateRequest
from ..session import Session

__all__ = ["INSTALL_HINT", "RESULT_COLUMNS", "OpenAIResponses"]

INSTALL_HINT = 'pip install "openai-ws[ray]"'
"""What to run when Ray is missing (the extra installs ``ray[data]``)."""

RESULT_COLUMNS: Tuple[str, ...] = (
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
"""The columns appended to every batch, in this order (each after ``prefix``)."""

_STRING, _INT, _LIST = "string", "int", "list"
_KINDS = {
    "input_tokens": _INT,
    "output_tokens": _INT,
    "total_tokens": _INT,
    "turn_texts": _LIST,
    "turn_ids": _LIST,
}
"""The Arrow kind of each result column that is not text (``string``)."""

_FROM_ROWS = ("input", "previous_response_id")
"""Request fields that come from each row, never from ``request_fields``."""


def _require_ray() -> None:
    """Import Ray, or raise the ImportError that says how to install it."""
    try:
        importlib.import_module("ray")
    except ImportError as exc:
        raise ImportError(
            f"openai_ws.integrations.ray needs Ray Data: {INSTALL_HINT} "
            '(or pip install "ray[data]")'
        ) from exc


@attrs.frozen
class _Outcome:
    """What one row got: the values of its result columns, and the error to re-raise."""

    response_id: Optional[str] = None
    output_text: Optional[str] = None
    status: Optional[str] = "error"
    input_tokens: Optional[int] = None
    output_tokens: Optional[int] = None
    total_tokens: Optional[int] = None
    turn_texts: List[str] = attrs.field(factory=list)
    turn_ids: List[str] = attrs.field(factory=list)
    error_type: Optional[str] = None
    error_message: Optional[str] = None
    exception: Optional[Exception] = attrs.field(default=None, eq=False, repr=False)


@attrs.frozen
class _Turns:
    """A conversation row: its user turns and the request fields of every turn."""

    turns: List[str]
    defaults: Dict[str, Any]


_Job = Union[ResponseCreateRequest, _Turns, Exception]
"""A row made ready: one request, one conversation, or why the row cannot be sent."""


class OpenAIResponses:
    """A ``Dataset.map_batches`` class: each row of a batch answered on the actor's session.

    Give the arguments as ``fn_constructor_kwargs`` (Ray makes one instance per
    actor). ``base_url``/``api_key`` and ``client_options`` make the
    :class:`~openai_ws.OpenAI` client (what is not given comes from the worker's
    ``OPENAI_*`` environment; ``api_key_env`` names another variable for the
    key); ``session_options`` are :meth:`~openai_ws.OpenAI.ws_session`'s
    keywords. ``model`` and ``request_fields`` are sent with every request;
    ``fields_column`` names a column of per-row fields over them. A row's
    ``input_column`` makes one request, its ``turns_column`` one conversation.
    ``max_in_flight`` bounds the requests a batch runs at once; ``timeout``
    bounds each request (each turn); ``raise_on_error`` fails the batch with
    the first failed row's exception instead of reporting it in the error
    columns. ``prefix`` is put before every result column's name.

    The instance opens its session at once (bad settings fail here, before any
    row) and closes it in :meth:`close`, on ``with``'s exit, or when Ray drops
    the actor. It is thread-safe: Ray may run several batches at once in one
    actor (``max_concurrent_calls_per_actor``); they share the session.
    """

    def __init__(
        self,
        *,
        model: Optional[str] = None,
        request_fields: Optional[Mapping[str, Any]] = None,
        base_url: Optional[str] = None,
        api_key: Optional[str] = None,
        api_key_env: str = "OPENAI_API_KEY",
        client_options: Optional[Mapping[str, Any]] = None,
        session_options: Optional[Mapping[str, Any]] = None,
        input_column: str = "input",
        turns_column: str = "turns",
        fields_column: Optional[str] = None,
        max_in_flight: int = MAX_ACTIVE_RESPONSES,
        timeout: Optional[float] = None,
        raise_on_error: bool = False,
        prefix: str = "",
    ) -> None:
        _require_ray()
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        fields = dict(request_fields or {})
        if model is not None:
            fields["model"] = model
        for name in _FROM_ROWS:
            if name in fields:
                raise ValueError(f"{name} comes from each row, not from request_fields")
        ResponseCreateRequest(**fields)  # a misspelt or mistyped field fails now
        client_options = dict(client_options or {})
        for name in ("api_key", "base_url"):
            if name in client_options:
                raise ValueError(f"pass {name} as its own argument, not in client_options")
        key = api_key if api_key is not None else os.environ.get(api_key_env)
        if not key:
            raise OpenAIWSError(
                f"an API key is required: set {api_key_env} in the workers' environment (the "
                "nodes', or a runtime_env's env_vars: ray.init(runtime_env=...) or "
                "map_batches(..., runtime_env=...)) or pass api_key=..."
            )
        self._fields = fields
        self._columns = (input_column, turns_column, fields_column)
        self._max_in_flight = max_in_flight
        self._timeout = timeout
        self._raise_on_error = raise_on_error
        self._names = tuple(prefix + name for name in RESULT_COLUMNS)
        self._key = _Secret(key)
        self._client = OpenAI(api_key=key, base_url=base_url, **client_options)
        try:
            self._session: Session = self._client.ws_session(**dict(session_options or {}))
        except BaseException:
            self._client.close()
            raise

    # -- lifetime ---------------------------------------------------------------

    @property
    def session(self) -> Session:
        """The actor's session (its :attr:`~openai_ws.Session.stats` and ``usage``)."""
        return self._session

    def close(self) -> None:
        """Close the session and the HTTP pool; idempotent."""
        session = getattr(self, "_session", None)
        if session is not None:
            session.close()
        client = getattr(self, "_client", None)
        if client is not None:
            client.close()

    def __enter__(self) -> OpenAIResponses:
        """The recipe itself (for direct use: ``with OpenAIResponses(...) as answer:``)."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the recipe."""
        self.close()

    def __del__(self) -> None:
        """Close the session when Ray drops the UDF (a graceful actor pool shutdown does)."""
        with contextlib.suppress(Exception):  # at interpreter shutdown, anything may be gone
            self.close()

    def __repr__(self) -> str:
        """Where and which model; never the key."""
        client = getattr(self, "_client", None)
        where = client.base_url if client is not None else "?"
        model = getattr(self, "_fields", {}).get("model")
        return f"<openai_ws OpenAIResponses base_url={where!r} model={model!r}>"

    # -- one batch ---------------------------------------------------------------

    def __call__(self, batch: Any) -> Any:
        """Answer every row of ``batch``; return it with :data:`RESULT_COLUMNS` appended.

        ``batch`` is what ``map_batches`` passes: a dict of columns (numpy), a
        pandas DataFrame or a pyarrow Table. A DataFrame comes back a DataFrame,
        anything else a pyarrow Table, with the result columns typed (text,
        int64, lists of text) whatever the batch holds.
        """
        if self._session.closed:
            raise SessionClosedError("the recipe was closed")
        if _is_pandas(batch):
            frame = batch
            names = [str(name) for name in frame.columns]
            self._check_columns(names, len(frame))
            cells = {n: [_plain(v) for v in frame[n].tolist()] for n in self._present(names)}
            outcomes = self._answer(cells, len(frame))
            return _with_pandas_columns(frame, self._names, outcomes)
        table = _as_table(batch)
        if _is_pandas(table):  # a dict Ray could not turn into Arrow
            return self(table)
        self._check_columns(list(table.column_names), table.num_rows)
        cells = {
            n: [_plain(v) for v in table.column(n).to_pylist()]
            for n in self._present(table.column_names)
        }
        outcomes = self._answer(cells, table.num_rows)
        return _with_arrow_columns(table, self._names, outcomes)

    def _present(self, names: Sequence[str]) -> List[str]:
        """The row columns this recipe reads that the batch has."""
        return [name for name in self._columns if name is not None and name in names]

    def _check_columns(self, names: Sequence[str], rows: int) -> None:
        """Refuse a batch this recipe cannot read, or whose columns its results would hide."""
        input_column, turns_column, fields_column = self._columns
        if rows and input_column not in names and turns_column not in names:
            raise ValueError(
                f"the batch has neither an {input_column!r} nor a {turns_column!r} column "
                f"(it has {', '.join(map(repr, names)) or 'none'}): pass input_column=... "
                "or turns_column=..."
            )
        if rows and fields_column is not None and fields_column not in names:
            raise ValueError(f"the batch has no {fields_column!r} column (fields_column)")
        clash = sorted(set(names) & set(self._names))
        if clash:
            raise ValueError(
                f"the batch already has column(s) {', '.join(map(repr, clash))}, which the "
                "recipe adds: rename them, or pass prefix=... to name the results apart"
            )

    def _answer(self, cells: Mapping[str, List[Any]], rows: int) -> List[_Outcome]:
        """One outcome per row, in row order; single requests and conversations concurrently."""
        input_column, turns_column, fields_column = self._columns
        nothing: List[Any] = [None] * rows
        jobs = [
            self._job(i, n, f)
            for i, n, f in zip(
                cells.get(input_column, nothing),
                cells.get(turns_column, nothing),
                cells.get(fields_column or "", nothing),
            )
        ]
        outcomes: List[Optional[_Outcome]] = [
            _failed(job) if isinstance(job, Exception) else None for job in jobs
        ]
        singles = [(i, j) for i, j in enumerate(jobs) if isinstance(j, ResponseCreateRequest)]
        talks = [(i, j) for i, j in enumerate(jobs) if isinstance(j, _Turns)]
        # Share max_in_flight between the two kinds, in proportion (at least one each).
        both = len(singles) + len(talks)
        talk_slots = max(1, self._max_in_flight * len(talks) // both) if talks else 0
        single_slots = max(1, self._max_in_flight - talk_slots)
        pool = ThreadPoolExecutor(talk_slots, "openai_ws-ray-turns") if talks else None
        try:
            futures = [(i, pool.submit(self._converse, j)) for i, j in talks] if pool else []
            if singles:
                # Consumed whole: a map generator left suspended keeps its pool's threads.
                answers = list(
                    self._session.map(
                        [request for _, request in singles],
                        concurrency=single_slots,
                        timeout=self._timeout,
                        return_exceptions=True,
                    )
                )
                for (i, _), answer in zip(singles, answers):
                    outcomes[i] = (
                        _failed(answer) if isinstance(answer, Exception) else _answered([answer])
                    )
            for i, future in futures:
                outcomes[i] = future.result()
        finally:
            if pool is not None:
                pool.shutdown(wait=True)
        done = [self._scrubbed(outcome) for outcome in outcomes if outcome is not None]
        if self._raise_on_error:
            for outcome in done:
                if outcome.exception is not None:
                    raise outcome.exception
        return done

    def _job(self, given: Any, turns: Any, row_fields: Any) -> _Job:
        """What a row asks for, or the exception that says why it cannot be sent."""
        input_column, turns_column, _ = self._columns
        try:
            fields = {**self._fields, **_row_fields(row_fields)}
            if turns is not None:
                if given is not None:
                    raise ValueError(
                        f"the row has both {input_column!r} and {turns_column!r}: give one"
                    )
                if (
                    not isinstance(turns, list)
                    or not turns
                    or not all(isinstance(t, str) for t in turns)
                ):
                    raise ValueError(f"{turns_column!r} must be a non-empty list of user messages")
                for name in _FROM_ROWS:
                    if name in fields:
                        raise ValueError(f"{name} cannot be set for a conversation row")
                return _Turns(turns=turns, defaults=fields)
            if given is None:
                raise ValueError(f"the row has no {input_column!r} (and no {turns_column!r})")
            return ResponseCreateRequest(**{**fields, "input": given})
        except Exception as exc:  # the row's own error, reported in its columns
            return exc

    def _converse(self, job: _Turns) -> _Outcome:
        """Run one conversation row turn by turn; stop at an exception or a failed turn."""
        responses: List[Response] = []
        try:
            conversation = self._session.conversation(**job.defaults)
            for turn in job.turns:
                response = conversation.send(turn, timeout=self._timeout)
                responses.append(response)
                if response.status == "failed":
                    break
        except Exception as exc:
            return _answered(responses, exc)
        return _answered(responses)

    def _scrubbed(self, outcome: _Outcome) -> _Outcome:
        """``outcome`` with the API key cut out of its error text (the library never puts it
        there; this keeps a result cell from ever being the first place it shows)."""
        message = outcome.error_message
        if message is None or not self._key.within(message):
            return outcome
        return attrs.evolve(outcome, error_message=self._key.cut(message))


class _Secret:
    """The API key, kept to scrub text; its ``repr`` shows nothing of it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def within(self, text: str) -> bool:
        """True if ``text`` holds the secret."""
        return bool(self._value) and self._value in text

    def cut(self, text: str) -> str:
        """``text`` with the secret replaced by ``***``."""
        return text.replace(self._value, "***")

    def __repr__(self) -> str:
        """Nothing of the secret."""
        return "<secret>"


# -- rows -----------------------------------------------------------------------------------


def _plain(value: Any, top: bool = True) -> Any:
    """A cell as plain Python: numpy scalars and arrays become Python values and lists, a
    missing cell (``None``, NaN, ``pd.NA``) ``None``, and keys of a mapping whose value is
    null are dropped (an Arrow struct column gives a row the keys of every other row)."""
    if value is None or type(value).__name__ == "NAType":
        return None
    if not isinstance(value, (str, bytes)) and hasattr(value, "tolist"):
        value = value.tolist()  # numpy scalar or array
    if top and isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (list, tuple)):
        return [_plain(item, False) for item in value]
    if isinstance(value, Mapping):
        plain = {str(k): _plain(v, False) for k, v in value.items()}
        return {k: v for k, v in plain.items() if v is not None}
    return value


def _row_fields(value: Any) -> Dict[str, Any]:
    """A row's own request fields: a mapping, a JSON object as text, or nothing."""
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ValueError(f"the row's fields are not JSON: {exc}") from None
    if not isinstance(value, Mapping):
        raise TypeError(f"the row's fields must be a mapping or a JSON object, got {value!r}")
    return dict(value)


# -- outcomes -------------------------------------------------------------------------------


def _failed(exc: Exception) -> _Outcome:
    """The outcome of a row that raised ``exc`` before any answer."""
    return _answered([], exc)


def _answered(responses: Sequence[Response], exc: Optional[Exception] = None) -> _Outcome:
    """The outcome of a row whose answered responses are ``responses`` and that raised ``exc``."""
    last = responses[-1] if responses else None
    error_type: Optional[str] = None
    error_message: Optional[str] = None
    status = "error" if exc is not None or last is None else last.status
    if exc is not None:
        error_type, error_message = type(exc).__name__, str(exc)
    elif last is not None and last.status == "failed":
        error_type = (last.error.code if last.error else None) or "failed"
        error_message = last.error.message if last.error else ""
    usages = [r.usage for r in responses if r.usage is not None]
    return _Outcome(
        response_id=last.id if last is not None else None,
        output_text=last.output_text if last is not None else None,
        status=status,
        input_tokens=sum(u.input_tokens for u in usages) if usages else None,
        output_tokens=sum(u.output_tokens for u in usages) if usages else None,
        total_tokens=sum(u.total_tokens for u in usages) if usages else None,
        turn_texts=[r.output_text for r in responses],
        turn_ids=[r.id for r in responses],
        error_type=error_type,
        error_message=error_message,
        exception=exc,
    )


# -- batch formats --------------------------------------------------------------------------


def _is_pandas(batch: Any) -> bool:
    """True for a pandas DataFrame (checked without importing pandas)."""
    return type(batch).__module__.split(".")[0] == "pandas" and hasattr(batch, "columns")


def _as_table(batch: Any) -> Any:
    """A pyarrow Table of ``batch`` (a Table, or a dict of columns as Ray converts it)."""
    if type(batch).__module__.split(".")[0] == "pyarrow" and hasattr(batch, "column_names"):
        return batch
    if not isinstance(batch, Mapping):
        raise TypeError(
            "expected a batch as map_batches passes it: a dict of columns, a pandas "
            f"DataFrame or a pyarrow Table, got {type(batch).__name__}"
        )
    block = importlib.import_module("ray.data.block")
    return block.BlockAccessor.batch_to_block(dict(batch))


def _arrow_type(pa: Any, name: str) -> Any:
    """The pyarrow type of result column ``name``: text, int64 or a list of text."""
    kind = _KINDS.get(name, _STRING)
    if kind == _INT:
        return pa.int64()
    if kind == _LIST:
        return pa.list_(pa.string())
    return pa.string()


def _arrays(names: Sequence[str], outcomes: Sequence[_Outcome]) -> List[Tuple[str, Any]]:
    """``(column name, typed pyarrow array)`` of every result column."""
    pa = importlib.import_module("pyarrow")
    arrays = []
    for column, field in zip(names, RESULT_COLUMNS):
        values = [getattr(outcome, field) for outcome in outcomes]
        arrays.append((column, pa.array(values, type=_arrow_type(pa, field))))
    return arrays


def _with_arrow_columns(table: Any, names: Sequence[str], outcomes: Sequence[_Outcome]) -> Any:
    """``table`` plus the result columns."""
    for name, array in _arrays(names, outcomes):
        table = table.append_column(name, array)
    return table


def _with_pandas_columns(frame: Any, names: Sequence[str], outcomes: Sequence[_Outcome]) -> Any:
    """``frame`` plus the result columns, as Arrow-backed columns where pandas has them."""
    pd = importlib.import_module("pandas")
    arrow_backed = getattr(getattr(pd, "arrays", None), "ArrowExtensionArray", None)
    added = {}
    for name, array in _arrays(names, outcomes):
        data = arrow_backed(array) if arrow_backed is not None else array.to_pylist()
        added[name] = pd.Series(data, index=frame.index)
    return frame.assign(**added)
