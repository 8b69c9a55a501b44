"""The aiohttp application: verify -> check -> parse -> group commit -> answer.

``POST {path}``
    413 body over ``max_body_bytes``; 408 body not received within ``body_timeout_s``; 401
    signature missing, malformed or wrong, timestamp outside the window, nonce already seen
    (nothing is written for any of these); 400 JSON nested deeper than ``max_json_depth`` or
    not a Sinch callback; 503 (``Retry-After: 1``) the database did not store it; 200 once the
    event is durably stored.
``GET {path}/health`` and ``GET /healthz``
    200 and the counters of :class:`~campaign.receiver.settings.ReceiverStats`.
``GET /metrics``
    the same counters, and the group commits' latency and size, in Prometheus' text format
    (:mod:`campaign.receiver.metrics`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiohttp import web

from campaign import jsonutil, optout, tracking
from campaign.receiver import checks, metrics
from campaign.receiver.committer import Committer, Unavailable, Unstorable
from campaign.receiver.settings import ReceiverSettings, ReceiverStats
from campaign.sinch import signature
from campaign.store import repository
from campaign.store.events import NewEvent

log = logging.getLogger(__name__)


@dataclass
class ReceiverState:
    """What the handlers share: settings, the secret's value, counters, nonces, committer."""

    store: repository.Store
    settings: ReceiverSettings
    secret: str | None = field(repr=False)
    stats: ReceiverStats
    nonces: checks.NonceWindow
    committer: Committer
    keywords: optout.Keywords


STATE = web.AppKey("receiver_state", ReceiverState)

_OK = b'{"status":"stored"}'
_UNAVAILABLE_HEADERS = {"Retry-After": "1"}


def make_app(store: repository.Store, settings: ReceiverSettings) -> web.Application:
    """The receiver as an aiohttp application; the committer starts and stops with it.

    Raises :class:`~campaign.errors.ConfigError` when no secret is set and unsigned callbacks
    are not allowed. Nothing here is bound to a loop until the app starts.
    """
    secret = settings.require_secret()
    stats = ReceiverStats()
    state = ReceiverState(
        store=store,
        settings=settings,
        secret=secret,
        stats=stats,
        nonces=checks.NonceWindow(settings.max_nonces),
        committer=Committer(store, settings, stats),
        keywords=optout.Keywords(settings.optout_keywords),
    )
    # aiohttp refuses a body over client_max_size while reading it (chunked bodies included).
    app = web.Application(client_max_size=settings.max_body_bytes)
    app[STATE] = state
    app[metrics.METRICS] = metrics.registry_for(stats)
    app.cleanup_ctx.append(_committer_ctx)
    app.router.add_post(settings.path, _callback)
    app.router.add_get(settings.path.rstrip("/") + "/health", _health)
    app.router.add_get("/healthz", _health)
    app.router.add_get("/metrics", metrics.serve)
    return app


async def _committer_ctx(app: web.Application) -> AsyncIterator[None]:
    committer = app[STATE].committer
    await committer.start()
    yield
    # The site is stopped and in-flight requests have been answered: drain what is left.
    await committer.close()


def _reject(
    stats: ReceiverStats, status: int, reason: str, detail: str, *, close: bool = False
) -> web.Response:
    stats.rejected[reason] += 1
    # The committer logs a database outage once; one line per refused request would flood.
    log.log(
        logging.DEBUG if status == 503 else logging.INFO,
        "callback refused (%d %s): %s",
        status,
        reason,
        detail,
        extra={"action": "receiver.reject", "reason": reason},
    )
    body = jsonutil.dumpb({"error": reason, "detail": detail})
    headers = _UNAVAILABLE_HEADERS if status == 503 else None
    response = web.Response(
        status=status, body=body, content_type="application/json", headers=headers
    )
    if close:
        response.force_close()
    return response


