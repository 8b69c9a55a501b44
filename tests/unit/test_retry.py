from __future__ import annotations

import pytest

from campaign import errors, retry
from campaign.config import SinchConfig
from campaign.sinch import auth

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


def test_delay_is_backoff_with_retry_after_as_a_floor() -> None:
    unavailable = errors.SinchRetryableError("x", status=503)
    assert retry.delay(POLICY, 2, unavailable, 0.0) == retry.backoff(POLICY, 2, 0.0) == 1.0
    limited = errors.SinchRateLimitedError("y", status=429, retry_after=3.0)
    assert retry.delay(POLICY, 1, limited, 0.0) == 3.0
    assert retry.delay(POLICY, 1, errors.SinchAmbiguousError("lost"), 0.0) == 0.5


class _Failing:
    """``fn`` for :func:`retry.call` failing with ``error`` every time; counts its calls."""

    def __init__(self, error: errors.SinchError) -> None:
        self.error = error
        self.calls = 0

    async def __call__(self) -> None:
        self.calls += 1
        raise self.error


async def test_call_gives_up_after_max_attempts_with_the_last_error() -> None:
    slept: list[float] = []

    async def sleep(delay: float) -> None:
        slept.append(delay)

    fn = _Failing(errors.SinchRetryableError("down", status=503))
    with pytest.raises(errors.SinchRetryableError):
        await retry.call(fn, POLICY, sleep=sleep, rand=lambda: 0.0)
    assert fn.calls == POLICY.max_attempts == 4
    assert slept == [0.5, 1.0, 2.0]


async def test_call_retries_a_lost_answer_only_when_told_to() -> None:
    async def sleep(delay: float) -> None:
        pass

    lost = _Failing(errors.SinchAmbiguousError("lost"))
    with pytest.raises(errors.SinchAmbiguousError):
        await retry.call(lost, POLICY, sleep=sleep)
    assert lost.calls == 1
    lookup = _Failing(errors.SinchAmbiguousError("lost"))
    with pytest.raises(errors.SinchAmbiguousError):
        await retry.call(lookup, POLICY, retry_on=retry.repeatable, sleep=sleep)
    assert lookup.calls == 4
    assert not retry.repeatable(errors.SinchPermanentError("no", status=404))


class _Tokens:
    def __init__(self, error: errors.SinchError) -> None:
        self.token = _Failing(error)


@pytest.mark.parametrize(
    ("error", "raised", "calls"),
    [
        (errors.SinchRetryableError("down", status=503), errors.SinchUnavailableError, 3),
        (  # a wait shorter than the start-up's bound is waited out
            errors.SinchRetryableError("busy", status=429, retry_after=0),
            errors.SinchUnavailableError,
            3,
        ),
        (  # a long one is not: the run stops at once and says so
            errors.SinchRetryableError("busy", status=429, retry_after=3600),
            errors.SinchUnavailableError,
            1,
        ),
        (errors.SinchAuthError("refused", status=401), errors.ConfigError, 1),
        (errors.SinchPermanentError("odd", status=404), None, 1),
    ],
)
async def test_check_credentials_retries_only_an_unavailable_token_endpoint(
    error: errors.SinchError, raised: type[Exception] | None, calls: int
) -> None:
    tokens = _Tokens(error)
    check = auth.check_credentials(tokens, SinchConfig(), backoff=0.001)  # type: ignore[arg-type]
    if raised is None:
        await check
    else:
        with pytest.raises(raised):
            await check
    assert tokens.token.calls == calls


def test_one_failure_code_for_every_mode() -> None:
    """Sinch's code when its answer has one, else the HTTP status (a bodiless 5xx), else the
    kind of error: individual and batch sends record the same (batch mode once recorded
    nothing for a bodiless 503, and those rows left the error summary)."""
    from campaign.sending import outcomes

    assert outcomes.failure_code(errors.SinchRetryableError("x", status=503)) == "HTTP_503"
    assert (
        outcomes.failure_code(errors.SinchRetryableError("x", status=503, code="UNAVAILABLE"))
        == "UNAVAILABLE"
    )
    assert outcomes.failure_code(errors.SinchAmbiguousError("gone")) == "SinchAmbiguousError"
