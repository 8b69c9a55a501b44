"""Helpers of the sandbox tests: constants, request bodies, an API client, a receiver."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from campaign import config, jsonutil
from campaign.sandbox import SandboxServer

PROJECT = config.SANDBOX_PROJECT_ID
APP = config.SANDBOX_APP_ID
KEY_ID = config.SANDBOX_KEY_ID
KEY_SECRET = config.SANDBOX_KEY_SECRET
WEBHOOK_SECRET = config.SANDBOX_WEBHOOK_SECRET

#: Callback delays small enough for tests, large enough to keep events in order.
FAST_CALLBACKS: dict[str, Any] = {
    "queued_delay_s": 0.01,
    "queued_jitter_s": 0.0,
    "delivered_delay_s": 0.02,
    "delivered_jitter_s": 0.0,
    "read_delay_s": 0.02,
    "read_jitter_s": 0.0,
    "callback_retry_base_s": 0.02,
    "callback_retry_factor": 2.0,
}


def basic(user: str = KEY_ID, password: str = KEY_SECRET) -> str:
    """An ``Authorization: Basic`` header value."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def sms(identity: str = "+15551234567") -> dict[str, Any]:
    """A recipient identified by one SMS identity."""
    return {"identified_by": {"channel_identities": [{"channel": "SMS", "identity": identity}]}}


def text_send(text: str = "Hello", **extra: Any) -> dict[str, Any]:
    """A valid ``messages:send`` body."""
    return {"app_id": APP, "recipient": sms(), "message": {"text_message": {"text": text}}, **extra}


@dataclass
class Api:
    """A small client for one sandbox: token handling and the endpoints under test."""

    session: aiohttp.ClientSession
    url: str
    token: str = ""

    async def fetch_token(self) -> str:
        async with self.session.post(
            f"{self.url}/oauth2/token",
            data={"grant_type": "client_credentials"},
            headers={"Authorization": basic()},
        ) as response:
            assert response.status == 200, await response.text()
            self.token = (await response.json())["access_token"]
        return self.token

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def call(
        self, method: str, path: str, *, json: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any, Any]:
        """``(status, parsed body, headers)`` of one request to the sandbox."""
        async with self.session.request(
            method, self.url + path, json=json, headers=headers or self.auth()
        ) as response:
            raw = await response.read()
            body = jsonutil.loads(raw) if raw else None
            return response.status, body, response.headers

    async def send(self, body: Any, **kw: Any) -> tuple[int, Any, Any]:
        return await self.call("POST", f"/v1/projects/{PROJECT}/messages:send", json=body, **kw)

    async def batch(self, body: Any, **kw: Any) -> tuple[int, Any, Any]:
        return await self.call("POST", f"/v1/projects/{PROJECT}/messages", json=body, **kw)

    async def inspect(self, what: str) -> Any:
        async with self.session.get(f"{self.url}/_sandbox/{what}") as response:
            assert response.status == 200
            return await response.json()

    async def patch(self, **changes: Any) -> Any:
        async with self.session.patch(f"{self.url}/_sandbox/settings", json=changes) as response:
            assert response.status == 200, await response.text()
            return await response.json()


@dataclass
class Receiver:
    """A webhook receiver on port 0 that records callbacks and answers scripted statuses."""

    url: str = ""
    calls: list[tuple[dict[str, Any], bytes, dict[str, str]]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)

    @property
    def bodies(self) -> list[dict[str, Any]]:
        """Every callback received, in arrival order."""
        return [body for body, _, _ in self.calls]

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        status = self.statuses.pop(0) if self.statuses else 200
        self.calls.append((jsonutil.loads(raw), raw, dict(request.headers)))
        return web.Response(status=status)

    async def wait_for(
        self, predicate: Callable[[list[dict[str, Any]]], bool], within: float = 5.0
    ) -> list[dict[str, Any]]:
        """Wait until ``predicate(bodies)`` holds; fail the test after ``within`` seconds."""
        deadline = time.monotonic() + within
        while not predicate(self.bodies):
            if time.monotonic() > deadline:
                pytest.fail(f"callbacks never satisfied the condition: {self.bodies}")
            await asyncio.sleep(0.01)
        return self.bodies


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 5.0) -> None:
    """Wait until the async ``check`` is true."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail("condition never became true")
        await asyncio.sleep(0.01)


#: ``async with make_sandbox(**settings) as (server, api)`` (the ``make_sandbox`` fixture).
SandboxFactory = Callable[..., AbstractAsyncContextManager[tuple[SandboxServer, "Api"]]]