async def _callback(request: web.Request) -> web.Response:
    state = request.app[STATE]
    settings, stats = state.settings, state.stats
    stats.received += 1
    body = await _read_body(request, settings, stats)
    if isinstance(body, web.Response):
        return body
    now = settings.clock()
    verified = _verify(state, request, body, now)
    if isinstance(verified, web.Response):
        return verified
    nonce, expires_at = verified

    if checks.too_deep(body, settings.max_json_depth):
        return _reject(stats, 400, "too_deep", f"JSON nested over {settings.max_json_depth}")
    try:
        event = tracking.parse_callback(body)
        payload = body.decode("utf-8")
    except (tracking.CallbackError, UnicodeDecodeError) as exc:
        return _reject(stats, 400, "not_callback", str(exc)[:200])

    # No await since the nonce check: registering it now closes the window for a concurrent copy.
    if nonce is not None:
        state.nonces.add(nonce, expires_at)
    # A reply is kept like every callback; a STOP reply or an OPT_OUT also opts its sender out,
    # in the transaction that stores it (campaign.store.suppression.apply_opt_outs).
    opt_out = optout.found_in(event.trigger, body, state.keywords)
    if event.trigger == "MESSAGE_INBOUND":
        stats.inbound += 1
    if opt_out is not None:
        stats.opt_outs += 1
    new = NewEvent(
        received_at=datetime.fromtimestamp(now, UTC),
        nonce=nonce,
        payload=payload,
        event=event,
        opt_out=opt_out,
    )
    return await _store(state, new)


async def _read_body(
    request: web.Request, settings: ReceiverSettings, stats: ReceiverStats
) -> bytes | web.Response:
    """The request's body, or the refusal: too large, or not received in time."""
    length = request.content_length
    if length is not None and length > settings.max_body_bytes:
        return _reject(stats, 413, "too_large", f"body over {settings.max_body_bytes} bytes")
    # The usual callback's body came with its headers: no timer for it.
    arrived = request.content.is_eof()
    deadline = contextlib.nullcontext() if arrived else asyncio.timeout(settings.body_timeout_s)
    try:
        async with deadline:
            return await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _reject(stats, 413, "too_large", f"body over {settings.max_body_bytes} bytes")
    except TimeoutError:
        detail = f"body not received within {settings.body_timeout_s:g} s"
        return _reject(stats, 408, "timeout", detail, close=True)


def _verify(
    state: ReceiverState, request: web.Request, body: bytes, now: float
) -> tuple[str | None, float] | web.Response:
    """The signature's nonce and when it may be forgotten (None, 0 when unsigned callbacks
    are let through), or the refusal: bad signature, stale timestamp, nonce already seen."""
    settings, stats = state.settings, state.stats
    secret = state.secret
    if secret is None or (settings.allow_unsigned and signature.SIGNATURE not in request.headers):
        return None, 0.0
    try:
        verified = signature.verify(secret, body, request.headers)
    except signature.SignatureError as exc:
        return _reject(stats, 401, "signature", str(exc))
    window = settings.timestamp_window_s
    if abs(now - verified.timestamp) > window:
        return _reject(stats, 401, "stale", "signature timestamp outside the allowed window")
    if state.nonces.seen(verified.nonce, now):
        return _reject(stats, 401, "replay", "signature nonce already used")
    return verified.nonce, verified.timestamp + window + 1.0


async def _store(state: ReceiverState, new: NewEvent) -> web.Response:
    """Hand ``new`` to the group commit; 200 once it is durably stored."""
    nonce, stats = new.nonce, state.stats
    try:
        await state.committer.submit(new)
    except Unavailable:
        if nonce is not None:
            state.nonces.discard(nonce)  # not stored: the same callback again is no replay
        return _reject(stats, 503, "unavailable", "not stored; try again")
    except Unstorable:
        if nonce is not None:
            state.nonces.discard(nonce)
        return _reject(stats, 400, "unstorable", "the database refuses this callback's values")
    return web.Response(status=200, body=_OK, content_type="application/json")


async def _health(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = state.stats.as_json()
    body["signed"] = state.secret is not None
    body["allow_unsigned"] = state.settings.allow_unsigned
    body["nonces_held"] = len(state.nonces)
    return web.Response(body=jsonutil.dumpb(body), content_type="application/json")
