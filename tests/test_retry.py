"""Unit tests of the pure retry rules in ``openai_ws._protocol.retry``."""

from __future__ import annotations

import email.utils
from typing import List, Optional

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openai_ws._protocol.retry import (
    BACKOFF_MAX,
    ERROR_BACKOFF_INITIAL,
    MAX_RETRY_AFTER,
    RETRY_STATUSES,
    backoff,
    header_hint,
    http_refusal,
    message_hint,
    usable_hint,
    verdict,
)

NOW = 1_700_000_000.0

# -- backoff --------------------------------------------------------------------


def test_backoff_without_jitter_is_the_full_exponential_delay():
    """Jitter 0 waits exactly initial * 2**step."""
    assert backoff(0, initial=0.5, cap=8.0, jitter=0.0) == 0.5
    assert backoff(3, initial=0.5, cap=8.0, jitter=0.0) == 4.0


def test_backoff_doubles_with_each_step_until_the_cap():
    """Each step doubles the delay, and the cap holds it from then on."""
    delays = [backoff(step, initial=0.25, cap=2.0, jitter=0.0) for step in range(6)]
    assert delays == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]


def test_backoff_is_capped():
    """A delay past the cap is the cap."""
    assert backoff(20, initial=1.0, cap=8.0, jitter=0.0) == 8.0


def test_backoff_jitter_near_one_takes_a_quarter_off():
    """Jitter close to 1 waits (almost) 25 % less than the full delay."""
    delay = backoff(2, initial=1.0, cap=100.0, jitter=0.999999)
    assert delay == pytest.approx(3.0, abs=1e-5)
    assert delay > 3.0


def test_backoff_jitter_half_takes_an_eighth_off():
    """Jitter scales linearly: 0.5 takes 12.5 % off."""
    assert backoff(1, initial=1.0, cap=100.0, jitter=0.5) == pytest.approx(1.75)


def test_backoff_returns_a_float():
    """Even integral arguments give a float."""
    assert type(backoff(1, initial=1, cap=10, jitter=0)) is float


def test_backoff_stays_at_the_cap_for_a_huge_step():
    """A huge step still returns the cap rather than overflowing."""
    assert backoff(2000, initial=0.5, cap=8.0, jitter=0.0) == 8.0


@given(
    step=st.integers(min_value=0, max_value=200),
    initial=st.floats(min_value=0.001, max_value=10.0),
    cap=st.floats(min_value=0.001, max_value=100.0),
    jitter=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
)
def test_backoff_stays_within_the_jitter_band(step, initial, cap, jitter):
    """Backoff is always between 75 % and 100 % of min(cap, initial * 2**step)."""
    full = min(cap, initial * 2**step)
    delay = backoff(step, initial=initial, cap=cap, jitter=jitter)
    assert 0.75 * full <= delay <= full
    assert delay <= cap


@given(
    step=st.integers(min_value=0, max_value=60),
    jitter=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
)
def test_backoff_never_shrinks_with_the_step(step, jitter):
    """For a fixed jitter the next step never waits less than this one."""
    this = backoff(step, initial=0.5, cap=BACKOFF_MAX, jitter=jitter)
    following = backoff(step + 1, initial=0.5, cap=BACKOFF_MAX, jitter=jitter)
    assert following >= this


# -- header_hint ----------------------------------------------------------------


def test_header_hint_reads_retry_after_ms_in_seconds():
    """retry-after-ms is converted from milliseconds to seconds."""
    assert header_hint({"retry-after-ms": "1500"}) == 1.5


def test_header_hint_prefers_retry_after_ms_over_retry_after():
    """When both are set, retry-after-ms wins."""
    assert header_hint({"retry-after-ms": "250", "retry-after": "7"}) == 0.25


def test_header_hint_falls_back_to_retry_after_when_ms_does_not_parse():
    """A garbage retry-after-ms is skipped in favour of retry-after."""
    assert header_hint({"retry-after-ms": "soon", "retry-after": "7"}) == 7.0


