"""A local emulator of the Sinch APIs that campaign uses, over real HTTP.

One aiohttp application serves the OAuth2 token endpoint, the Conversation API
(``messages:send``, apps) and the Batch API on one port, validates requests the way Sinch
does, injects configurable faults (latency, 429 storms, 500/503, dropped connections), and
simulates delivery with signed MESSAGE_SUBMIT / MESSAGE_DELIVERY callbacks. ``/_sandbox/``
exposes what it recorded and lets tests change its behaviour at runtime.

    async with SandboxServer(SandboxSettings(callback_url=...)) as sandbox:
        config = config.pointed_at(sandbox.url)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from campaign import lazy

if TYPE_CHECKING:
    from campaign.sandbox.app import make_app
    from campaign.sandbox.arguments import add_arguments, settings_from_args
    from campaign.sandbox.records import BatchStatus
    from campaign.sandbox.server import SandboxServer, ThreadedSandbox, serve_forever
    from campaign.sandbox.settings import FailureRule, SandboxSettings
    from campaign.sandbox.state import SandboxState

# Imported when first used: a command that names the sandbox seldom starts its server
# (aiohttp.web and the rest, some 50 ms).
__getattr__ = lazy.attributes(
    __name__,
    {
        "make_app": "app",
        "add_arguments": "arguments",
        "settings_from_args": "arguments",
        "BatchStatus": "records",
        "SandboxServer": "server",
        "ThreadedSandbox": "server",
        "serve_forever": "server",
        "FailureRule": "settings",
        "SandboxSettings": "settings",
        "SandboxState": "state",
    },
)


__all__ = [
    "BatchStatus",
    "FailureRule",
    "SandboxServer",
    "SandboxSettings",
    "SandboxState",
    "ThreadedSandbox",
    "add_arguments",
    "make_app",
    "serve_forever",
    "settings_from_args",
]
