"""Error payloads of the emulated service: one ``ApiError`` type and its wire shapes.

Everything here is pure: build an ``ApiError`` (status, type, code, message,
param, headers) and render it as a WebSocket ``error`` event, an HTTP error body
or an SSE ``error`` event (flat or nested). Messages follow the service's wording where it
is known (docs/protocol.md section 4). This module must never perform I/O and must
never put a full API key into a message.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Optional

__all__ = [
    "ApiError",
    "background_not_supported",
    "connection_limit_reached",
    "http_error_body",
    "incorrect_api_key",
    "invalid_compaction",
    "invalid_json",
    "invalid_stream_id",
    "invalid_type",
    "invalid_value",
    "json_kind",
    "mid_stream_error",
    "missing_api_key",
    "missing_parameter",
    "mutually_exclusive",
    "previous_response_not_found",
    "redact_key",
    "response_not_found",
    "scripted_error",
    "sse_error_event",
    "stream_limit_reached",
    "trigger_not_last",
    "unknown_parameter",
    "upgrade_refused",
    "ws_error_event",
]

CONNECTION_LIMIT_MESSAGE = (
    "Responses websocket connection limit reached (60 minutes). "
    "Create a new websocket connection to continue."
)


class ApiError(Exception):
    """An error answer of the service, independent of the transport that carries it.

    ``headers`` go into ``error.headers`` of a WebSocket error event and into the
    HTTP response headers; ``http_headers`` go into the HTTP response only.
    """

    def __init__(
        self,
        status: int,
        code: Optional[str],
        message: str,
        *,
        type: str = "invalid_request_error",
        param: Optional[str] = None,
        headers: Optional[Dict[str, str]] = None,
        http_headers: Optional[Dict[str, str]] = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.type = type
        self.param = param
        self.headers: Dict[str, str] = dict(headers or {})
        self.http_headers: Dict[str, str] = dict(http_headers or {})

    def __repr__(self) -> str:
        return f"ApiError(status={self.status}, code={self.code!r}, param={self.param!r})"

    def error_object(self, *, with_headers: bool) -> Dict[str, Any]:
        """The inner ``error`` object: ``type``, ``code``, ``message``, ``param`` (+headers)."""
        obj: Dict[str, Any] = {
            "type": self.type,
            "code": self.code,
            "message": self.message,
            "param": self.param,
        }
        if with_headers and self.headers:
            obj["headers"] = dict(self.headers)
        return obj


def ws_error_event(
    err: ApiError, *, stream_id: Optional[str] = None, sequence_number: Optional[int] = None
) -> Dict[str, Any]:
    """WebSocket envelope ``{type, status, error{...}, stream_id?, sequence_number?}``."""
    event: Dict[str, Any] = {
        "type": "error",
        "status": err.status,
        "error": err.error_object(with_headers=True),
    }
    if sequence_number is not None:
        event["sequence_number"] = sequence_number
    if stream_id is not None:
        event["stream_id"] = stream_id
    return event


def sse_error_event(err: ApiError, *, sequence_number: int, nested: bool = False) -> Dict[str, Any]:
    """Mid-stream SSE ``error`` event (docs/protocol.md section 4.2).

    Flat ``{type, code, message, param, sequence_number}`` as the spec's and the
    SDK's ``ResponseErrorEvent``; with ``nested`` the ``{type, error{...},
    sequence_number}`` shape reported from live captures.
    """
    if nested:
        return {
            "type": "error",
            "error": err.error_object(with_headers=True),
            "sequence_number": sequence_number,
        }
    return {
        "type": "error",
        "code": err.code,
        "message": err.message,
        "param": err.param,
        "sequence_number": sequence_number,
    }


def http_error_body(err: ApiError) -> Dict[str, Any]:
    """HTTP error body ``{"error": {message, type, param, code}}``."""
    return {
        "error": {
            "message": err.message,
            "type": err.type,
            "param": err.param,
            "code": err.code,
        }
    }


def json_kind(value: object) -> str:
    """The service's name for the JSON type of ``value`` (``a string``, ``an integer``...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "an unknown value"


def invalid_type(param: str, expected: str, value: object) -> ApiError:
    """400 ``invalid_type``, e.g. ``temperature: "1.2"``."""
    return ApiError(
        400,
        "invalid_type",
        f"Invalid type for '{param}': expected {expected}, but got {json_kind(value)} instead.",
        param=param,
    )


def invalid_value(param: str, message: str, *, code: str = "invalid_value") -> ApiError:
    """400 with a caller-chosen message (bad enum value, bad range, bad script key)."""
    return ApiError(400, code, message, param=param)


def missing_parameter(param: str) -> ApiError:
    """400 ``missing_required_parameter``."""
    return ApiError(
        400, "missing_required_parameter", f"Missing required parameter: '{param}'.", param=param
    )


def unknown_parameter(param: str) -> ApiError:
    """400 ``unknown_parameter``."""
    return ApiError(400, "unknown_parameter", f"Unknown parameter: '{param}'.", param=param)


def mutually_exclusive(first: str, second: str) -> ApiError:
    """400 when two parameters cannot be combined (``previous_response_id`` + ``conversation``)."""
    return ApiError(
        400,
        "mutually_exclusive_parameters",
        f"Mutually exclusive parameters: '{first}' and '{second}' cannot be used together.",
        param=first,
    )


