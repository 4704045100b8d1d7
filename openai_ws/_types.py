"""Typed keyword arguments: the fields of :class:`~openai_ws.models.ResponseCreateRequest`.

``session.send(model=..., input=...)`` and the other methods that accept a
request's fields as keywords annotate them as ``**fields: Unpack[RequestFields]``
(PEP 692), so a type checker rejects a misspelt field (``temprature=``) or a
mistyped value where the call is written, not only when it runs. The value
types are exactly those of the request class's fields (a test keeps the two in
step). ``RunFields`` is the same set without ``tools``, whose keyword in
:meth:`~openai_ws.Session.run` means the Python callables.

``Unpack`` is needed only by type checkers (the modules that use it postpone
their annotations), so ``typing_extensions`` is imported under
``TYPE_CHECKING`` on Pythons before 3.11 and is no run-time dependency; type
checkers ship its stubs.

This module must never import anything but the standard library and
:mod:`openai_ws.models`, and holds no code.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence, TypedDict, Union

from .models import InputItem

if TYPE_CHECKING:
    if sys.version_info >= (3, 11):
        from typing import Unpack as Unpack  # noqa: PLC0414 - an explicit re-export
    else:
        from typing_extensions import Unpack as Unpack  # noqa: PLC0414

__all__ = ["RequestFields", "RunFields"]


class RunFields(TypedDict, total=False):
    """The request fields :meth:`~openai_ws.Session.run` takes as keywords (all but ``tools``)."""

    model: Optional[str]
    input: Optional[Union[str, Sequence[InputItem]]]
    instructions: Optional[str]
    previous_response_id: Optional[str]
    conversation: Optional[Union[str, Mapping[str, Any]]]
    store: Optional[bool]
    tool_choice: Optional[Union[str, Mapping[str, Any]]]
    parallel_tool_calls: Optional[bool]
    max_output_tokens: Optional[int]
    max_tool_calls: Optional[int]
    temperature: Optional[float]
    top_p: Optional[float]
    top_logprobs: Optional[int]
    truncation: Optional[str]
    reasoning: Optional[Mapping[str, Any]]
    text: Optional[Mapping[str, Any]]
    include: Optional[Sequence[str]]
    metadata: Optional[Mapping[str, str]]
    prompt: Optional[Mapping[str, Any]]
    prompt_cache_key: Optional[str]
    prompt_cache_options: Optional[Mapping[str, Any]]
    prompt_cache_retention: Optional[str]
    safety_identifier: Optional[str]
    user: Optional[str]
    service_tier: Optional[str]
    context_management: Optional[Sequence[Mapping[str, Any]]]
    moderation: Any
    image: Any
    access_programs: Any
    background: Optional[bool]
    stream: Optional[bool]
    stream_options: Optional[Mapping[str, Any]]
    stream_id: Optional[str]
    generate: Optional[bool]


class RequestFields(RunFields, total=False):
    """Every field of :class:`~openai_ws.models.ResponseCreateRequest` but ``extra_body``,
    which the methods take as a keyword of their own (it merges into a request object too)."""

    tools: Optional[Sequence[Mapping[str, Any]]]