def test_header_hint_reads_retry_after_seconds():
    """retry-after in seconds is returned as is."""
    assert header_hint({"retry-after": "12"}) == 12.0


def test_header_hint_without_headers_is_none():
    """No hint header means no hint."""
    assert header_hint({}) is None
    assert header_hint({"x-ratelimit-remaining": "0"}) is None


def test_header_hint_empty_values_are_no_hint():
    """Empty header values are ignored."""
    assert header_hint({"retry-after-ms": "", "retry-after": ""}, now=NOW) is None


def test_header_hint_reads_an_http_date_when_now_is_given():
    """An HTTP date is turned into the seconds left from ``now``."""
    date = email.utils.formatdate(NOW + 30, usegmt=True)
    assert header_hint({"retry-after": date}, now=NOW) == pytest.approx(30.0, abs=1.0)


def test_header_hint_ignores_an_http_date_without_now():
    """Without ``now`` an HTTP date cannot be used and is no hint."""
    date = email.utils.formatdate(NOW + 30, usegmt=True)
    assert header_hint({"retry-after": date}) is None


def test_header_hint_past_http_date_is_zero():
    """A date already past means retry now (0), never a negative wait."""
    date = email.utils.formatdate(NOW - 120, usegmt=True)
    assert header_hint({"retry-after": date}, now=NOW) == 0.0


@pytest.mark.parametrize("value", ["soon", "tomorrow at noon", "12 parsecs", "Mon, 99 Foo"])
def test_header_hint_garbage_is_none(value):
    """A retry-after that is neither a number nor a date is no hint."""
    assert header_hint({"retry-after": value}, now=NOW) is None
    assert header_hint({"retry-after": value}) is None


def test_header_hint_negative_seconds_pass_through_and_are_not_usable():
    """A negative retry-after is returned as parsed, and usable_hint rejects it."""
    hint = header_hint({"retry-after": "-5"})
    assert hint == -5.0
    assert usable_hint(hint) is None


# -- message_hint ---------------------------------------------------------------


def test_message_hint_reads_seconds():
    """The phrase "try again in 1.5s" is 1.5 seconds."""
    assert message_hint("Rate limit reached. Please try again in 1.5s. Visit ...") == 1.5


def test_message_hint_reads_milliseconds():
    """The phrase "try again in 250ms" is 0.25 seconds."""
    assert message_hint("Please try again in 250ms.") == 0.25


def test_message_hint_is_case_insensitive():
    """The phrase and unit match in any case."""
    assert message_hint("TRY AGAIN IN 2S") == 2.0


def test_message_hint_without_a_delay_is_none():
    """A message with no delay phrase gives no hint."""
    assert message_hint("Something went wrong") is None
    assert message_hint("try again later") is None
    assert message_hint("") is None
    assert message_hint(None) is None


def test_message_hint_with_an_unparsable_number_is_none():
    """A number made only of dots is no hint (and does not raise)."""
    assert message_hint("try again in ..s") is None


# -- usable_hint ----------------------------------------------------------------


@pytest.mark.parametrize("hint", [None, 0, 0.0, -1.0, MAX_RETRY_AFTER + 0.001, 3600.0])
def test_usable_hint_rejects_hints_not_worth_sleeping_on(hint):
    """None, zero, negative and too-long hints are not usable."""
    assert usable_hint(hint) is None


@pytest.mark.parametrize("hint", [0.001, 1.5, MAX_RETRY_AFTER])
def test_usable_hint_keeps_positive_hints_up_to_the_limit(hint):
    """A positive hint up to MAX_RETRY_AFTER is returned unchanged."""
    assert usable_hint(hint) == hint


# -- verdict (the one rule of both transports) ---------------------------------------


def _delay(
    status: Optional[int],
    *,
    code: Optional[str] = None,
    headers: Optional[dict] = None,
    message: Optional[str] = None,
    attempt: int = 0,
    jitter: float = 0.0,
    now: Optional[float] = None,
) -> Optional[float]:
    return verdict(
        status=status,
        code=code,
        headers=headers or {},
        message=message,
        attempt=attempt,
        jitter=jitter,
        now=now,
    ).delay


