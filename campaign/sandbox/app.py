"""The sandbox as one :class:`aiohttp.web.Application`: auth, Conversation and Batch hosts.

A client points its token URL at ``{base}/oauth2/token`` and both API origins at ``{base}``.
The callback session and the two background services live in the app's ``cleanup_ctx``, so
they are created inside the running loop and closed in reverse order.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler

from campaign.sandbox import (
    auth,
    batches,
    control,
    conversation,
    keys,
    responses,
    transcode,
    webhooks,
)
from campaign.sandbox.callbacks import CallbackDispatcher
from campaign.sandbox.settings import SandboxSettings
from campaign.sandbox.state import SandboxState

MAX_BODY = 16 * 1024 * 1024


def make_app(settings: SandboxSettings | None = None) -> web.Application:
    """A fresh sandbox app with ``settings`` (defaults: :class:`SandboxSettings`)."""
    app = web.Application(client_max_size=MAX_BODY, middlewares=[_json_http_errors])
    app[keys.STATE] = keys.StateSlot(SandboxState(settings or SandboxSettings()))
    app[keys.SERVICES] = keys.Services()
    app.cleanup_ctx.append(_callbacks)
    app.cleanup_ctx.append(_scheduler)

    router = app.router
    router.add_post("/oauth2/token", auth.token)
    project = "/v1/projects/{project_id}"
    router.add_post(project + "/messages:send", conversation.send_message)
    router.add_get(project + "/apps", conversation.list_apps)
    router.add_get("/v1beta/projects/{project_id}/apps", conversation.list_apps)
    router.add_get(project + "/apps/{app_id}", conversation.get_app)
    router.add_get("/v1beta/projects/{project_id}/apps/{app_id}", conversation.get_app)
    router.add_post(project + "/messages", batches.send_batch)
    router.add_get(project + "/messages", batches.find_batches)
    router.add_delete(project + "/messages", batches.cancel_batches)
    router.add_get(project + "/messages/{batch_id}", batches.get_batch)
    webhooks.add_routes(router, project)
    transcode.add_routes(router, project)
    control.add_routes(app)
    return app


@web.middleware
async def _json_http_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Unknown paths and methods answer in the API's JSON error shape, not plain text."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return responses.api_error(404, f"{request.path} not found")
    except web.HTTPMethodNotAllowed:
        return responses.api_error(405, f"{request.method} is not supported on {request.path}")


async def _callbacks(app: web.Application) -> AsyncIterator[None]:
    """The callback session and dispatcher, for the lifetime of the app."""
    state = keys.state(app)
    connector = aiohttp.TCPConnector(limit=state.settings.callback_concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        dispatcher = CallbackDispatcher(state, session)
        services = app[keys.SERVICES]
        services.dispatcher = dispatcher
        state.on_accept = dispatcher.schedule
        state.pending_callbacks = lambda: dispatcher.pending
        task = asyncio.create_task(dispatcher.run(), name="sandbox-callbacks")
        try:
            yield
        finally:
            state.on_accept = None
            state.pending_callbacks = lambda: 0
            services.dispatcher = None
            await _stop(task)


async def _scheduler(app: web.Application) -> AsyncIterator[None]:
    """The batch scheduler, for the lifetime of the app."""
    services = app[keys.SERVICES]
    scheduler = services.scheduler = batches.BatchScheduler(keys.state(app))
    task = asyncio.create_task(scheduler.run(), name="sandbox-batch-scheduler")
    try:
        yield
    finally:
        services.scheduler = None
        await _stop(task)


async def _stop(task: asyncio.Task[None]) -> None:
    """Cancel a background task and wait for it to finish."""
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
