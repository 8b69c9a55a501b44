"""The typed keys under which the sandbox app keeps its state and background services."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from campaign.sandbox.state import SandboxState

if TYPE_CHECKING:
    from campaign.sandbox.batches import BatchScheduler
    from campaign.sandbox.callbacks import CallbackDispatcher


@dataclass
class Services:
    """The background services, set while the app runs (created in its ``cleanup_ctx``)."""

    dispatcher: CallbackDispatcher | None = None
    scheduler: BatchScheduler | None = None


STATE = web.AppKey("sandbox_state", SandboxState)
SERVICES = web.AppKey("sandbox_services", Services)
# Marks on a request, for the arrival log: its connection was dropped; a 429 storm refused it.
DROPPED = web.RequestKey("sandbox_dropped", bool)
STORM = web.RequestKey("sandbox_storm", bool)