def test_verdict_insufficient_quota_is_not_retried():
    """An out-of-credit 429 is final, whatever the hints say."""
    assert _delay(429, code="insufficient_quota", headers={"retry-after": "1"}) is None


@pytest.mark.parametrize("status", [None, 400, 401, 403, 404, 422])
def test_verdict_client_errors_are_not_retried(status):
    """Statuses other than 408, 409, 429 and 5xx (and no status) are not retried."""
    assert _delay(status, headers={"retry-after": "1"}) is None


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 529])
def test_verdict_without_hint_uses_the_error_backoff(status):
    """408, 409, 429 and 5xx with no hint wait the error backoff for the attempt."""
    assert _delay(status, attempt=0) == ERROR_BACKOFF_INITIAL
    assert _delay(status, attempt=2) == ERROR_BACKOFF_INITIAL * 4
    assert _delay(status, attempt=2, jitter=0.5) == pytest.approx(ERROR_BACKOFF_INITIAL * 4 * 0.875)


@pytest.mark.parametrize(
    ("code", "retried"),
    [
        ("rate_limit_exceeded", True),
        ("server_error", True),
        ("server_is_overloaded", True),
        ("invalid_prompt", False),
    ],
)
def test_verdict_classifies_a_status_less_error_by_its_code(code, retried):
    """An error event without a status but with a known code is retried like its status."""
    assert (_delay(None, code=code) is not None) is retried


def test_verdict_backoff_is_capped():
    """A late attempt without hint waits at most BACKOFF_MAX."""
    assert _delay(500, attempt=30) == BACKOFF_MAX


@pytest.mark.parametrize("status", [429, 500])
def test_verdict_uses_the_header_hint(status):
    """A header hint is used as the delay, ignoring jitter and the attempt."""
    assert _delay(status, headers={"retry-after-ms": "1200"}, attempt=3, jitter=0.9) == 1.2
    assert _delay(status, headers={"retry-after": "4"}) == 4.0


def test_verdict_uses_the_message_hint_without_header():
    """With no header hint, the delay written in the message is used."""
    assert _delay(429, message="Please try again in 2.5s.") == 2.5


def test_verdict_header_hint_beats_the_message():
    """A header hint takes precedence over the message."""
    assert _delay(429, headers={"retry-after": "3"}, message="try again in 9s") == 3.0


def test_verdict_too_long_hint_is_not_retried_and_says_so():
    """A hint longer than MAX_RETRY_AFTER means no retry, with the hint kept for the error."""
    rule = verdict(
        status=429, code=None, headers={"retry-after": "120"}, message=None, attempt=0, jitter=0
    )
    assert rule.delay is None and rule.hint == 120.0 and "120" in rule.why
    assert _delay(429, message="try again in 61s") is None


def test_verdict_hint_at_the_limit_is_used():
    """A hint of exactly MAX_RETRY_AFTER is still waited on."""
    assert _delay(503, headers={"retry-after": "60"}) == MAX_RETRY_AFTER


def test_verdict_negative_hint_falls_back_to_backoff():
    """A negative header hint is ignored in favour of the backoff."""
    assert _delay(500, headers={"retry-after": "-3"}) == ERROR_BACKOFF_INITIAL


def test_verdict_reads_http_dates_given_the_time():
    """An HTTP-date retry-after counts when the wall time is given."""
    date = email.utils.formatdate(NOW + 30, usegmt=True)
    assert _delay(429, headers={"retry-after": date}, now=NOW) == pytest.approx(30, abs=1)
    assert _delay(429, headers={"retry-after": date}) == ERROR_BACKOFF_INITIAL  # no clock


@pytest.mark.parametrize(
    ("value", "status", "retried"), [("true", 400, True), ("false", 500, False)]
)
def test_verdict_x_should_retry_overrides_the_status(value, status, retried):
    """x-should-retry is the server's explicit verdict, over the status rule."""
    assert (_delay(status, headers={"x-should-retry": value}) is not None) is retried


