"""OpenTelemetry traces and metrics of a session's requests, when OpenTelemetry is there.

One span per request (``send()``, ``stream()``, a conversation turn, each
request of ``run()``/``map()``), however many attempts it takes: a replay, a
retry, an HTTP fallback or a resumed stream is an *event* of that span, never a
second span. Names follow the OpenTelemetry GenAI semantic conventions
(``docs/gen-ai/openai.md`` and ``gen-ai-metrics.md`` of the semantic
conventions): span ``"chat {gen_ai.request.model}"``, kind ``CLIENT``,
``gen_ai.provider.name = "openai"``, ``openai.api.type = "responses"``, the
request parameters that are set, the response id/model/finish reasons/usage,
``server.address``/``server.port``, and on failure ``error.type`` (the
exception's class name, or the ``response.failed`` error code) with status
``ERROR``. Our own attributes are under ``openai_ws.*``: ``transport``
(``websocket`` or ``http``: what produced the answer), ``lane`` (the
``stream_id`` used), ``replays``, ``retries``, ``abandoned``.

Metrics (histograms): ``gen_ai.client.operation.duration`` (s),
``gen_ai.client.token.usage`` (``gen_ai.token.type`` input/output),
``gen_ai.client.operation.time_to_first_chunk`` (s, ``stream()`` only) and
``openai_ws.client.output_tokens_per_second``.

Content (instructions, input, output) is recorded only when asked for:
``capture_content=True`` on the session, or the semantic conventions' switch
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` set to ``true`` (or
``span_only``/``span_and_event``), read when the session is created. It goes on
the span as the JSON attributes ``gen_ai.system_instructions``,
``gen_ai.input.messages`` and ``gen_ai.output.messages``.

Providers: the ones given to the session (``tracer_provider=``,
``meter_provider=``), else OpenTelemetry's global ones, looked up once per
request (a provider configured after the session was created is used from then
on). OpenTelemetry is imported when the first session is created (never by
``import openai_ws``), once, under a lock; if it is not installed that is
remembered and every request gets :data:`NO_TELEMETRY`, a shared object whose
methods do nothing. So does a request when neither tracing nor metrics are
configured, or when the sampler drops its span and no meter is set
(``is_recording()`` is checked once per request).

What this module must never do: record content unless asked, record a header
or the API key, let an exception of OpenTelemetry (or of an exporter) reach the
caller, or cost the request's events anything when nothing is recorded (the
attempt loop calls it once per request and at most once per event check).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..events import FINAL_RESPONSE_EVENTS
from .telemetry_content import finish_reason, input_content, output_items, output_messages

__all__ = ["CAPTURE_CONTENT_ENV", "NO_TELEMETRY", "RequestTelemetry", "SessionTelemetry"]

log = logging.getLogger(__name__)

CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
"""The semantic conventions' switch for recording messages (off unless ``true``)."""

_CAPTURE_ON = frozenset({"true", "span_only", "span_and_event"})
_OPERATION = "chat"  # the semconv value for the Responses API (gen-ai/openai.md)
_PROVIDER = "openai"
_SCOPE = "openai_ws"
# ExplicitBucketBoundaries advised by gen-ai-metrics.md for each histogram.
_SECONDS_BUCKETS = tuple(0.01 * 2**n for n in range(14))  # 0.01, 0.02, 0.04, ... 81.92
_TOKEN_BUCKETS = tuple(float(4**n) for n in range(14))  # 1, 4, 16, ... 67108864
_RATE_BUCKETS = (1.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 150.0, 200.0, 300.0, 500.0, 1000.0)
_RESEND_EVENTS = {"retries": "retry", "replays": "replay", "context": "whole_context"}


# -- the import, once -----------------------------------------------------------------

_load_lock = threading.Lock()


class _OTel:
    """The parts of the OpenTelemetry API this module uses (imported once)."""

    def __init__(self) -> None:
        from opentelemetry import metrics, trace

        self.trace = trace
        self.metrics = metrics
        self.kind_client = trace.SpanKind.CLIENT
        self.status_class = trace.Status
        self.error_code = trace.StatusCode.ERROR
        # Until an SDK is set, the API hands out proxies whose spans never record.
        self.unset_tracers: Tuple[type, ...] = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
        unset_meters: List[type] = [metrics.NoOpMeterProvider]
        try:
            from opentelemetry.metrics._internal import _ProxyMeterProvider

            unset_meters.append(_ProxyMeterProvider)
        except ImportError:  # pragma: no cover - a future API without the private proxy
            pass
        self.unset_meters: Tuple[type, ...] = tuple(unset_meters)


