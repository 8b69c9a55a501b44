from __future__ import annotations

import pytest

from campaign import errors, retry

POLICY = retry.RetryPolicy(max_attempts=4, base_delay=1.0, factor=2.0, max_delay=5.0)


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    assert [retry.backoff(POLICY, n, 0.0) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 2.5, 2.5]
    assert [retry.backoff(POLICY, n, 0.999999) for n in (1, 2, 3)] == pytest.approx([1, 2, 4])


def test_retryable_is_retried_until_the_budget_is_spent() -> None:
    error = errors.SinchRetryableError("unavailable", status=503)
    assert retry.decide(POLICY, 1, error, 0.0) == retry.Decision(retry.Outcome.RETRY, 0.5)
    assert retry.decide(POLICY, 3, error, 0.0).outcome is retry.Outcome.RETRY
    assert retry.decide(POLICY, 4, error, 0.0).outcome is retry.Outcome.FAIL


def test_retry_after_is_a_floor() -> None:
    error = errors.SinchRateLimitedError("slow down", status=429, retry_after=3.0)
    decision = retry.decide(POLICY, 1, error, 0.5)
    assert decision.outcome is retry.Outcome.RETRY
    assert decision.delay == pytest.approx(3.0 + 0.125)
    small = errors.SinchRateLimitedError("slow down", status=429, retry_after=0.1)
    assert retry.decide(POLICY, 3, small, 0.0).delay == 2.0  # backoff longer than Retry-After


def test_ambiguous_is_in_doubt_and_permanent_fails() -> None:
    assert (
        retry.decide(POLICY, 1, errors.SinchAmbiguousError("lost"), 0.0).outcome
        is retry.Outcome.IN_DOUBT
    )
    assert (
        retry.decide(POLICY, 1, errors.SinchPermanentError("bad", status=400), 0.0).outcome
        is retry.Outcome.FAIL
    )


async def test_call_retries_then_returns() -> None:
    slept: list[float] = []
    outcomes: list[Exception | str] = [
        errors.SinchRetryableError("x", status=500),
        errors.SinchRateLimitedError("y", status=429, retry_after=2.0),
        "ok",
    ]

    async def fn() -> str:
        item = outcomes.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    async def sleep(delay: float) -> None:
        slept.append(delay)

    assert await retry.call(fn, POLICY, sleep=sleep, rand=lambda: 0.0) == "ok"
    assert slept == [0.5, 2.0]


async def test_call_raises_permanent_at_once() -> None:
    calls = 0

    async def fn() -> None:
        nonlocal calls
        calls += 1
        raise errors.SinchPermanentError("no", status=404)

    async def sleep(delay: float) -> None:
        raise AssertionError("must not sleep")

    with pytest.raises(errors.SinchPermanentError):
        await retry.call(fn, POLICY, sleep=sleep)
    assert calls == 1


def test_one_failure_code_for_every_mode() -> None:
    """Sinch's code when its answer has one, else the HTTP status (a bodiless 5xx), else the
    kind of error: individual and batch sends record the same (batch mode once recorded
    nothing for a bodiless 503, and those rows left the error summary)."""
    from campaign import batch_dispatcher, dispatcher

    assert dispatcher.failure_code(errors.SinchRetryableError("x", status=503)) == "HTTP_503"
    assert (
        dispatcher.failure_code(errors.SinchRetryableError("x", status=503, code="UNAVAILABLE"))
        == "UNAVAILABLE"
    )
    assert dispatcher.failure_code(errors.SinchAmbiguousError("gone")) == "SinchAmbiguousError"
    assert batch_dispatcher.failure_code is dispatcher.failure_code
