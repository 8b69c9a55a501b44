from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from campaign import errors
from campaign.sinch import responses

NOW = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)


def sinch_error(code: int, status: str, message: str = "m", details: list | None = None) -> bytes:  # type: ignore[type-arg]
    return orjson.dumps(
        {"error": {"code": code, "message": message, "status": status, "details": details or []}}
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3", 3.0),
        ("0.5", 0.5),
        (" 10 ", 10.0),
        ("Sat, 21 Nov 2026 12:00:30 GMT", 30.0),
        ("Sat, 21 Nov 2026 11:59:00 GMT", 0.0),  # in the past: no wait
        ("-1", None),
        ("soon", None),
        (None, None),
    ],
)
def test_retry_after(value: str | None, expected: float | None) -> None:
    assert responses.parse_retry_after(value, NOW) == expected


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_retryable_statuses(status: int) -> None:
    error = responses.error_for_status(
        status, {"Retry-After": "2"}, sinch_error(status, "X"), now=NOW
    )
    assert isinstance(error, errors.SinchRetryableError)
    assert error.retry_after == 2.0
    assert error.status == status
    assert isinstance(error, errors.SinchRateLimitedError) == (status == 429)


@pytest.mark.parametrize(
    ("headers", "message", "kind"),
    [
        ({}, "The outbound queue is full: app 'A' holds 500000 messages", "queue"),
        ({}, "Too many requests", "rate"),
        # Retry-After says when to come back: the project's rate, whatever the message says.
        ({"Retry-After": "1"}, "queue full", "rate"),
    ],
)
def test_a_429_for_the_apps_full_queue_is_told_from_the_request_rates(
    headers: dict[str, str], message: str, kind: str
) -> None:
    body = sinch_error(429, "RESOURCE_EXHAUSTED", message)
    error = responses.error_for_status(429, headers, body, now=NOW)
    assert isinstance(error, errors.SinchQueueFullError) == (kind == "queue")
    assert isinstance(error, errors.SinchRateLimitedError) == (kind == "rate")
    assert isinstance(error, errors.SinchRetryableError)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, errors.SinchPermanentError),
        (401, errors.SinchAuthError),
        (403, errors.SinchAuthError),
        (404, errors.SinchPermanentError),
        (501, errors.SinchPermanentError),
    ],
)
def test_permanent_statuses(status: int, kind: type[errors.SinchError]) -> None:
    error = responses.error_for_status(status, {}, sinch_error(status, "S", "boom"), now=NOW)
    assert type(error) is kind
    assert not isinstance(error, errors.SinchRetryableError)
    assert error.code == "S"
    assert error.message == "boom"
    assert str(error) == f"HTTP {status} S: boom"


def test_field_violations_are_exposed() -> None:
    details = [
        {
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "field_violations": [{"field": "recipient", "description": "Field is mandatory"}],
        }
    ]
    error = responses.error_for_status(
        400, {}, sinch_error(400, "INVALID_ARGUMENT", "Invalid argument", details), now=NOW
    )
    assert responses.field_violations(error) == [("recipient", "Field is mandatory")]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"<html>bad gateway</html>", (None, None, [])),
        (b"", (None, None, [])),
        (b"[]", (None, None, [])),
        (
            b'{"error":"invalid_client","error_description":"bad creds"}',
            ("invalid_client", "bad creds", []),
        ),
        (b'{"title":"Invalid credentials","detail":"no"}', ("Invalid credentials", "no", [])),
    ],
)
def test_error_bodies_of_other_shapes(body: bytes, expected: tuple) -> None:  # type: ignore[type-arg]
    assert responses.parse_error_body(body) == expected


def test_expired_token_detection() -> None:
    expired = {
        "WWW-Authenticate": 'Bearer error="invalid_token", error_description="token expired"'
    }
    assert responses.is_token_expired(401, expired)
    assert not responses.is_token_expired(401, {"WWW-Authenticate": 'Bearer error="invalid_token"'})
    assert not responses.is_token_expired(403, expired)
