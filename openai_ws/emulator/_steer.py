"""Steering bookkeeping of one WebSocket connection, and the ``response.steer.*`` events.

docs/protocol.md sections 2.4, 3.5 and 10 (the official SDK's
``response_steer_event.py`` and ``response_steer_{accepted,pending,failed}_event.py``
types, and the steering guide): a client sends ``response.steer`` with only
``type``, ``previous_response_id`` (the running response) and ``input`` (a string or
a non-empty list of user messages). The server answers ``response.steer.accepted``
(it owns the input now; the successor's ``response.created`` commits it), or
``response.steer.failed`` with the original input, and after a response that
stopped for client-owned tool output one ``response.steer.pending`` per queued
steer. Steering events carry the target response's ``stream_id`` and take its
next ``sequence_number``.

A ``SteerControl`` is the runner's ``Control`` for one response: it decides the
safe boundaries where an accepted steer stops the run (before a text delta or a
new output item; never inside a tool-call response), lends the run's sequence
to steering events and remembers how the response ended. ``SteerBook`` holds
the controls of a connection (running ones, and the last ``MAX_ENDED`` that
ended) and the steering input queued for responses waiting for tool output.
Everything else here builds dicts. This module must never perform I/O, send
anything, sleep or read a clock: ``_ws`` sends what it returns.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ._runner import Numbering
from ._scenario import Scenario, Step, random_id
from ._script import Script

__all__ = [
    "MAX_ENDED",
    "Steer",
    "SteerBook",
    "SteerControl",
    "Verdict",
    "pending_event",
    "prepend_input",
    "steer_failed_event",
    "steered_final",
    "successor_body",
    "successor_script",
]

MAX_ENDED = 1024
"""Ended responses a connection remembers for steering answers; older ids are unknown."""

_FIELDS = ("type", "previous_response_id", "input")
_PART_TYPES = frozenset({"input_text", "input_image", "input_file"})
# Steps before which an accepted steer may stop a run: nothing is half-sent there.
_BOUNDARIES = frozenset({"response.output_text.delta", "response.output_item.added"})
_DELTAS = frozenset(
    {
        "response.output_text.delta",
        "response.refusal.delta",
        "response.function_call_arguments.delta",
        "response.reasoning_summary_text.delta",
    }
)
_SUCCESSOR_FAILED = "successor_creation_failed"


@dataclass(frozen=True)
class Steer:
    """One accepted ``response.steer``: its id, target, original input and user messages."""

    id: str
    target: str
    input: Any
    items: Tuple[Dict[str, Any], ...]

    def ref(self) -> Dict[str, Any]:
        """The ``steer`` object of accepted/pending events: ``{id, previous_response_id}``."""
        return {"id": self.id, "previous_response_id": self.target}


@dataclass
class Verdict:
    """Events answering one ``response.steer``, to be numbered by ``control`` (if any)."""

    control: Optional[SteerControl]
    events: List[Dict[str, Any]]


class SteerControl:
    """Steering state of one response; the runner's ``Control`` while it runs.

    ``phase``: ``running`` (steers are accepted), ``ending`` (the terminal event
    or the stop was decided; the successor is being set up), ``waiting`` (it
    completed with ``function_call`` items and waits for their output),
    ``completed`` or ``inactive`` (ended otherwise: incomplete, steered, failed,
    cut off).
    """

    def __init__(
        self,
        scenario: Scenario,
        stream_id: Optional[str],
        body: Mapping[str, Any],
        script: Script,
    ) -> None:
        self.response_id = scenario.response_id
        self.stream_id = stream_id
        self.scenario: Optional[Scenario] = scenario
        self.model = str(body.get("model"))
        self.conversation = body.get("conversation") is not None
        self.context_management = bool(body.get("context_management"))
        self.fail_code = script.steer_fail
        self.fail_successor = script.steer_fail == _SUCCESSOR_FAILED
        output = scenario.final.get("output") or []
        # A tool-call response has no safe boundary: its steers wait for the tool output.
        self.stoppable = not required_input(output)
        self.lock = asyncio.Lock()
        self.stop_wanted = False
        self.phase = "running"
        self.final_status: Optional[str] = None
        self.accepted: List[Steer] = []
        self.to_pend: List[Steer] = []
        self.required: List[Dict[str, Any]] = []
        self.stopped_at: Optional[int] = None
        self._numbering: Optional[Numbering] = None
        self._sequence = 0

    # -- Control ------------------------------------------------------------------

    def bind(self, numbering: Numbering) -> None:
        """Share the run's sequence (``_runner.Control``)."""
        self._numbering = numbering

    def stop_here(self, index: int, event: Dict[str, Any]) -> bool:
        """Stop before a text delta or a new output item once a steer was accepted."""
        if not self.stoppable or event.get("type") not in _BOUNDARIES:
            return False
        self.stopped_at = index
        self.stop_wanted = False
        self.phase = "ending"
        self.final_status = "incomplete"
        return True

    def next_sequence(self) -> int:
        """The response's next ``sequence_number`` (call with ``lock`` held)."""
        numbering = self._numbering
        if numbering is None:
            value = self._sequence
            self._sequence += 1
            return value
        value = numbering.sequence
        numbering.sequence = value + 1
        return value

    # -- steering -----------------------------------------------------------------

    def unsupported(self, models: Sequence[str]) -> Optional[str]:
        """Why this response cannot be steered, or None."""
        if not any(self.model.startswith(prefix) for prefix in models):
            return f"The model '{self.model}' does not support steering."
        if self.conversation:
            return "Steering is not supported for responses that use 'conversation'."
        if self.context_management:
            return "Steering is not supported for responses that use 'context_management'."
        return None

    def accept(self, steer: Steer) -> None:
        """Take an accepted steer; it stops the run at the next safe boundary."""
        self.accepted.append(steer)
        if self.stoppable:
            self.stop_wanted = True

    def cut(self) -> None:
        """The run ended without a terminal event (mid-stream error, close): no more steers."""
        if self.phase == "running":
            self.phase = "ending"
            self.final_status = "failed"
            self.stop_wanted = False

    def take_accepted(self) -> List[Steer]:
        """The accepted steers not yet committed or queued (and forget them)."""
        steers, self.accepted = self.accepted, []
        return steers

    def release(self) -> None:
        """The response has ended: keep only what later steering answers need."""
        numbering = self._numbering
        if numbering is not None:
            self._sequence = numbering.sequence
            self._numbering = None
        self.scenario = None
        self.stop_wanted = False
        if self.phase in ("running", "ending"):
            self.phase = "completed" if self.final_status == "completed" else "inactive"


