"""The JSON answers of the sandbox, in Sinch's shapes.

API errors use the Google RPC shape that every Sinch SDK reads::

    {"error": {"code": 400, "message": "...", "status": "INVALID_ARGUMENT", "details": [...]}}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from aiohttp import web

from campaign import jsonutil

BAD_REQUEST_TYPE: Final = "type.googleapis.com/google.rpc.BadRequest"

STATUS_NAMES: Final = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


def json_response(
    body: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """``body`` serialised with orjson as an ``application/json`` response."""
    return web.Response(
        body=jsonutil.dumpb(body),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def api_error(
    status: int,
    message: str,
    *,
    details: Sequence[Any] = (),
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """A Google-RPC style error answer with HTTP ``status``."""
    body = {
        "error": {
            "code": status,
            "message": message,
            "status": STATUS_NAMES.get(status, "UNKNOWN"),
            "details": list(details),
        }
    }
    return json_response(body, status=status, headers=headers)


def invalid_argument(violations: Sequence[tuple[str, str]]) -> web.Response:
    """400 listing every ``(field, description)`` violation found."""
    detail = {
        "@type": BAD_REQUEST_TYPE,
        "field_violations": [{"field": f, "description": d} for f, d in violations],
    }
    return api_error(400, "Invalid argument", details=[detail])


def queue_full(app_id: str, limit: int) -> web.Response:
    """429 RESOURCE_EXHAUSTED for a full MT queue. No ``Retry-After``, unlike the per-project
    rate limit's 429: the queue drains at the app's rate, and when it has room is unknown."""
    return api_error(
        429, f"The outbound queue is full: app {app_id!r} holds {limit} messages not yet sent"
    )


def not_found(what: str) -> web.Response:
    """404 NOT_FOUND for an unknown project, app or batch."""
    return api_error(404, f"{what} not found")


def iso_millis(moment: datetime) -> str:
    """``2024-06-18T12:34:56.123Z``: UTC, milliseconds, ``Z``."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def iso_seconds(moment: datetime) -> str:
    """``2024-06-18T12:35:00Z`` (milliseconds added only when there are some)."""
    moment = moment.astimezone(UTC)
    if moment.microsecond:
        return iso_millis(moment)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
