"""openai_ws: a synchronous client for the OpenAI Responses API over a persistent WebSocket.

    import openai_ws

    client = openai_ws.OpenAI()  # OPENAI_API_KEY, OPENAI_BASE_URL, ... as in the official SDK
    with client.ws_session() as session:
        response = session.send(model="gpt-4o-mini", input="Hello")
        print(response.output_text)

The public names are re-exported here: the client and session, the request and
response models, the server events and the exceptions. Everything in a module
whose name starts with an underscore is private.

Importing the package is cheap: only the exceptions and the version load with
it. Every other public name is imported from its module the first time it is
used (a module ``__getattr__``, PEP 562), and the heavy libraries later still:
websocket-client and ssl on the first socket, requests and urllib3 on the first
HTTP call, cattrs on the first event or response typed. ``from openai_ws import
X`` and ``openai_ws.X`` work as before; type checkers and IDEs see every name
through the ``TYPE_CHECKING`` imports below.

To add a public name:

* an exception of :mod:`openai_ws.errors`: add it to the ``from .errors import``
  list and to ``__all__``;
* any other name: add it to its module's entry in ``_LAZY_MODULES``, to that
  module's import in the ``TYPE_CHECKING`` block, and to ``__all__``.

``tests/test_import_cost.py`` checks that the three agree, and that importing
the package loads no transport library.
"""

import importlib
import threading
from typing import TYPE_CHECKING, Any, Dict, List, Tuple

from ._version import __version__
from .errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    ConnectError,
    ConnectionClosedError,
    ConsumerTooSlowError,
    InternalServerError,
    MessageTooLargeError,
    NotFoundError,
    OpenAIWSError,
    PermissionDeniedError,
    PreviousResponseNotFoundError,
    ProtocolError,
    RateLimitError,
    ReplayUnsafeError,
    RequestTimeoutError,
    SessionClosedError,
    SteerError,
    SteerFailedError,
    SteeringNotSupportedError,
    SteeringUnavailableError,
    SteerInvalidInputError,
    SteerLostError,
    SteerResponseCompletedError,
    SteerResponseNotActiveError,
    SteerResponseNotFoundError,
    SteerSuccessorFailedError,
    SteerTimeoutError,
    TooManyPendingSteersError,
    TransportError,
    UnprocessableEntityError,
    UpgradeAuthenticationError,
    UpgradeBadRequestError,
    UpgradeConflictError,
    UpgradeInternalServerError,
    UpgradeNotFoundError,
    UpgradePermissionDeniedError,
    UpgradeRateLimitError,
    UpgradeRefusedError,
    UpgradeUnprocessableEntityError,
)

if TYPE_CHECKING:
    from ._loops import RunResult
    from ._pending import PendingResponse
    from ._session.steering import Steer
    from ._types import RequestFields, RunFields
    from .client import OpenAI, Responses
    from .conversation import Conversation
    from .events import (
        TERMINAL_EVENT_TYPES,
        ErrorEvent,
        ErrorPayload,
        ResponseCompleted,
        ResponseContentPartAdded,
        ResponseContentPartDone,
        ResponseCreated,
        ResponseDone,
        ResponseFailed,
        ResponseFunctionCallArgumentsDelta,
        ResponseFunctionCallArgumentsDone,
        ResponseIncomplete,
        ResponseInProgress,
        ResponseOutputItemAdded,
        ResponseOutputItemDone,
        ResponseOutputTextAnnotationAdded,
        ResponseOutputTextDelta,
        ResponseOutputTextDone,
        ResponseQueued,
        ResponseReasoningSummaryPartAdded,
        ResponseReasoningSummaryPartDone,
        ResponseReasoningSummaryTextDelta,
        ResponseReasoningSummaryTextDone,
        ResponseReasoningTextDelta,
        ResponseReasoningTextDone,
        ResponseRefusalDelta,
        ResponseRefusalDone,
        ResponseSteerAccepted,
        ResponseSteerFailed,
        ResponseSteerPending,
        ServerEvent,
        UnknownEvent,
    )
    from .models import (
        FunctionCall,
        FunctionCallOutput,
        IncompleteDetails,
        InputMessage,
        OutputMessage,
        OutputRefusal,
        OutputText,
        ReasoningItem,
        Response,
        ResponseCreateRequest,
        ResponseErrorInfo,
        UnknownContent,
        UnknownOutputItem,
        Usage,
        UsageTotals,
    )
    from .session import EventStream, Session, SessionStats