_loaded: List[Optional[_OTel]] = []  # [the API, or None when it is not installed], once loaded


def _load() -> Optional[_OTel]:
    """OpenTelemetry's API, or ``None`` if it is not installed (both remembered)."""
    if _loaded:
        return _loaded[0]
    with _load_lock:
        if not _loaded:
            otel: Optional[_OTel] = None
            try:
                otel = _OTel()
            except ImportError:
                pass
            except Exception:  # a broken install must not break sessions
                log.warning("OpenTelemetry could not be loaded; nothing is recorded", exc_info=True)
            _loaded.append(otel)
    return _loaded[0]


# -- the no-op recorder -----------------------------------------------------------------


class RequestTelemetry:
    """What one request reports; this base class records nothing (see :data:`NO_TELEMETRY`).

    The attempt loop calls, in the caller's thread: :meth:`first_event` (the
    first event handed to a ``stream()`` caller), :meth:`answered` (the final
    response event), :meth:`seen` (an HTTP event that is the first or the final
    one), :meth:`resend`, :meth:`fallback`, :meth:`resume`, :meth:`event`,
    :meth:`failed` (what ended the request), and :meth:`end` (once; later calls
    do nothing). :meth:`abandon` may come from any thread (a stream closed or
    collected); :meth:`abort` is :meth:`failed` with the exception being
    handled, then :meth:`end`.
    """

    __slots__ = ()

    recording = False
    """True for a recorder that records something."""

    def event(self, name: str, **attributes: Any) -> None:
        """A span event ``name``; each attribute is recorded as ``openai_ws.<key>``."""

    def first_event(self) -> None:
        """The first event reached a ``stream()`` caller: time to first chunk."""

    def answered(self, event: Any, request: Any) -> None:
        """The final response event (``request`` is the request's state)."""

    def seen(self, event: Any, request: Any) -> None:
        """An event of an HTTP attempt that is the first delivered one or a final one."""

    def resend(self, counter: Optional[str], why: str, delay: float) -> None:
        """The request goes again (``counter`` as in ``attempt.Resend``)."""

    def fallback(self, reason: Optional[str]) -> None:
        """The request is completed over HTTP instead of the socket."""

    def resume(self, response_id: str, after: int) -> None:
        """A cut stream is read on over HTTP after event ``after``."""

    def failed(self, exc: BaseException) -> None:
        """``exc`` ended the request (``GeneratorExit``: the caller stopped listening)."""

    def abandon(self) -> None:
        """The caller closed or dropped the stream: end now, unless already ended."""

    def abort(self) -> None:
        """In an ``except`` block: :meth:`failed` with the exception being handled, then end."""

    def end(self) -> None:
        """End the span and record the duration; only the first call counts."""


NO_TELEMETRY = RequestTelemetry()
"""The recorder of every request when nothing is recorded: all its methods do nothing."""


# -- the session's side -------------------------------------------------------------------


class _Instruments:
    """The histograms of one meter provider."""

    def __init__(self, meter: Any) -> None:
        self.duration = _histogram(
            meter, "gen_ai.client.operation.duration", "s", "GenAI operation duration."
        )
        self.tokens = _histogram(
            meter,
            "gen_ai.client.token.usage",
            "{token}",
            "Number of input and output tokens used.",
            _TOKEN_BUCKETS,
        )
        self.ttft = _histogram(
            meter,
            "gen_ai.client.operation.time_to_first_chunk",
            "s",
            "Time from the request to the first event of its stream.",
        )
        self.rate = _histogram(
            meter,
            "openai_ws.client.output_tokens_per_second",
            "{token}/s",
            "Output tokens per second of generation (after the first event of a stream).",
            _RATE_BUCKETS,
        )


def _histogram(
    meter: Any,
    name: str,
    unit: str,
    description: str,
    buckets: Sequence[float] = _SECONDS_BUCKETS,
) -> Any:
    """A histogram with the advised bucket boundaries (when the API takes them)."""
    try:
        return meter.create_histogram(
            name, unit=unit, description=description, explicit_bucket_boundaries_advisory=buckets
        )
    except TypeError:  # opentelemetry-api < 1.23: no advisory buckets
        return meter.create_histogram(name, unit=unit, description=description)