class SteerBook:
    """The steering state of one connection (event loop only)."""

    def __init__(self) -> None:
        self._running: Dict[str, SteerControl] = {}
        self._ended: OrderedDict[str, SteerControl] = OrderedDict()
        self._queued: Dict[str, List[Steer]] = {}

    def begin(self, control: SteerControl) -> None:
        """A response starts on this connection."""
        self._running[control.response_id] = control

    def get(self, response_id: str) -> Optional[SteerControl]:
        """The control of a response this connection ran (or runs), if remembered."""
        return self._running.get(response_id) or self._ended.get(response_id)

    def terminal(self, control: SteerControl, final: Mapping[str, Any]) -> None:
        """The run numbered its terminal event (``on_terminal``): no more stops."""
        status = str(final.get("status"))
        control.final_status = status
        control.stop_wanted = False
        required = required_input(final.get("output") or [])
        if status == "completed" and required:
            control.phase = "waiting"
            control.required = required
            if not control.fail_successor:
                control.to_pend = control.take_accepted()
                self._queued.setdefault(control.response_id, []).extend(control.to_pend)
        else:
            control.phase = "ending"

    def end(self, control: SteerControl) -> None:
        """The response (and what followed it in its task) is over."""
        control.release()
        self._running.pop(control.response_id, None)
        self._ended[control.response_id] = control
        while len(self._ended) > MAX_ENDED:
            old, _ = self._ended.popitem(last=False)
            self._queued.pop(old, None)

    def take_queued(self, parent_id: str) -> List[Dict[str, Any]]:
        """A create continues ``parent_id``: its queued steering input, in order (then none)."""
        control = self.get(parent_id)
        if control is not None and control.phase == "waiting":
            control.phase = "completed"
        steers = self._queued.pop(parent_id, [])
        return [dict(item) for steer in steers for item in steer.items]

    def clear(self) -> None:
        """Forget everything (the connection closed)."""
        self._running.clear()
        self._ended.clear()
        self._queued.clear()

    def decide(self, payload: Mapping[str, Any], *, models: Sequence[str], limit: int) -> Verdict:
        """Answer one ``response.steer`` (recording it when accepted)."""
        target = payload.get("previous_response_id")
        value = payload.get("input")
        control = self.get(target) if isinstance(target, str) else None

        def fail(code: str, message: str, steer_id: Optional[str] = None) -> Verdict:
            return Verdict(control, [steer_failed_event(code, message, target, value, steer_id)])

        extra = [key for key in payload if key not in _FIELDS]
        if extra:
            return fail(
                "invalid_input",
                f"Unknown parameter: '{extra[0]}'. A response.steer takes only 'type', "
                "'previous_response_id' and 'input'; the target response decides the lane.",
            )
        if not isinstance(target, str) or not target:
            return fail(
                "invalid_input",
                "'previous_response_id' must be the id of the running response to steer.",
            )
        if control is None:
            return fail(
                "response_not_found",
                f"Response '{target}' is not available for steering on this connection.",
            )
        problem, items = steer_input(value)
        if problem is not None:
            return fail("invalid_input", problem)
        reason = control.unsupported(models)
        if reason is not None:
            return fail("steering_not_supported", reason)
        if control.fail_code is not None and not control.fail_successor:
            scripted = f"Steering failed with '{control.fail_code}' (scripted by the emulator)."
            return fail(control.fail_code, scripted)
        if control.phase == "running":
            if len(control.accepted) >= limit:
                return fail("too_many_pending_steers", _too_many(target, limit))
            steer = Steer(random_id("steer_"), target, value, items)
            control.accept(steer)
            return Verdict(control, [steer_accepted_event(steer)])
        if control.phase == "waiting":
            queued = self._queued.setdefault(target, [])
            if len(queued) >= limit:
                return fail("too_many_pending_steers", _too_many(target, limit))
            steer = Steer(random_id("steer_"), target, value, items)
            if control.fail_successor:
                return Verdict(
                    control, [steer_accepted_event(steer), successor_failed_event(steer)]
                )
            queued.append(steer)
            return Verdict(
                control, [steer_accepted_event(steer), pending_event(steer, control.required)]
            )
        if control.final_status == "completed":
            return fail(
                "response_already_completed",
                f"Response '{target}' has already completed; steer the response that is "
                "running now.",
            )
        return fail("response_not_active", f"Response '{target}' is no longer active.")


