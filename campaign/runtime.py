"""The one owner of long-lived resources: the embedded sandbox, the store, the HTTP session.

Created inside the running loop, closed in reverse order. Commands ask for what they need.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass

from campaign.config import Config
from campaign.sandbox import SandboxServer, SandboxSettings
from campaign.sinch.client import SinchClient, open_session
from campaign.store.repository import Store


@dataclass
class Runtime:
    config: Config
    store: Store | None = None
    client: SinchClient | None = None
    sandbox: SandboxServer | None = None

    def need_store(self) -> Store:
        assert self.store is not None, "runtime opened without a store"
        return self.store

    def need_client(self) -> SinchClient:
        assert self.client is not None, "runtime opened without a Sinch client"
        return self.client


def embedded_sandbox_settings(config: Config) -> SandboxSettings:
    """The embedded sandbox accepts exactly the credentials the config will present."""
    sinch = config.sinch
    return SandboxSettings(
        project_id=sinch.project_id,
        app_ids=(sinch.app_id,),
        key_id=sinch.key_id,
        key_secret=sinch.key_secret.reveal(),
        webhook_secret=sinch.webhook_secret.reveal() if sinch.webhook_secret else None,
        latency_ms=config.sandbox.latency_ms,
        jitter_ms=config.sandbox.jitter_ms,
        rate_limit=config.sandbox.rate_limit,
    )


@contextlib.asynccontextmanager
async def open_runtime(
    config: Config,
    *,
    store: bool = True,
    sinch: bool = True,
    sandbox_settings: SandboxSettings | None = None,
) -> AsyncIterator[Runtime]:
    async with contextlib.AsyncExitStack() as stack:
        runtime = Runtime(config)
        if sinch and config.sinch.sandbox:
            settings = sandbox_settings or embedded_sandbox_settings(config)
            runtime.sandbox = await stack.enter_async_context(SandboxServer(settings))
            runtime.config = dataclasses.replace(
                config, sinch=config.sinch.pointed_at(runtime.sandbox.url)
            )
        if store:
            runtime.store = await Store.open(config.database.url)
            stack.push_async_callback(runtime.store.close)
        if sinch:
            session = open_session(runtime.config.sinch)
            stack.push_async_callback(session.close)
            runtime.client = SinchClient(runtime.config.sinch, session)
        yield runtime