class SessionTelemetry:
    """A session's telemetry settings; :meth:`start` makes each request's recorder.

    ``url`` is the session's WebSocket URL (only its host and port are
    recorded); ``tracer_provider`` / ``meter_provider`` default to
    OpenTelemetry's global providers; ``capture_content`` ``None`` follows
    :data:`CAPTURE_CONTENT_ENV`.
    """

    def __init__(
        self,
        url: str,
        *,
        tracer_provider: Any = None,
        meter_provider: Any = None,
        capture_content: Optional[bool] = None,
    ) -> None:
        self._otel = _load()
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        if capture_content is None:
            setting = os.environ.get(CAPTURE_CONTENT_ENV, "").strip().lower()
            capture_content = setting in _CAPTURE_ON
        self.capture_content = bool(capture_content)
        self._server = _server(url)
        # (provider, tracer) and (provider, instruments) of the last lookup.
        self._tracer: Tuple[Any, Any] = (None, None)
        self._instruments: Tuple[Any, Optional[_Instruments]] = (None, None)

    def start(self, request: Any) -> RequestTelemetry:
        """The recorder of ``request`` (a ``RequestState``), started now."""
        otel = self._otel
        if otel is None:
            return NO_TELEMETRY
        try:
            tracer = self._current_tracer(otel)
            instruments = self._current_instruments(otel)
            if tracer is None and instruments is None:
                return NO_TELEMETRY
            return _start(self, otel, tracer, instruments, request)
        except Exception:  # never fail a request for its telemetry
            log.debug("could not start the request's telemetry", exc_info=True)
            return NO_TELEMETRY

    def _current_tracer(self, otel: _OTel) -> Any:
        provider = self._tracer_provider
        if provider is None:
            provider = otel.trace.get_tracer_provider()
        if isinstance(provider, otel.unset_tracers):
            return None
        cached, tracer = self._tracer
        if cached is not provider:
            from .._version import __version__

            tracer = provider.get_tracer(_SCOPE, __version__)
            self._tracer = (provider, tracer)
        return tracer

    def _current_instruments(self, otel: _OTel) -> Optional[_Instruments]:
        provider = self._meter_provider
        if provider is None:
            provider = otel.metrics.get_meter_provider()
        if isinstance(provider, otel.unset_meters):
            return None
        cached, instruments = self._instruments
        if cached is not provider:
            from .._version import __version__

            instruments = _Instruments(provider.get_meter(_SCOPE, __version__))
            self._instruments = (provider, instruments)
        return instruments


def _server(url: str) -> Dict[str, Any]:
    """``server.address`` and ``server.port`` of ``url`` (never its user, path or query)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port or (443 if parts.scheme in ("wss", "https") else 80)
    except ValueError:
        return {}
    return {"server.address": host, "server.port": port} if host else {}


def _start(
    owner: SessionTelemetry,
    otel: _OTel,
    tracer: Any,
    instruments: Optional[_Instruments],
    request: Any,
) -> RequestTelemetry:
    body = request.body
    stream = request.mode.value == "events"
    model = body.get("model")
    base: Dict[str, Any] = {"gen_ai.operation.name": _OPERATION, "gen_ai.provider.name": _PROVIDER}
    if isinstance(model, str):
        base["gen_ai.request.model"] = model
    base.update(owner._server)
    span = None
    if tracer is not None:
        attributes = dict(base)
        attributes.update(_request_attributes(body, stream))
        name = f"{_OPERATION} {model}" if isinstance(model, str) else _OPERATION
        span = tracer.start_span(name, kind=otel.kind_client, attributes=attributes)
        if not span.is_recording():
            span = None
        elif owner.capture_content:
            _set_content(span, input_content(body))
    if span is None and instruments is None:
        return NO_TELEMETRY
    return _Recorder(otel, span, instruments, base, stream=stream, capture=owner.capture_content)


def _float(value: Any) -> Optional[float]:
    """``value`` as a float if it is an int or float (not a bool), else ``None``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _request_attributes(body: Dict[str, Any], stream: bool) -> Dict[str, Any]:
    """The request's parameters that are set, as semconv attributes (no content)."""
    attributes: Dict[str, Any] = {"openai.api.type": "responses"}
    if stream:
        attributes["gen_ai.request.stream"] = True
    for field in ("temperature", "top_p"):
        value = _float(body.get(field))
        if value is not None:
            attributes[f"gen_ai.request.{field}"] = value
    tokens = body.get("max_output_tokens")
    if isinstance(tokens, int) and not isinstance(tokens, bool):
        attributes["gen_ai.request.max_tokens"] = tokens
    tier = body.get("service_tier")
    if isinstance(tier, str) and tier != "auto":
        attributes["openai.request.service_tier"] = tier
    conversation = body.get("conversation")
    if isinstance(conversation, dict):
        conversation = conversation.get("id")
    if isinstance(conversation, str):
        attributes["gen_ai.conversation.id"] = conversation
    text = body.get("text")
    fmt = text.get("format") if isinstance(text, dict) else None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind in ("json_schema", "json_object"):
        attributes["gen_ai.output.type"] = "json"
    elif kind == "text":
        attributes["gen_ai.output.type"] = "text"
    return attributes