def _too_many(target: str, limit: int) -> str:
    return f"Response '{target}' already has {limit} pending steers; wait until they are applied."


def steer_input(value: Any) -> Tuple[Optional[str], Tuple[Dict[str, Any], ...]]:
    """``(problem, user messages)``: a string or a non-empty list of user messages.

    Message content is a string or ``input_text``/``input_image``/``input_file``
    parts; tool outputs are not steering input (docs/protocol.md section 2.4).
    """
    if isinstance(value, str):
        if not value.strip():
            return "The steering input must not be empty.", ()
        return None, ({"type": "message", "role": "user", "content": value},)
    if not isinstance(value, list) or not value:
        return "'input' must be a string or a non-empty array of user messages.", ()
    items: List[Dict[str, Any]] = []
    for index, item in enumerate(value):
        param = f"input[{index}]"
        if not isinstance(item, dict):
            return f"'{param}' must be a user message object.", ()
        kind = item.get("type", "message")
        if kind != "message":
            return (
                f"'{param}' is a {kind!r} item: only user messages can steer a response "
                "(tool outputs are not supported).",
                (),
            )
        if item.get("role") != "user":
            return f"'{param}.role' must be 'user'.", ()
        problem = _content_problem(param, item.get("content"))
        if problem is not None:
            return problem, ()
        items.append(dict(item, type="message"))
    return None, tuple(items)


def _content_problem(param: str, content: Any) -> Optional[str]:
    if isinstance(content, str):
        return None
    if not isinstance(content, list) or not content:
        return f"'{param}.content' must be a string or a non-empty array of input parts."
    for index, part in enumerate(content):
        where = f"{param}.content[{index}]"
        if not isinstance(part, dict) or part.get("type") not in _PART_TYPES:
            return f"'{where}' must be an input_text, input_image or input_file part."
        if part["type"] == "input_text" and not isinstance(part.get("text"), str):
            return f"'{where}.text' must be a string."
    return None


# -- events -------------------------------------------------------------------------------


def steer_accepted_event(steer: Steer) -> Dict[str, Any]:
    """``response.steer.accepted`` (numbered and tagged by the caller)."""
    return {"type": "response.steer.accepted", "steer": steer.ref()}


def pending_event(steer: Steer, required: List[Dict[str, Any]]) -> Dict[str, Any]:
    """``response.steer.pending``: queued until the tool outputs in ``required`` arrive."""
    return {
        "type": "response.steer.pending",
        "reason": "waiting_for_required_input",
        "required_input": [dict(stub) for stub in required],
        "steer": steer.ref(),
    }


