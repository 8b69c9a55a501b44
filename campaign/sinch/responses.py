"""Turning Sinch's answers into results or classified errors. Pure: no I/O."""

from __future__ import annotations

import email.utils
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from campaign import errors, secrets

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date), or None."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - now).total_seconds())
    if seconds != seconds or seconds < 0:  # NaN or negative: ignore the header
        return None
    return seconds


def parse_error_body(body: bytes) -> tuple[str | None, str | None, list[Any]]:
    """``(status, message, details)`` from Sinch's ``{"error": {...}}`` or an OAuth error body.

    Anything else (HTML from a proxy, empty body) gives ``(None, None, [])``.
    """
    try:
        data = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None, None, []
    if not isinstance(data, dict):
        return None, None, []
    inner = data.get("error")
    if isinstance(inner, dict):
        status = inner.get("status")
        message = inner.get("message")
        details = inner.get("details")
        return (
            status if isinstance(status, str) else None,
            message if isinstance(message, str) else None,
            details if isinstance(details, list) else [],
        )
    # OAuth (RFC 6749) or RFC 7807 shapes, from the token endpoint.
    code = inner if isinstance(inner, str) else data.get("title")
    message = data.get("error_description") or data.get("detail")
    return (
        code if isinstance(code, str) else None,
        message if isinstance(message, str) else None,
        [],
    )


def is_token_expired(status: int, headers: Mapping[str, str]) -> bool:
    """A 401 that says the bearer token expired (what every Sinch SDK refreshes on)."""
    return status == 401 and "expired" in headers.get("WWW-Authenticate", "").lower()


def error_for_status(
    status: int, headers: Mapping[str, str], body: bytes, *, now: datetime
) -> errors.SinchError:
    """The classified error for a non-2xx answer. Its text is stored and printed, so any
    credential that the answer echoes (a proxy's debug page, say) is masked first."""
    code, message, details = parse_error_body(body)
    text = secrets.redact(message) if message else _REASONS.get(status, "unexpected answer")
    if status == 429:
        retry_after = parse_retry_after(headers.get("Retry-After"), now)
        kind = (
            errors.SinchQueueFullError
            if names_queue(text, retry_after)
            else errors.SinchRateLimitedError
        )
        return kind(text, status=status, code=code, details=details, retry_after=retry_after)
    if status in RETRYABLE_STATUSES:
        return errors.SinchRetryableError(
            text,
            status=status,
            code=code,
            details=details,
            retry_after=parse_retry_after(headers.get("Retry-After"), now),
        )
    if status in (401, 403):
        return errors.SinchAuthError(text, status=status, code=code, details=details)
    return errors.SinchPermanentError(text, status=status, code=code, details=details)


def names_queue(message: str, retry_after: float | None) -> bool:
    """Whether a 429 is the app's MT queue being full rather than the project's request rate.
    Sinch documents neither answer's body; the rate limit's may carry ``Retry-After``, the
    queue's cannot (when it has room is unknown), and its message names the queue."""
    return retry_after is None and "queue" in message.lower()


def field_violations(error: errors.SinchError) -> list[tuple[str, str]]:
    """``(field, description)`` pairs from a 400's ``google.rpc.BadRequest`` details."""
    found: list[tuple[str, str]] = []
    for detail in error.details:
        if not isinstance(detail, dict):
            continue
        for violation in detail.get("field_violations") or []:
            if isinstance(violation, dict):
                description = secrets.redact(str(violation.get("description", "")))
                found.append((str(violation.get("field", "")), description))
    return found


_REASONS = {
    400: "invalid request",
    401: "unauthenticated",
    403: "permission denied",
    404: "not found",
    429: "too many requests",
    500: "internal error",
    502: "bad gateway",
    503: "unavailable",
    504: "gateway timeout",
}