# -- the recording recorder ------------------------------------------------------------------


class _Recorder(RequestTelemetry):
    """The recorder of one request whose span records, or whose metrics are on."""

    __slots__ = (
        "_abandoned",
        "_answered",
        "_base",
        "_capture",
        "_error",
        "_first",
        "_instruments",
        "_lane",
        "_once",
        "_otel",
        "_replays",
        "_response_model",
        "_retries",
        "_span",
        "_started",
        "_stream",
        "_transport",
        "_usage",
    )

    recording = True

    def __init__(
        self,
        otel: _OTel,
        span: Any,
        instruments: Optional[_Instruments],
        base: Dict[str, Any],
        *,
        stream: bool,
        capture: bool,
    ) -> None:
        self._otel = otel
        self._span = span
        self._instruments = instruments
        self._base = base  # the attributes of every metric point
        self._stream = stream
        self._capture = capture
        self._started = time.perf_counter()
        self._first: Optional[float] = None  # perf_counter of the first event
        self._once = [True]  # popped by the first end() (atomic: any thread may end)
        self._answered = False
        self._error: Optional[str] = None  # error.type
        self._abandoned = False
        self._transport = "websocket"
        self._lane: Optional[str] = None
        self._replays = 0
        self._retries = 0
        self._response_model: Optional[str] = None
        # input, output, cached, reasoning tokens over the request's answers
        self._usage: List[Any] = [0, 0, None, None]

    # -- along the way

    def event(self, name: str, **attributes: Any) -> None:
        span = self._span
        if span is None:
            return
        try:
            span.add_event(name, {f"openai_ws.{k}": _attribute(v) for k, v in attributes.items()})
        except Exception:
            log.debug("could not add span event %s", name, exc_info=True)

    def first_event(self) -> None:
        if self._first is not None or not self._stream:
            return
        self._first = now = time.perf_counter()
        try:
            ttft = now - self._started
            if self._span is not None:
                self._span.set_attribute("gen_ai.response.time_to_first_chunk", ttft)
            if self._instruments is not None:
                self._instruments.ttft.record(ttft, self._base)
        except Exception:
            log.debug("could not record the time to first event", exc_info=True)

    def seen(self, event: Any, request: Any) -> None:
        if isinstance(event, FINAL_RESPONSE_EVENTS):
            self.answered(event, request)
        else:
            self.first_event()

    def resend(self, counter: Optional[str], why: str, delay: float) -> None:
        if counter == "replays":
            self._replays += 1
        elif counter == "retries":
            self._retries += 1
        name = _RESEND_EVENTS.get(counter or "", "lane_refused")
        self.event(name, reason=why, delay=float(delay))

    def fallback(self, reason: Optional[str]) -> None:
        self._transport = "http"
        self.event("http_fallback", reason=reason or "the session uses HTTP")

    def resume(self, response_id: str, after: int) -> None:
        self._transport = "http"
        self.event("stream_resume", response_id=response_id, after=after)

    def answered(self, event: Any, request: Any) -> None:
        # A steered request may answer more than once: each answer's tokens
        # count once (as in session.usage); the span shows the latest answer.
        now = time.perf_counter()
        if self._first is None:
            self.first_event()  # a stream whose first event is its final one
        self._answered = True
        try:
            self._record_answer(event.response, request, now)
        except Exception:
            log.debug("could not record the response", exc_info=True)

    def _record_answer(self, response: Any, request: Any, now: float) -> None:
        if self._transport == "websocket":
            pending = request.pending
            self._lane = pending.lane if pending is not None else None
        items = output_items(response, request)
        reason = finish_reason(response, items)
        model = response.model if isinstance(response.model, str) else None
        self._response_model = model
        if response.status == "failed":
            error = response.error
            self._error = (error.code if error is not None else None) or "response_failed"
        usage = response.usage
        if usage is not None:
            totals = self._usage
            totals[0] += usage.input_tokens
            totals[1] += usage.output_tokens
            if usage.input_tokens_details is not None:
                totals[2] = (totals[2] or 0) + usage.input_tokens_details.cached_tokens
            if usage.output_tokens_details is not None:
                totals[3] = (totals[3] or 0) + usage.output_tokens_details.reasoning_tokens
        span = self._span
        if span is not None:
            attributes: Dict[str, Any] = {
                "gen_ai.response.id": response.id,
                "gen_ai.response.finish_reasons": [reason],
            }
            if model:
                attributes["gen_ai.response.model"] = model
            if isinstance(response.service_tier, str):
                attributes["openai.response.service_tier"] = response.service_tier
            if usage is not None:
                totals = self._usage
                attributes["gen_ai.usage.input_tokens"] = totals[0]
                attributes["gen_ai.usage.output_tokens"] = totals[1]
                if totals[2] is not None:
                    attributes["gen_ai.usage.cache_read.input_tokens"] = totals[2]
                if totals[3] is not None:
                    attributes["gen_ai.usage.reasoning.output_tokens"] = totals[3]
            span.set_attributes(attributes)
            if self._capture:
                _set_content(span, {"gen_ai.output.messages": output_messages(items, reason)})
        instruments = self._instruments
        if instruments is not None and usage is not None:
            points = self._metric_attributes()
            instruments.tokens.record(usage.input_tokens, {**points, "gen_ai.token.type": "input"})
            instruments.tokens.record(
                usage.output_tokens, {**points, "gen_ai.token.type": "output"}
            )
            since = self._first if self._stream and self._first is not None else self._started
            if usage.output_tokens > 0 and now > since:
                instruments.rate.record(usage.output_tokens / (now - since), points)

    def _metric_attributes(self) -> Dict[str, Any]:
        points = dict(self._base)
        if self._response_model:
            points["gen_ai.response.model"] = self._response_model
        if self._error is not None:
            points["error.type"] = self._error
        return points

    # -- the end

    def failed(self, exc: BaseException) -> None:
        if isinstance(exc, GeneratorExit):
            # The caller closed the events: after the answer that is just the end.
            self._abandoned = self._abandoned or not self._answered
            return
        if self._error is not None or not self._once:
            return
        self._error = type(exc).__name__
        span = self._span
        if span is None:
            return
        try:
            code = getattr(exc, "code", None)
            if isinstance(code, str):
                span.set_attribute("openai_ws.error.code", code)
            if self._capture:
                span.record_exception(exc)  # its message may quote the request
        except Exception:
            log.debug("could not record the failure", exc_info=True)

    def abandon(self) -> None:
        if not self._answered and self._error is None:
            self._abandoned = True
        self.end()

    def abort(self) -> None:
        exc = sys.exc_info()[1]
        if exc is not None:
            self.failed(exc)
        self.end()

    def end(self) -> None:
        try:
            self._once.pop()
        except IndexError:
            return  # ended already
        try:
            self._finish()
        except Exception:
            log.debug("could not end the request's span", exc_info=True)

    def _finish(self) -> None:
        duration = time.perf_counter() - self._started
        span = self._span
        if span is not None:
            attributes: Dict[str, Any] = {
                "openai_ws.transport": self._transport,
                "openai_ws.replays": self._replays,
                "openai_ws.retries": self._retries,
            }
            if self._lane is not None:
                attributes["openai_ws.lane"] = self._lane
            if self._abandoned:
                attributes["openai_ws.abandoned"] = True
            if self._error is not None:
                attributes["error.type"] = self._error
            span.set_attributes(attributes)
            if self._error is not None:
                span.set_status(self._otel.status_class(self._otel.error_code, self._error))
            span.end()
        if self._instruments is not None:
            self._instruments.duration.record(duration, self._metric_attributes())


def _attribute(value: Any) -> Any:
    """An OpenTelemetry attribute value: a str, bool, int or float as is, else its str()."""
    if value is None:
        return ""
    return value if isinstance(value, (str, bool, int, float)) else str(value)


# -- content (opt-in) ----------------------------------------------------------------------


def _set_content(span: Any, attributes: Dict[str, Any]) -> None:
    """Content attributes as JSON strings (semconv: allowed on spans); empty ones left out."""
    import json

    try:
        span.set_attributes(
            {
                key: json.dumps(value, ensure_ascii=False, separators=(",", ":"))
                for key, value in attributes.items()
                if value
            }
        )
    except Exception:
        log.debug("could not record the content", exc_info=True)