def steer_failed_event(
    code: str, message: str, target: Any, value: Any, steer_id: Optional[str] = None
) -> Dict[str, Any]:
    """``response.steer.failed`` with the original input (``id`` only once allocated)."""
    steer: Dict[str, Any] = {}
    if steer_id is not None:
        steer["id"] = steer_id
    steer["previous_response_id"] = target
    steer["input"] = value
    return {
        "type": "response.steer.failed",
        "error": {"type": "invalid_request_error", "code": code, "message": message},
        "steer": steer,
    }


def successor_failed_event(steer: Steer) -> Dict[str, Any]:
    """``successor_creation_failed`` for an accepted steer (same id, original input)."""
    return steer_failed_event(
        _SUCCESSOR_FAILED,
        "The steering input was accepted but its successor response could not be created.",
        steer.target,
        steer.input,
        steer.id,
    )


def required_input(output: Sequence[Any]) -> List[Dict[str, Any]]:
    """The ``function_call_output`` stubs a response's ``function_call`` items wait for."""
    return [
        {"type": "function_call_output", "call_id": item.get("call_id"), "name": item.get("name")}
        for item in output
        if isinstance(item, dict) and item.get("type") == "function_call"
    ]


# -- the steered response and its successor ---------------------------------------------------


def _cut(item: Dict[str, Any], text: str) -> Dict[str, Any]:
    """An output item that was still streaming when the run stopped."""
    item = dict(item, status="incomplete")
    kind = item.get("type")
    if kind == "message":
        part: Dict[str, Any] = {"type": "output_text", "annotations": [], "logprobs": []}
        part["text"] = text
        item["content"] = [part]
    elif kind == "function_call":
        item["arguments"] = text
    elif kind == "reasoning":
        item["summary"] = [{"type": "summary_text", "text": text}]
    return item


def partial_output(steps: Sequence[Step]) -> Tuple[List[Dict[str, Any]], int, int]:
    """``(output items, output tokens, reasoning tokens)`` of the steps that were sent."""
    items: Dict[int, Dict[str, Any]] = {}
    texts: Dict[int, List[str]] = {}
    tokens = reasoning = 0
    for _, event in steps:
        kind = event.get("type")
        index = event.get("output_index")
        if not isinstance(index, int):
            continue
        if kind == "response.output_item.added":
            items[index] = dict(event["item"])
            texts[index] = []
        elif kind == "response.output_item.done":
            items[index] = event["item"]
            texts.pop(index, None)
        elif kind in _DELTAS:
            tokens += 1
            if kind == "response.reasoning_summary_text.delta":
                reasoning += 1
            texts.setdefault(index, []).append(str(event.get("delta", "")))
    output = [
        _cut(items[index], "".join(texts[index])) if index in texts else items[index]
        for index in sorted(items)
    ]
    return output, tokens, reasoning


def steered_final(scenario: Scenario, stopped_at: int, completed_at: int) -> Dict[str, Any]:
    """The response object of ``response.incomplete`` with ``reason: "steered"``.

    Its output is what was sent before the stop (a message cut short is
    ``incomplete``); its usage counts only the output tokens sent.
    """
    output, tokens, reasoning = partial_output(scenario.steps[:stopped_at])
    usage = scenario.final.get("usage")
    input_tokens = int(usage.get("input_tokens", 0)) if isinstance(usage, dict) else 0
    details = usage.get("input_tokens_details") if isinstance(usage, dict) else None
    return dict(
        scenario.final,
        status="incomplete",
        incomplete_details={"reason": "steered"},
        output=output,
        completed_at=completed_at,
        usage={
            "input_tokens": input_tokens,
            "input_tokens_details": dict(details or {"cached_tokens": 0, "cache_write_tokens": 0}),
            "output_tokens": tokens,
            "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": input_tokens + tokens,
        },
    )


def successor_body(
    body: Mapping[str, Any], steered_id: str, steers: Sequence[Steer]
) -> Dict[str, Any]:
    """The steered response's settings, continuing it with every steer's messages in order."""
    successor = dict(body)
    successor["previous_response_id"] = steered_id
    successor["input"] = [dict(item) for steer in steers for item in steer.items]
    return successor


def successor_script(script: Script) -> Script:
    """The successor keeps the timing knobs only: no scripted fault fires twice."""
    return Script(ttft=script.ttft, token_interval=script.token_interval)


def prepend_input(body: Mapping[str, Any], items: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """``body`` with ``items`` before its own input (a string input is one user message)."""
    own = body.get("input")
    if isinstance(own, str):
        mine: List[Any] = [{"type": "message", "role": "user", "content": own}]
    elif isinstance(own, list):
        mine = list(own)
    else:
        mine = []
    return dict(body, input=list(items) + mine)