def invalid_json(detail: str) -> ApiError:
    """400 for a frame or body that is not a JSON object."""
    return ApiError(
        400,
        "invalid_json",
        f"We could not parse the JSON body of your request. ({detail})",
    )


def invalid_stream_id() -> ApiError:
    """400 ``invalid_stream_id`` (never echoes the offending value)."""
    return ApiError(
        400,
        "invalid_stream_id",
        "Invalid 'stream_id': expected 1 to 256 characters from [A-Za-z0-9_.-].",
        param="stream_id",
    )


def stream_limit_reached(limit: int) -> ApiError:
    """400 ``websocket_stream_limit_reached`` for the (limit+1)-th distinct lane name."""
    return ApiError(
        400,
        "websocket_stream_limit_reached",
        f"Responses websocket stream limit reached ({limit} distinct stream_id values per "
        "connection). Reuse an existing stream_id or create a new websocket connection.",
        param="stream_id",
    )


def connection_limit_reached() -> ApiError:
    """400 ``websocket_connection_limit_reached`` with the service's exact message."""
    return ApiError(400, "websocket_connection_limit_reached", CONNECTION_LIMIT_MESSAGE)


def background_not_supported() -> ApiError:
    """400 for ``background: true`` over WebSocket (exact wording unknown upstream)."""
    return ApiError(
        400,
        "unsupported_parameter",
        "Unsupported parameter: 'background' is not supported in websocket mode.",
        param="background",
    )


def previous_response_not_found(response_id: str) -> ApiError:
    """400 ``previous_response_not_found``."""
    return ApiError(
        400,
        "previous_response_not_found",
        f"Previous response with id '{response_id}' not found.",
        param="previous_response_id",
    )


def trigger_not_last() -> ApiError:
    """400 for a ``compaction_trigger`` that is not the final input item (service wording)."""
    return ApiError(
        400,
        "invalid_value",
        "The 'compaction_trigger' item must be the final input item.",
        param="input",
    )


def invalid_compaction(param: str) -> ApiError:
    """400 for a compaction item whose opaque content this server did not make."""
    return ApiError(
        400,
        "invalid_encrypted_content",
        f"The encrypted content in '{param}' could not be verified.",
        param=param,
    )


def response_not_found(response_id: str) -> ApiError:
    """404 for an unknown or unstored response id on the HTTP retrieval endpoints."""
    return ApiError(404, None, f"Response with id '{response_id}' not found.", param=None)


def redact_key(key: str) -> str:
    """Keep at most a short prefix and the last four characters of a key."""
    if len(key) <= 8:
        return "sk-***"
    return f"{key[:3]}{'*' * 12}{key[-4:]}"


def missing_api_key() -> ApiError:
    """401 when no bearer token was sent."""
    return ApiError(
        401,
        None,
        "You didn't provide an API key. You need to provide your API key in an "
        "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
    )


def incorrect_api_key(provided: str) -> ApiError:
    """401 ``invalid_api_key`` with a redacted copy of the wrong key."""
    return ApiError(
        401,
        "invalid_api_key",
        f"Incorrect API key provided: {redact_key(provided)}. You can find your API key "
        "at https://platform.openai.com/account/api-keys.",
    )


def upgrade_refused(status: int) -> ApiError:
    """The body of a refused WebSocket upgrade (``EmulatorConfig.upgrade_status``)."""
    code = "upgrade_required" if status == 426 else "websocket_not_available"
    return ApiError(
        status,
        code,
        "WebSocket mode is not available on this endpoint; use HTTP instead.",
    )


def _format_seconds(seconds: float) -> str:
    return f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"


def scripted_error(code: str, *, retry_after: float, model: str) -> ApiError:
    """The pre-stream error that ``metadata.emulator_error`` asks for."""
    if code == "rate_limit_exceeded":
        millis = max(0, round(retry_after * 1000))
        headers = {
            "retry-after-ms": str(millis),
            "x-ratelimit-limit-requests": "10000",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": f"{millis}ms",
            "x-ratelimit-limit-tokens": "30000",
            "x-ratelimit-remaining-tokens": "0",
            "x-ratelimit-reset-tokens": f"{millis}ms",
        }
        return ApiError(
            429,
            code,
            f"Rate limit reached for {model} in organization org-emulator on requests per "
            f"min (RPM): Limit 10000, Used 10000, Requested 1. Please try again in "
            f"{_format_seconds(retry_after)}. Visit https://platform.openai.com/account/"
            "rate-limits to learn more.",
            type="requests",
            headers=headers,
            http_headers={"retry-after": str(max(1, math.ceil(retry_after)))},
        )
    if code == "insufficient_quota":
        return ApiError(
            429,
            code,
            "You exceeded your current quota, please check your plan and billing details.",
            type="insufficient_quota",
        )
    if code == "server_error":
        return ApiError(
            500,
            None,
            "The server had an error while processing your request. Sorry about that!",
            type="server_error",
        )
    if code == "server_is_overloaded":
        return ApiError(
            503,
            code,
            "The server is overloaded or not ready yet.",
            type="server_error",
        )
    if code == "invalid_prompt":
        return ApiError(400, code, "Invalid prompt: the emulator was asked to reject it.")
    return ApiError(400, code, f"Emulated error '{code}'.")


def mid_stream_error() -> ApiError:
    """The ``server_error`` sent by ``metadata.emulator_error_after``."""
    return ApiError(
        500,
        "server_error",
        "The server had an error while processing your request. Sorry about that!",
        type="server_error",
    )
