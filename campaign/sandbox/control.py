"""Inspection and control of a running sandbox, under ``/_sandbox/`` (no auth).

``GET messages|batches|callbacks|requests|stats|settings``, ``PATCH settings``, ``POST reset`` and
``POST expire-tokens``: what tests, the demo and benchmarks use to look inside and to change
faults while a client is running.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiohttp import web

from campaign.errors import ConfigError
from campaign.sandbox import keys, ratelimit, responses, settings
from campaign.sandbox.guard import read_json


def _page(request: web.Request, items: Sequence[Any]) -> Sequence[Any] | web.Response:
    """``items[offset:offset+limit]`` from the query (``limit`` absent: all)."""
    try:
        offset = int(request.query.get("offset", "0"))
        limit = int(request.query["limit"]) if "limit" in request.query else None
    except ValueError:
        return responses.invalid_argument([("offset", "offset and limit must be integers")])
    if offset < 0 or (limit is not None and limit < 0):
        return responses.invalid_argument([("offset", "offset and limit must be >= 0")])
    return items[offset:] if limit is None else items[offset : offset + limit]


async def messages(request: web.Request) -> web.Response:
    """``GET /_sandbox/messages?offset=&limit=&batch_id=``: accepted messages, in order."""
    state = keys.state(request.app)
    found: Sequence[Any] = state.messages
    if batch_id := request.query.get("batch_id"):
        found = [m for m in found if m.batch_id == batch_id]
    page = _page(request, found)
    if isinstance(page, web.Response):
        return page
    body = {"total": len(found), "messages": [m.to_json() for m in page]}
    return responses.json_response(body)


async def batches(request: web.Request) -> web.Response:
    """``GET /_sandbox/batches``: every batch, oldest first."""
    found = list(keys.state(request.app).batches.values())
    page = _page(request, found)
    if isinstance(page, web.Response):
        return page
    return responses.json_response({"total": len(found), "batches": [b.to_json() for b in page]})


async def callbacks(request: web.Request) -> web.Response:
    """``GET /_sandbox/callbacks``: every callback attempt and what the receiver answered."""
    found = keys.state(request.app).callback_log
    page = _page(request, found)
    if isinstance(page, web.Response):
        return page
    return responses.json_response({"total": len(found), "callbacks": list(page)})


async def requests(request: web.Request) -> web.Response:
    """``GET /_sandbox/requests?tolerance=``: every API request's arrival and answer (seconds
    since start), and ``early``: requests that arrived while an earlier 429's Retry-After was
    running, more than ``tolerance`` seconds (default 0.05) after that 429 was answered."""
    state = keys.state(request.app)
    try:
        tolerance = float(request.query.get("tolerance", "0.05"))
    except ValueError:
        return responses.invalid_argument([("tolerance", "must be a number of seconds")])
    found = list(state.arrivals)
    page = _page(request, found)
    if isinstance(page, web.Response):
        return page
    early = ratelimit.early_requests(found, tolerance)
    body = {
        "total": len(found),
        "early": [{"limited": a.to_json(), "request": b.to_json()} for a, b in early],
        "requests": [a.to_json() for a in page],
    }
    return responses.json_response(body)


async def stats(request: web.Request) -> web.Response:
    """``GET /_sandbox/stats``: the counters."""
    return responses.json_response(keys.state(request.app).stats_json())


async def reset(request: web.Request) -> web.Response:
    """``POST /_sandbox/reset``: forget everything recorded; settings and tokens stay."""
    keys.state(request.app).reset()
    services = request.app[keys.SERVICES]
    if services.dispatcher is not None:
        services.dispatcher.clear()
    if services.scheduler is not None:
        services.scheduler.clear()
    return responses.json_response({"reset": True})


async def get_settings(request: web.Request) -> web.Response:
    """``GET /_sandbox/settings``."""
    return responses.json_response(settings.to_json(keys.state(request.app).settings))


async def patch_settings(request: web.Request) -> web.Response:
    """``PATCH /_sandbox/settings``: change some settings now; answers the new settings."""
    state = keys.state(request.app)
    changes = await read_json(request)
    if isinstance(changes, web.Response):
        return changes
    if not isinstance(changes, dict):
        return responses.invalid_argument([("", "the body must be a JSON object")])
    try:
        state.settings = settings.patched(state.settings, changes)
    except ConfigError as exc:
        return responses.api_error(400, str(exc))
    return responses.json_response(settings.to_json(state.settings))


async def expire_tokens(request: web.Request) -> web.Response:
    """``POST /_sandbox/expire-tokens``: every issued token is expired from now on."""
    count = keys.state(request.app).tokens.expire_all()
    return responses.json_response({"expired": count})


def add_routes(app: web.Application) -> None:
    """Register the ``/_sandbox/`` routes on ``app``."""
    app.router.add_get("/_sandbox/messages", messages)
    app.router.add_get("/_sandbox/batches", batches)
    app.router.add_get("/_sandbox/callbacks", callbacks)
    app.router.add_get("/_sandbox/requests", requests)
    app.router.add_get("/_sandbox/stats", stats)
    app.router.add_post("/_sandbox/reset", reset)
    app.router.add_get("/_sandbox/settings", get_settings)
    app.router.add_patch("/_sandbox/settings", patch_settings)
    app.router.add_post("/_sandbox/expire-tokens", expire_tokens)
