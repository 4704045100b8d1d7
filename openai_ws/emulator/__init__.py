"""A local emulator of the OpenAI Responses API: WebSocket mode plus HTTP/SSE.

What it is for: a real aiohttp server on 127.0.0.1 that speaks the wire
protocol of ``docs/protocol.md`` (sections 1-8 and 10), for the tests, examples and
benchmarks of ``openai_ws`` and for offline use. It is an independent
implementation that speaks JSON dicts; it must never import the client's
models, sessions or transports (nothing from ``openai_ws`` outside this
subpackage), and it needs the ``emulator`` extra (aiohttp, trustme).

Quick start::

    from openai_ws.emulator import Emulator, EmulatorConfig

    with Emulator(api_key="sk-emulator", config=EmulatorConfig(ttft=0.05)) as emu:
        emu.base_url   # "http://127.0.0.1:PORT/v1"
        emu.ws_url     # "ws://127.0.0.1:PORT/v1/responses"

With ``tls=True`` it serves ``https``/``wss`` and ``emu.ca_file`` is the CA to
trust; ``cert_dir=DIR`` keeps that file at ``DIR/emulator-ca.pem`` across
restarts instead of a new temporary directory each time.

Command line: ``python -m openai_ws.emulator --port 8765`` prints the base URL
on its first line and serves until Ctrl-C (``--help`` lists every flag with its
default; ``--tls --cert-dir DIR`` as above). For pytest, the fixtures of
``openai_ws.pytest_plugin`` start and stop emulators per test or per session.

Default answer: the text of the last user input (or ``"Tool said: <output>"``
when the input ends with ``function_call_output`` items), streamed one word-token per delta so that
the deltas concatenate to the exact text; ``max_output_tokens`` truncates and
ends with ``response.incomplete``; ``generate: false`` is a warm-up with an
empty output. Lanes, limits, the continuation cache, quirks and errors follow
docs/protocol.md; the server-wide switches are the fields of ``EmulatorConfig``.

Per-request scripting
---------------------

Tests drive answers and faults through the real protocol with string values in
the request's ``metadata`` (which is echoed back on the Response as usual). All
keys are optional; an unknown ``emulator_*`` key is a 400 error so typos fail
loudly. "Attempts" of a request are counted server-wide per identical body,
ignoring ``stream_id``, ``stream``, ``stream_options`` and ``type``, over
WebSocket and HTTP alike; when the parent is at hand, ``input`` and
``previous_response_id`` count by the context they make, so resending the
whole history instead of ``previous_response_id`` + new items is the next
attempt of the same request. "After N events" means once exactly N events of the
response have been sent (``N`` = 0: before ``response.created``).

=============================  ================================================================
key                            effect
=============================  ================================================================
``emulator_text``              reply with exactly this text instead of the echo
``emulator_reply``             ``context_digest``: a text answer is ``ctx:<count>:<16 hex>``, a
                               digest of the whole context the server sees for this response
                               (parent chain + input + ``instructions``; see "Proof of
                               context" below); it wins over ``emulator_text``, tool calls
                               and refusals still answer as scripted. ``echo``: the default
``emulator_output_tokens``     N: repeat/truncate the reply to exactly N token deltas
``emulator_ttft``              seconds before the first output item (overrides ``ttft``)
``emulator_token_interval``    seconds between deltas (overrides ``token_interval``)
``emulator_refusal``           reply is a refusal with this text (``refusal`` content part,
                               ``response.refusal.delta``/``.done``)
``emulator_function_call``     JSON ``{"name": ..., "arguments": {...}, "call_id"?: ...}`` or a
                               JSON list of them (parallel calls): ``function_call`` items whose
                               arguments stream in a few deltas; no message item. Not
                               applied when the input ends with ``function_call_output``
                               items: those get the text answer ``Tool said: ...``
``emulator_reasoning``         a reasoning summary text: a ``reasoning`` item (summary part and
                               text events) before the other output
``emulator_error``             answer with an error before any event: ``rate_limit_exceeded``
                               (429, WS ``error.headers`` with ``retry-after-ms`` and
                               ``x-ratelimit-*``; HTTP ``Retry-After`` + ``retry-after-ms``),
                               ``insufficient_quota`` (429, no hint), ``server_error`` (500,
                               code null), ``server_is_overloaded`` (503), ``invalid_prompt``
                               (400), any other code: 400 with that code
``emulator_retry_after``       seconds of the rate-limit hint (default 0.05)
``emulator_error_times``       N: only the first N attempts get ``emulator_error``
``emulator_fail``              an error code: ``response.created``, ``response.in_progress``,
                               then ``response.failed`` with ``response.error {code, message}``
``emulator_error_after``       N: a mid-stream ``error`` event (``server_error``, 500) after N
                               events; it ends the response (stored as failed)
``emulator_close_code``        WS only: close the socket with this code and an empty reason;
                               1006 drops TCP without a close frame. HTTP ignores it
``emulator_close_after``       N events sent before that close (default 0: before any event)
``emulator_close_times``       N: only the first N attempts are closed
``emulator_malformed_after``   N: after N events send one text frame that is not JSON, then go
                               on (SSE: a ``data:`` line that is not JSON)
``emulator_binary_after``      N: same with a binary frame (ignored over HTTP)
``emulator_unknown_after``     N: same with ``{"type": "response.future_thing", ...}``, which
                               takes a ``sequence_number`` and carries the lane's ``stream_id``
``emulator_steer_fail``        a steer failure code: every ``response.steer`` of this response
                               fails with it (``response_not_active``, ...), except
                               ``successor_creation_failed``: accepted, the response ends
                               steered, then ``response.steer.failed`` (same id), no successor
=============================  ================================================================

Steering (WebSocket only, docs/protocol.md sections 2.4, 3.5 and 10):
``{"type": "response.steer", "previous_response_id": <running id>, "input": ...}``
(those three fields only; ``input`` a non-empty string or a non-empty list of
user messages whose content is a string or ``input_text``/``input_image``/
``input_file`` parts) for a response running on this connection, whose model
starts with one of ``EmulatorConfig.steering_models`` (``gpt-6``) and which uses
neither ``conversation`` nor ``context_management``, is answered
``response.steer.accepted`` ``{steer: {id, previous_response_id}}``. Before the
next text delta or output item the response then ends with
``response.incomplete`` (``incomplete_details.reason: "steered"``; ``output`` is
what was sent, a message cut short has status ``incomplete``), and its
successor starts at once on the same lane: the steered response's settings,
``previous_response_id`` = the steered id, ``input`` = the user messages of every
steer accepted so far, in order (answered like any input: the echo of the last
message), with the steered response's ``emulator_ttft``/``emulator_token_interval``
but none of its other ``emulator_*`` keys. A steer accepted after the last such
boundary lets the response complete first. A steer of the successor steers the
successor. A response with ``function_call`` output is never cut short: after
its ``response.completed`` each steer gets ``response.steer.pending``
``{reason: "waiting_for_required_input", required_input: [{type:
"function_call_output", call_id, name}], steer}``, so does a steer that arrives
while it waits, and the next ``response.create`` on the connection with that
``previous_response_id`` gets the queued messages before its own input.
Failures are ``response.steer.failed`` ``{error: {type: "invalid_request_error",
code, message}, steer: {id?, previous_response_id, input}}`` with the input as
sent: ``invalid_input``, ``response_not_found`` (not run on this connection; the
last 1024 ended responses are remembered), ``steering_not_supported``,
``too_many_pending_steers`` (over ``EmulatorConfig.max_pending_steers``, 4),
``response_already_completed`` (completed, waiting for nothing),
``response_not_active`` (ended otherwise, steered included), or the code of
``emulator_steer_fail``. Steering events take the target response's next
``sequence_number`` and carry its ``stream_id``.

Continuation: every connection caches the latest completed/incomplete response
of each lane; a ``previous_response_id`` equal to any lane's latest is a cache
hit, otherwise ``store: true`` responses (kept until the ``Emulator`` object
goes away, across restarts) load from the store after ``store_lookup_delay``
plus ``history_rebuild_base`` + ``history_rebuild_per_item`` x the items of the
parent chain (the cost model of the benchmarks; 0 by default; a cache hit pays
nothing), and anything else is ``previous_response_not_found``. A request whose parent is
the latest of its *own* lane and that fails (an error before it starts, a
mid-stream ``error``, ``response.failed``) evicts that parent; a failed fork
from another lane does not. HTTP uses the store only.

Proof of context: with ``emulator_reply: "context_digest"`` the reply proves
which context the server saw, so a test can check that a conversation
recovered from a fault (new socket, HTTP fallback, whole-history resend) gave
the server exactly the context of a fault-free run. Items are canonicalised
(ids, statuses, annotations and part types ignored; a string input is one
user message; a ``compaction`` item stands for the context it replaced), then
hashed in order; the exact form is in ``openai_ws.emulator._context``, and
``context_digest(items, instructions=None)`` computes the expected reply from
the whole history as plain item dicts.

Compaction: an input list ending with ``{"type": "compaction_trigger"}`` (no
``id``; anywhere else it is a 400 "The 'compaction_trigger' item must be the
final input item.") answers with one ``compaction`` output item
``{"type", "id": "cmp_...", "encrypted_content"}`` standing for the whole
context; continuing from that response, or resending ``[compaction item, new
items...]``, sees that context (and counts one input token for it).
``POST /v1/responses/compact`` takes ``{model, input, previous_response_id?,
instructions?}`` and returns ``{id, object: "response.compaction", created_at,
output: [user messages..., compaction item], usage}``: a new input window,
not a response id to continue from.

Stored responses over HTTP: ``GET /v1/responses/{id}`` (``stream=true``
streams its events again as SSE, ``starting_after=N`` skips up to sequence
number N, ``include_obfuscation=false``), ``GET
/v1/responses/{id}/input_items`` (the items used to generate it: the chain's
inputs and outputs, then its input; ``after``, ``limit`` 1-100 default 20,
``order`` ``asc``/``desc`` default ``desc``; ``{object: "list", data,
first_id, last_id, has_more}``), ``DELETE``, ``POST .../cancel``. HTTP
streamed deltas carry a random ``obfuscation`` string unless
``stream_options.include_obfuscation`` is false (WebSocket deltas never do); a
mid-stream SSE ``error`` is flat ``{type, code, message, param,
sequence_number}`` (``EmulatorConfig.sse_error_shape = "nested"`` for the
other shape). ``EmulatorConfig.decimal_sampling_rule`` says which sampling
numbers trip the decimal close: ``"non_integer"`` (default; ``1.0`` passes) or
``"any_fraction"`` (any JSON number with a fraction or exponent, ``1.0`` too).

Test helpers on ``Emulator``: ``stored(id)``, ``disconnect_all(code)`` (1006
drops TCP), ``reset_attempts()``, ``ssl_context()``, ``client_cert_pem()`` (with
``Emulator(tls=True, client_auth=True)``, mutual TLS), ``stats`` (see
``EmulatorStats``), and the live ``config``.

Choices where the service is undocumented (docs/protocol.md section 9): after
``websocket_connection_limit_reached`` the socket closes with 1000 and an empty
reason (``EmulatorConfig.connection_limit_close_code``); other lanes' running
responses are cut off by that close. ``sequence_number`` restarts at 0 for every
response. ``max_output_tokens`` accepts values below the service's minimum of
16. A response whose socket goes away keeps generating server-side: with
``store: true`` it is stored as finished. ``usage.input_tokens`` counts word
tokens of the instructions and input plus the parent's ``total_tokens``, which
also fill ``cached_tokens`` when the parent came from the connection cache.
A binary client frame holding UTF-8 JSON is accepted like a text frame.
Steering: the safe boundaries (before a text delta or an output item, never in a
tool-call response), no ``.done`` events for the item cut short before
``response.incomplete``, ``sequence_number`` 0 and no ``stream_id`` when the target
is unknown, and ``max_pending_steers = 4`` are our choices. Every close the
server initiates waits for the peer's close frame (2 s at most) before closing
TCP; ``stop()`` closes open sockets with 1001.
"""

from ._config import EmulatorConfig
from ._context import context_digest
from ._server import Emulator
from ._stats import EmulatorStats

__all__ = ["Emulator", "EmulatorConfig", "EmulatorStats", "context_digest"]
