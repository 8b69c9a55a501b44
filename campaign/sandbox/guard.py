"""The gate every Conversation and Batch API request passes, in Sinch's order.

Count the request and apply 429 storms and the per-project rate limit on arrival, wait the
configured latency, check credentials and the project, maybe inject a 500/503, run the
handler, and maybe drop the connection after the work is done (the client then never learns
that its message was accepted: the case an idempotent sender must survive). Each request's
arrival and answer are logged (``GET /_sandbox/requests``), so a test can check that a client
waited out every ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
from collections.abc import Awaitable, Callable
from typing import Literal

from aiohttp import web

from campaign import jsonutil
from campaign.sandbox import auth, keys, ratelimit, responses

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Api = Literal["conversation", "batch"]


def api_endpoint(api: Api) -> Callable[[Handler], Handler]:
    """Wrap a handler of ``api``; only the Conversation API accepts Basic credentials."""
    allow_basic = api == "conversation"

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            state = keys.state(request.app)
            now = time.monotonic()
            response = await _guard(request, handler, now, allow_basic)
            if state.settings.record_history:
                dropped = request.get(keys.DROPPED, False)
                retry_after = response.headers.get("Retry-After")
                state.arrivals.append(
                    ratelimit.Arrival(
                        method=request.method,
                        path=request.path,
                        arrived=now - state.started,
                        answered=state.clock(),
                        status=0 if dropped else response.status,
                        retry_after=int(retry_after) if retry_after else None,
                        storm=request.get(keys.STORM, False),
                    )
                )
            return response

        return guarded

    return wrap


async def _guard(
    request: web.Request, handler: Handler, now: float, allow_basic: bool
) -> web.StreamResponse:
    """The checks and faults around ``handler``, for a request that arrived at ``now``."""
    state = keys.state(request.app)
    settings = state.settings
    stats = state.stats
    rng = state.fault_rng
    stats.requests += 1
    state.peak.record(now)
    # The limit is decided on arrival, as an ingress limiter does; the answer (429 or
    # not) comes after the latency. Deciding after the sleep would count timer wake-ups,
    # which the loop batches, instead of arrivals.
    project_id = request.match_info["project_id"]
    storm = ratelimit.storm_remaining(
        now, state.epoch, settings.storm_every_s, settings.storm_duration_s
    )
    limiter = state.limiter(project_id)
    limited: web.Response | None = None
    if storm > 0 or not limiter.admit(now, settings.rate_limit):
        stats.rate_limited += 1
        request[keys.STORM] = storm > 0
        wait = math.ceil(storm) if storm > 0 else limiter.retry_after(now, settings.rate_limit)
        limited = too_many_requests(max(1, wait))
    if settings.latency_ms or settings.jitter_ms:
        jitter = rng.uniform(0.0, settings.jitter_ms) if settings.jitter_ms else 0.0
        await asyncio.sleep((settings.latency_ms + jitter) / 1000)
    if limited is not None:
        return limited

    denied = auth.authenticate(request, state, allow_basic=allow_basic)
    if denied is not None:
        stats.auth_failures += 1
        return denied
    if project_id != settings.project_id:
        return responses.not_found(f"Project {project_id!r}")

    failure_rate = settings.error_rate_500 + settings.error_rate_503
    if failure_rate:
        roll = rng.random()
        if roll < failure_rate:
            stats.errors_injected += 1
            if roll < settings.error_rate_500:
                return responses.api_error(500, "Internal error encountered.")
            return responses.api_error(503, "The service is currently unavailable.")

    response = await handler(request)
    if response.status == 400:
        stats.invalid_requests += 1
    elif 200 <= response.status < 300 and settings.drop_rate and rng.random() < settings.drop_rate:
        stats.dropped += 1
        request[keys.DROPPED] = True
        drop_connection(request)
    return response


def too_many_requests(retry_after: int) -> web.Response:
    """429 RESOURCE_EXHAUSTED with ``Retry-After`` in whole seconds."""
    return responses.api_error(429, "Too many requests", headers={"Retry-After": str(retry_after)})


def drop_connection(request: web.Request) -> None:
    """Close the connection under ``request`` so that no answer ever reaches the client.

    The handler's response is still returned to aiohttp, which fails to write it on the
    closed transport and discards it quietly.
    """
    transport = request.transport
    if transport is not None:
        transport.close()


async def read_json(request: web.Request) -> object | web.Response:
    """The JSON body of ``request``, or the 400 to answer when there is none."""
    raw = await read_body(request)
    if isinstance(raw, web.Response):
        return raw
    return parse_json(raw)


async def read_body(request: web.Request) -> bytes | web.Response:
    """The raw body of a JSON ``request`` (for :func:`parse_json`), or the 400 to answer."""
    if request.content_type != "application/json":
        return responses.api_error(
            400, "Invalid JSON payload received. Content-Type must be application/json."
        )
    return await request.read()


def parse_json(raw: bytes) -> object | web.Response:
    """The JSON value in ``raw``, or the 400 to answer when it is not JSON."""
    try:
        return jsonutil.loads(raw)  # type: ignore[no-any-return]
    except ValueError as exc:
        return responses.api_error(400, f"Invalid JSON payload received. {exc}")