# -- http_refusal ---------------------------------------------------------------


def _never_called() -> Optional[str]:
    raise AssertionError("error_code must not be called")


def _code(value: Optional[str], calls: List[int]):
    def read() -> Optional[str]:
        calls.append(1)
        return value

    return read


@pytest.mark.parametrize("verdict", ["true", "TRUE", " True "])
def test_http_refusal_should_retry_true_overrides_the_status(verdict):
    """x-should-retry: true retries even a status that is not retryable."""
    assert http_refusal(400, should_retry=verdict, hint=None, error_code=_never_called) is None
    assert http_refusal(429, should_retry=verdict, hint=3600.0, error_code=_never_called) is None


@pytest.mark.parametrize("verdict", ["false", "FALSE", " false"])
def test_http_refusal_should_retry_false_overrides_the_status(verdict):
    """x-should-retry: false refuses even a retryable status."""
    reason = http_refusal(503, should_retry=verdict, hint=None, error_code=_never_called)
    assert reason is not None
    assert "x-should-retry" in reason


@pytest.mark.parametrize("status", sorted(RETRY_STATUSES - {429}))
def test_http_refusal_retries_retryable_statuses(status):
    """Every status in RETRY_STATUSES is retried, without reading the body."""
    assert http_refusal(status, should_retry="", hint=None, error_code=_never_called) is None


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_http_refusal_refuses_other_statuses(status):
    """A status outside RETRY_STATUSES is refused, naming the status."""
    reason = http_refusal(status, should_retry="", hint=None, error_code=_never_called)
    assert reason is not None
    assert str(status) in reason


def test_http_refusal_unknown_should_retry_value_is_ignored():
    """An x-should-retry value other than true/false leaves the status to decide."""
    assert http_refusal(500, should_retry="maybe", hint=None, error_code=_never_called) is None
    assert http_refusal(400, should_retry="maybe", hint=None, error_code=_never_called)


def test_http_refusal_429_insufficient_quota_is_refused():
    """A 429 whose body says insufficient_quota is not retried."""
    calls: List[int] = []
    reason = http_refusal(
        429, should_retry="", hint=None, error_code=_code("insufficient_quota", calls)
    )
    assert reason is not None
    assert "insufficient_quota" in reason
    assert calls == [1]


def test_http_refusal_429_rate_limit_is_retried():
    """A 429 rate limit (any other code) is retried, after reading the code once."""
    calls: List[int] = []
    assert (
        http_refusal(429, should_retry="", hint=2.0, error_code=_code("rate_limit_exceeded", calls))
        is None
    )
    assert calls == [1]


def test_http_refusal_does_not_read_the_code_for_a_500():
    """The error_code callable is only called for a 429."""
    calls: List[int] = []
    assert http_refusal(500, should_retry="", hint=None, error_code=_code("x", calls)) is None
    assert calls == []


def test_http_refusal_too_long_hint_refuses():
    """Over HTTP a hint longer than MAX_RETRY_AFTER means: do not retry."""
    reason = http_refusal(503, should_retry="", hint=61.0, error_code=_never_called)
    assert reason is not None
    assert "61" in reason
    calls: List[int] = []
    assert http_refusal(429, should_retry="", hint=3600.0, error_code=_code(None, calls))


def test_http_refusal_hint_at_the_limit_is_retried():
    """A hint of exactly MAX_RETRY_AFTER is still retried."""
    assert (
        http_refusal(503, should_retry="", hint=MAX_RETRY_AFTER, error_code=_never_called) is None
    )


def test_a_cooldown_doubles_per_failure_in_a_row_up_to_its_cap_and_resets() -> None:
    from openai_ws._protocol.retry import Cooldown

    wait = Cooldown(30.0, 100.0)
    assert wait.over(0.0)
    assert [wait.failed(now) for now in (0.0, 10.0, 20.0, 30.0)] == [30.0, 60.0, 100.0, 100.0]
    assert not wait.over(129.0) and wait.over(130.0)
    wait.succeeded()
    assert wait.over(0.0) and wait.failed(0.0) == 30.0
