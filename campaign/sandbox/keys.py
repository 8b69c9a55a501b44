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


class StateSlot:
    """Where the app holds its state: a slot that the server empties when it closes. aiohttp
    keeps each (handler, app) pair it built middlewares for (up to 1,024 of them), and with
    it a closed app; through the slot, not the messages and arrivals that app recorded (a
    process that starts sandbox after sandbox, as the test suite does, kept them all)."""

    __slots__ = ("state",)

    def __init__(self, state: SandboxState) -> None:
        self.state: SandboxState | None = state


def state(app: web.Application) -> SandboxState:
    """The app's state (the app must not be closed)."""
    held = app[STATE].state
    if held is None:
        raise RuntimeError("the sandbox app is closed")
    return held


STATE = web.AppKey("sandbox_state", StateSlot)
SERVICES = web.AppKey("sandbox_services", Services)
# Marks on a request, for the arrival log: its connection was dropped; a 429 storm refused it.
DROPPED = web.RequestKey("sandbox_dropped", bool)
STORM = web.RequestKey("sandbox_storm", bool)
