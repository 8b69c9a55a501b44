"""Retry decisions: what to do after a failed call to Sinch. Pure, except :func:`call`.

- retryable (429, 5xx, never connected): wait and try again, up to ``max_attempts`` in all;
  the wait is exponential backoff with jitter, and never shorter than Sinch's ``Retry-After``;
- ambiguous (sent, answer lost): never re-sent blindly; the recipient becomes IN_DOUBT;
- permanent (4xx): fail at once with Sinch's code and message.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from campaign import errors


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base_delay: float = 0.5
    factor: float = 2.0
    max_delay: float = 60.0
    # Added on top of Retry-After so that many waiters do not come back in the same instant.
    retry_after_jitter: float = 0.25


class Outcome(StrEnum):
    RETRY = "retry"
    FAIL = "fail"
    IN_DOUBT = "in_doubt"


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    delay: float = 0.0


def backoff(policy: RetryPolicy, attempt: int, rand: float) -> float:
    """Delay before attempt ``attempt + 1``, "equal jitter": half fixed, half random.

    ``attempt`` counts from 1 (the attempt that just failed); ``rand`` is uniform in [0, 1).
    """
    ceiling = min(policy.max_delay, policy.base_delay * policy.factor ** max(0, attempt - 1))
    return ceiling / 2 + ceiling / 2 * rand


def delay(policy: RetryPolicy, attempt: int, error: errors.SinchError, rand: float) -> float:
    """The wait after attempt ``attempt`` (from 1) failed with ``error``: :func:`backoff`,
    never shorter than Sinch's ``Retry-After`` (plus jitter, so that waiters spread out)."""
    wait = backoff(policy, attempt, rand)
    if isinstance(error, errors.SinchRetryableError) and error.retry_after is not None:
        wait = max(wait, error.retry_after + policy.retry_after_jitter * rand)
    return wait


def retryable(error: errors.SinchError) -> bool:
    """Safe to send again as it is: nothing reached Sinch, or Sinch asked to come back."""
    return isinstance(error, errors.SinchRetryableError)


def repeatable(error: errors.SinchError) -> bool:
    """For a call that changes nothing at Sinch (a lookup): a lost answer is safe to ask again."""
    return retryable(error) or isinstance(error, errors.SinchAmbiguousError)


def decide(policy: RetryPolicy, attempt: int, error: errors.SinchError, rand: float) -> Decision:
    """What to do after attempt number ``attempt`` (from 1) failed with ``error``."""
    if isinstance(error, errors.SinchAmbiguousError):
        return Decision(Outcome.IN_DOUBT)
    if not retryable(error) or attempt >= policy.max_attempts:
        return Decision(Outcome.FAIL)
    return Decision(Outcome.RETRY, delay(policy, attempt, error, rand))


_T = TypeVar("_T")


async def call(
    fn: Callable[[], Awaitable[_T]],
    policy: RetryPolicy,
    *,
    retry_on: Callable[[errors.SinchError], bool] = retryable,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    rand: Callable[[], float] = random.random,
) -> _T:
    """Run ``fn`` until it succeeds, up to ``policy.max_attempts`` times in all, waiting
    :func:`delay` after each failure that ``retry_on`` accepts.

    For idempotent calls (lookups, cancels, tokens) and for sends whose every failure is
    classified. Any other error, or the last one, is raised to the caller. A lookup, which
    changes nothing at Sinch, may also retry an ambiguous error through ``retry_on``.
    """
    attempt = 1
    while True:
        try:
            return await fn()
        except errors.SinchError as exc:
            if attempt >= policy.max_attempts or not retry_on(exc):
                raise
            await sleep(delay(policy, attempt, exc, rand()))
            attempt += 1
