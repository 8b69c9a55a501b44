"""This process as one of several workers: registered, beating, sharing the rate, reaping.

Any number of `campaign run` processes, on one machine or many, may work on the same database.
Each registers (:meth:`Membership.join`) and then, every ``interval`` seconds:

- beats its heartbeat and counts the live workers: its rate is the configured rate divided by
  that count, so that together they stay within Sinch's limit;
- settles the workers whose heartbeat is older than the lease (their claimed rows back to the
  pool or IN_DOUBT, see :mod:`campaign.store.workers`), and in batch mode their chunks;
- notices when another worker declared *it* dead (a pause longer than the lease): it stops;
- notices when the campaign was paused (`campaign pause`): it stops claiming and drains.

A worker that joins while others run sends nothing until each has beaten since it registered
(and so counts it): :meth:`Membership.until_counted`, awaited before its first request. A beat
applies its share before it commits, so that the others have lowered their share by the time
the joining one sees their beat: the sum of the rates never exceeds the limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from campaign import errors
from campaign.errors import CampaignBusyError, StoreError
from campaign.store.repository import Store

logger = logging.getLogger(__name__)


# A joining worker looks this often whether the others have counted it: every look it misses
# is time that the others already send at their lower share, and this one not yet. A look is
# one indexed count, and it lasts at most until the others' next beat.
LOOK_EVERY_S = 0.01


@dataclass(frozen=True)
class MembershipSettings:
    interval: float = 1.0  # seconds between heartbeats
    lease: float = 10.0  # a worker silent for this long is dead


def share(rate: float | None, live: int) -> float | None:
    """This worker's part of ``rate`` when ``live`` workers share it (None: no limit). Each
    holds its part in every window of the writes it makes (campaign.pacing), so together they
    hold the rate; the window's guard covers the jitter between their arrivals."""
    if rate is None:
        return None
    return rate / max(live, 1)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class CampaignBusy(errors.CampaignError):
    """An exclusive campaign is already being run by another live process."""

    exit_code = 4  # the interface: campaign held by another process


class Membership:
    """Owned by the runner; :meth:`run` is a task beside the dispatcher's."""

    def __init__(
        self,
        store: Store,
        campaign_id: int,
        worker_id: int,
        settings: MembershipSettings,
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.campaign_id = campaign_id
        self.worker_id = worker_id
        self.settings = settings
        self._clock = clock
        self.live = 1
        self.lost = False  # declared dead by another worker
        self.paused = False  # stopped by `campaign pause`
        self.registered = clock()

    @classmethod
    async def join(
        cls,
        store: Store,
        campaign_id: int,
        *,
        name: str,
        exclusive: bool,
        settings: MembershipSettings,
        clock: Callable[[], datetime],
    ) -> Membership:
        try:
            worker_id = await store.workers.register(
                campaign_id, name, clock(), settings.lease, exclusive=exclusive
            )
        except CampaignBusyError:
            raise CampaignBusy(
                "the campaign is exclusive and another live process is running it"
            ) from None
        member = cls(store, campaign_id, worker_id, settings, clock)
        await member.beat()
        return member

    async def until_counted(self) -> None:
        """Wait until every other live worker has beaten since this one registered (and so
        counts it), or a lease has passed (a worker that silent is about to be declared
        dead). With others live at :meth:`join`, this worker sends nothing before."""
        step = min(self.settings.interval / 2, LOOK_EVERY_S)
        until = asyncio.get_running_loop().time() + self.settings.lease
        while await self.store.workers.unaware(
            self.worker_id, self.registered, self._clock(), self.settings.lease
        ):
            if asyncio.get_running_loop().time() >= until:
                return
            await asyncio.sleep(step)

    async def beat(self, on_share: Callable[[int], None] | None = None) -> None:
        """Beat, and count the live workers; ``on_share`` gets the count before the beat is
        visible to the others (:meth:`until_counted`)."""
        beat = await self.store.workers.heartbeat(
            self.worker_id, self._clock(), self.settings.lease, counted=on_share
        )
        self.live = beat.live
        self.lost = self.lost or beat.reaped

    async def run(
        self,
        on_share: Callable[[int], None],
        on_lost: Callable[[], None],
        settle: Callable[[], Awaitable[object]] | None = None,
        on_paused: Callable[[], None] | None = None,
    ) -> None:
        """Beat, share and reap until cancelled (or until lost, or paused: ``on_paused``)."""
        while True:
            await asyncio.sleep(self.settings.interval)
            try:
                await self.beat(on_share)
                if self.lost:
                    logger.error(
                        "another worker declared this one dead (no heartbeat within %.0f s)",
                        self.settings.lease,
                        extra={"action": "worker_lost", "worker": self.worker_id},
                    )
                    on_lost()
                    return
                # Read with every beat, so that each worker stops within an interval of a pause.
                if on_paused is not None and await self.store.campaigns.paused(self.campaign_id):
                    logger.warning(
                        "the campaign was paused: no more claims; draining",
                        extra={"action": "worker_paused", "worker": self.worker_id},
                    )
                    self.paused = True
                    on_paused()
                    return
                reaped = await self.store.workers.reap(
                    self.campaign_id, self._clock(), self.settings.lease
                )
                if reaped.workers:
                    logger.warning(
                        "settled %d dead workers: %d recipients IN_DOUBT, %d back to send",
                        reaped.workers,
                        reaped.in_doubt,
                        reaped.released,
                        extra={"action": "workers_reaped"},
                    )
                if settle is not None:
                    await settle()
            except (StoreError, OSError) as exc:  # retried; the lease allows several
                logger.warning(
                    "heartbeat failed: %s",
                    type(exc).__name__,
                    extra={"action": "heartbeat_failed"},
                )

    async def leave(self, reason: str) -> None:
        with contextlib.suppress(StoreError, OSError):
            await self.store.workers.stop(self.worker_id, self._clock(), reason)
