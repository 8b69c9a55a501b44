"""The one owner of long-lived resources: the embedded sandbox, the store, the HTTP session.

Created inside the running loop, closed in reverse order. Commands ask for what they need.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from campaign.config import Config
from campaign.sinch.client import SinchClient, open_session
from campaign.store.repository import Store

if TYPE_CHECKING:  # imported where they are started: most commands start neither
    from campaign.receiver import ReceiverServer
    from campaign.sandbox import SandboxServer, SandboxSettings


@dataclass
class Resources:
    config: Config
    store: Store | None = None
    client: SinchClient | None = None
    sandbox: SandboxServer | None = None
    receiver: ReceiverServer | None = None

    def need_store(self) -> Store:
        assert self.store is not None, "resources opened without a store"
        return self.store

    def need_client(self) -> SinchClient:
        assert self.client is not None, "resources opened without a Sinch client"
        return self.client


def embedded_sandbox_settings(config: Config) -> SandboxSettings:
    """The embedded sandbox accepts exactly the credentials the config will present."""
    from campaign.sandbox import FailureRule, SandboxSettings

    sinch = config.sinch
    box = config.sandbox
    rules: tuple[FailureRule, ...] = (
        (FailureRule(pattern=box.fail_pattern),) if box.fail_pattern else ()
    )
    rules += tuple(FailureRule.parse_channel(rule) for rule in box.fail_channel.split())
    return SandboxSettings(
        project_id=sinch.project_id,
        app_ids=(sinch.app_id,),
        key_id=sinch.key_id,
        key_secret=sinch.key_secret.reveal(),
        webhook_secret=sinch.webhook_secret.reveal() if sinch.webhook_secret else None,
        latency_ms=box.latency_ms,
        jitter_ms=box.jitter_ms,
        rate_limit=box.rate_limit,
        failure_rules=rules,
        whatsapp_window=box.whatsapp_window or None,
        whatsapp_window_share=box.whatsapp_window_share,
        delivered_delay_s=box.delivered_delay,
        delivered_jitter_s=box.delivered_delay / 2,
        read_delay_s=box.read_delay,
        read_jitter_s=box.read_delay / 2,
        outbound_rate=box.outbound_rate,
        queue_limit=box.queue_limit,
    )


@contextlib.asynccontextmanager
async def open_resources(
    config: Config,
    *,
    store: bool = True,
    sinch: bool = True,
    receiver: bool = False,
    sandbox_settings: SandboxSettings | None = None,
) -> AsyncIterator[Resources]:
    """Open what the command needs, in dependency order: the store, the in-process receiver
    (it writes to the store), the embedded sandbox (it calls the receiver back), the HTTP
    session. They close in reverse order."""
    async with contextlib.AsyncExitStack() as stack:
        resources = Resources(config)
        if store or receiver:
            resources.store = await Store.open(config.database.url)
            stack.push_async_callback(resources.store.close)
        if receiver:
            from campaign.receiver import ReceiverServer, ReceiverSettings

            assert resources.store is not None
            settings = ReceiverSettings.from_config(
                config.receiver, config.sinch, optout=config.optout
            )
            # Behind the embedded sandbox, any free local port; for Sinch, the configured one.
            host, port = (
                ("127.0.0.1", 0)
                if config.sinch.sandbox
                else (config.receiver.host, config.receiver.port)
            )
            resources.receiver = await stack.enter_async_context(
                ReceiverServer(resources.store, settings, host, port)
            )
        if sinch and config.sinch.sandbox:
            from campaign.sandbox import SandboxServer

            settings_ = sandbox_settings or embedded_sandbox_settings(config)
            if resources.receiver is not None:
                settings_ = dataclasses.replace(settings_, callback_url=resources.receiver.url)
            resources.sandbox = await stack.enter_async_context(SandboxServer(settings_))
            resources.config = dataclasses.replace(
                config, sinch=config.sinch.pointed_at(resources.sandbox.url)
            )
        if sinch:
            session = open_session(resources.config.sinch)
            stack.push_async_callback(session.close)
            resources.client = SinchClient(resources.config.sinch, session)
        yield resources