_LAZY_MODULES: Dict[str, Tuple[str, ...]] = {
    "client": ("OpenAI", "Responses"),
    "session": ("EventStream", "Session", "SessionStats"),
    "_pending": ("PendingResponse",),
    "_session.steering": ("Steer",),
    "conversation": ("Conversation",),
    "_loops": ("RunResult",),
    "_types": ("RequestFields", "RunFields"),
    "models": (
        "FunctionCall",
        "FunctionCallOutput",
        "IncompleteDetails",
        "InputMessage",
        "OutputMessage",
        "OutputRefusal",
        "OutputText",
        "ReasoningItem",
        "Response",
        "ResponseCreateRequest",
        "ResponseErrorInfo",
        "UnknownContent",
        "UnknownOutputItem",
        "Usage",
        "UsageTotals",
    ),
    "events": (
        "TERMINAL_EVENT_TYPES",
        "ErrorEvent",
        "ErrorPayload",
        "ResponseCompleted",
        "ResponseContentPartAdded",
        "ResponseContentPartDone",
        "ResponseCreated",
        "ResponseDone",
        "ResponseFailed",
        "ResponseFunctionCallArgumentsDelta",
        "ResponseFunctionCallArgumentsDone",
        "ResponseIncomplete",
        "ResponseInProgress",
        "ResponseOutputItemAdded",
        "ResponseOutputItemDone",
        "ResponseOutputTextAnnotationAdded",
        "ResponseOutputTextDelta",
        "ResponseOutputTextDone",
        "ResponseQueued",
        "ResponseReasoningSummaryPartAdded",
        "ResponseReasoningSummaryPartDone",
        "ResponseReasoningSummaryTextDelta",
        "ResponseReasoningSummaryTextDone",
        "ResponseReasoningTextDelta",
        "ResponseReasoningTextDone",
        "ResponseRefusalDelta",
        "ResponseRefusalDone",
        "ResponseSteerAccepted",
        "ResponseSteerFailed",
        "ResponseSteerPending",
        "ServerEvent",
        "UnknownEvent",
    ),
}
"""The public names imported on first use, by the module (of this package) that defines them."""

_LAZY: Dict[str, str] = {name: module for module, names in _LAZY_MODULES.items() for name in names}

_lock = threading.RLock()
"""Held while a lazy name's module is imported, so first uses in many threads import once."""


def _load(name: str) -> Any:
    """The public name ``name``, imported from its module on first use, then kept here.

    Raises ``AttributeError`` (what ``getattr`` and ``from openai_ws import``
    expect) for a name the package does not have.
    """
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with _lock:
        value = getattr(importlib.import_module(f".{module}", __name__), name)
        globals()[name] = value  # found directly from now on, without _load
    return value


def __dir__() -> List[str]:
    """The module's names, the public ones not yet imported included."""
    return sorted(set(globals()) | set(__all__))


if not TYPE_CHECKING:  # hidden from type checkers: they see the imports above instead,
    __getattr__ = _load  # so a misspelt name stays an error for them


__all__ = [
    "TERMINAL_EVENT_TYPES",
    "APIError",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "ConnectError",
    "ConnectionClosedError",
    "ConsumerTooSlowError",
    "Conversation",
    "ErrorEvent",
    "ErrorPayload",
    "EventStream",
    "FunctionCall",
    "FunctionCallOutput",
    "IncompleteDetails",
    "InputMessage",
    "InternalServerError",
    "MessageTooLargeError",
    "NotFoundError",
    "OpenAI",
    "OpenAIWSError",
    "OutputMessage",
    "OutputRefusal",
    "OutputText",
    "PendingResponse",
    "PermissionDeniedError",
    "PreviousResponseNotFoundError",
    "ProtocolError",
    "RateLimitError",
    "ReasoningItem",
    "ReplayUnsafeError",
    "RequestFields",
    "RequestTimeoutError",
    "Response",
    "ResponseCompleted",
    "ResponseContentPartAdded",
    "ResponseContentPartDone",
    "ResponseCreateRequest",
    "ResponseCreated",
    "ResponseDone",
    "ResponseErrorInfo",
    "ResponseFailed",
    "ResponseFunctionCallArgumentsDelta",
    "ResponseFunctionCallArgumentsDone",
    "ResponseInProgress",
    "ResponseIncomplete",
    "ResponseOutputItemAdded",
    "ResponseOutputItemDone",
    "ResponseOutputTextAnnotationAdded",
    "ResponseOutputTextDelta",
    "ResponseOutputTextDone",
    "ResponseQueued",
    "ResponseReasoningSummaryPartAdded",
    "ResponseReasoningSummaryPartDone",
    "ResponseReasoningSummaryTextDelta",
    "ResponseReasoningSummaryTextDone",
    "ResponseReasoningTextDelta",
    "ResponseReasoningTextDone",
    "ResponseRefusalDelta",
    "ResponseRefusalDone",
    "ResponseSteerAccepted",
    "ResponseSteerFailed",
    "ResponseSteerPending",
    "Responses",
    "RunFields",
    "RunResult",
    "ServerEvent",
    "Session",
    "SessionClosedError",
    "SessionStats",
    "Steer",
    "SteerError",
    "SteerFailedError",
    "SteerInvalidInputError",
    "SteerLostError",
    "SteerResponseCompletedError",
    "SteerResponseNotActiveError",
    "SteerResponseNotFoundError",
    "SteerSuccessorFailedError",
    "SteerTimeoutError",
    "SteeringNotSupportedError",
    "SteeringUnavailableError",
    "TooManyPendingSteersError",
    "TransportError",
    "UnknownContent",
    "UnknownEvent",
    "UnknownOutputItem",
    "UnprocessableEntityError",
    "UpgradeAuthenticationError",
    "UpgradeBadRequestError",
    "UpgradeConflictError",
    "UpgradeInternalServerError",
    "UpgradeNotFoundError",
    "UpgradePermissionDeniedError",
    "UpgradeRateLimitError",
    "UpgradeRefusedError",
    "UpgradeUnprocessableEntityError",
    "Usage",
    "UsageTotals",
    "__version__",
]
