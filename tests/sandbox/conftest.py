"""Fixtures for the sandbox tests: a running sandbox, a client for it, a callback receiver.

Everything is real HTTP over loopback: the sandbox on port 0, the receiver on port 0.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from campaign.sandbox import SandboxServer, SandboxSettings

from .helpers import FAST_CALLBACKS, Api, Receiver, SandboxFactory


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
def make_sandbox(session: aiohttp.ClientSession) -> SandboxFactory:
    """``async with make_sandbox(**settings) as (server, api)``: a sandbox with a token."""

    @asynccontextmanager
    async def start(**settings: Any) -> AsyncIterator[tuple[SandboxServer, Api]]:
        async with SandboxServer(SandboxSettings(**settings)) as server:
            api = Api(session, server.url)
            await api.fetch_token()
            yield server, api

    return start


@pytest.fixture
async def sandbox(make_sandbox: SandboxFactory) -> AsyncIterator[tuple[SandboxServer, Api]]:
    """A sandbox with default settings and a client holding a valid token."""
    async with make_sandbox() as started:
        yield started


@pytest.fixture
async def api(sandbox: tuple[SandboxServer, Api]) -> Api:
    return sandbox[1]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A callback receiver listening on a free loopback port."""
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/callbacks", rec.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    rec.url = f"http://127.0.0.1:{runner.addresses[0][1]}/callbacks"
    try:
        yield rec
    finally:
        await runner.cleanup()


@pytest.fixture
def with_callbacks(make_sandbox: SandboxFactory, receiver: Receiver) -> SandboxFactory:
    """A sandbox sending fast callbacks to ``receiver`` (more settings as keywords)."""

    def start(**settings: Any) -> AbstractAsyncContextManager[tuple[SandboxServer, Api]]:
        return make_sandbox(callback_url=receiver.url, **{**FAST_CALLBACKS, **settings})

    return start
