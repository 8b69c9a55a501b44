"""The resume and send steps: settle what an earlier run left, then send what is due, with a
load beside it in batch mode, a heartbeat, and live progress."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from campaign import estimate, rendering, windows
from campaign.config import Config
from campaign.errors import StoreError
from campaign.membership import Membership, share
from campaign.models import UNSENDABLE, DispatchStats, Status
from campaign.progress import RateMeter, Snapshot, snapshot
from campaign.resources import Resources
from campaign.retry import RetryPolicy
from campaign.run.context import RunContext
from campaign.run.load import LoadBeside, Loaded, chunking
from campaign.sending import LoadFeed, SendLoop, SendSettings
from campaign.sinch.client import AppInfo
from campaign.store.repository import CampaignRow, Store

logger = logging.getLogger(__name__)

# Seconds between writes of the app's queue reading to the store (status reads it).
NOTE_QUEUE_EVERY_S = 10.0


def send_settings(config: Config) -> SendSettings:
    rate = config.sending.requests_per_second
    return SendSettings(
        rate=rate,
        max_in_flight=config.sending.max_in_flight or estimate.default_max_in_flight(rate),
        retry=RetryPolicy(max_attempts=config.sending.max_attempts),
        batch_size=config.sending.batch_size,
        drain_timeout=config.sending.drain_timeout,
        queue_share=config.sending.queue_share or None,
    )


@dataclass
class Sending:
    """One run's sending of one campaign, as the worker ``member``."""

    ctx: RunContext
    store: Store
    campaign: CampaignRow
    member: Membership
    loop: SendLoop
    settings: SendSettings
    feed: LoadFeed | None

    @classmethod
    def begin(
        cls,
        ctx: RunContext,
        resources: Resources,
        campaign: CampaignRow,
        member: Membership,
        template: rendering.MessageTemplate,
        beside: bool,
        app: AppInfo | None = None,
    ) -> Sending:
        """``beside``: the campaign is loaded while it is sent. ``app``: the preflight's
        reading of the app, from which the app's queue is watched."""
        spec = ctx.spec
        settings = send_settings(resources.config)
        feed = LoadFeed() if beside else None
        store = resources.need_store()
        loop = SendLoop(
            mode=spec.mode,
            store=store,
            client=resources.need_client(),
            campaign=campaign,
            channel=spec.channel.value,
            template=template,
            send_fields=spec.send,
            settings=settings,
            stop=ctx.stop,
            stats=ctx.options.stats or DispatchStats(),
            clock=ctx.clock,
            worker_id=member.worker_id,
            window=windows.Window(spec.send_after, spec.deadline),
            quiet_hours=spec.quiet_plan,
            feed=feed,
            app=app,
        )
        loop.set_rate(share(settings.rate, member.live))
        if member.live > 1:
            loop.join(member.until_counted)
        return cls(ctx, store, campaign, member, loop, settings, feed)

    async def resume(self) -> None:
        """Settle what earlier runs left: chunks formed for another way of sending, batches
        whose answer was lost, rows of workers that died, IN_DOUBT rows to send again."""
        ctx, store, campaign = self.ctx, self.store, self.campaign
        spec, out = ctx.spec, ctx.out
        # Chunks formed at ingest for another way of sending (a switched mode, quiet hours, a
        # smaller batch size) are broken up into ordinary rows first.
        formed_for = chunking(spec, ctx.config, campaign.key)
        await store.chunks.dissolve(
            campaign.id, ctx.now(), larger_than=formed_for.size if formed_for else None
        )
        queued, released = await self.loop.settle(self.member.settings.lease)
        if queued or released:
            out(
                f"{spec.name}: batches a stopped run left unanswered: {queued:,} recipients "
                f"found accepted by Sinch, {released:,} not (to be sent)"
            )
        reaped = await store.workers.reap(campaign.id, ctx.now(), self.member.settings.lease)
        if reaped.in_doubt or reaped.released:
            out(
                f"{spec.name}: {reaped.in_doubt:,} recipients were in flight when a run stopped:"
                f" IN_DOUBT; {reaped.released:,} claimed but not sent: to be sent"
            )
        if spec.in_doubt_policy == "resend":
            older = ctx.now() - timedelta(seconds=spec.in_doubt_grace)
            again = await store.recipients.resend_in_doubt(campaign.id, older, ctx.now())
            if again:
                out(f"{spec.name}: {again:,} IN_DOUBT recipients had no callback: sending again")

    async def send(self, load: LoadBeside | None) -> tuple[bool, datetime | None]:
        """Send until done or stopped, the load beside it when ``load``. Whether the sending
        finished, and when what is left becomes due (quiet hours), if it ended for that."""
        ctx, loop = self.ctx, self.loop
        counts = await self.store.recipients.counts(self.campaign.id)
        total = sum(v for k, v in counts.items() if k not in UNSENDABLE)
        already = total - counts.get(Status.PENDING, 0)
        meter = RateMeter(start=time.monotonic())
        loaded = Loaded()  # counted from here on: the counts above hold what was stored before
        loader: asyncio.Task[bool] | None = None
        if load is not None and self.feed is not None:
            loader = asyncio.create_task(load(loaded, self.feed), name="load")
            loader.add_done_callback(functools.partial(_stop_on_failure, ctx.stop))

        def read() -> Snapshot:
            rate = meter.rate(time.monotonic(), loop.stats.requests)
            return snapshot(
                loop.stats,
                total + loaded.sendable,
                already,
                self.settings.rate,
                rate,
                loop.sender.per_request,
                loop.queue()[0],
            )

        beats = asyncio.create_task(self._beat(), name="heartbeat")
        noting = asyncio.create_task(self._note_queue(), name="note_queue")
        try:
            async with ctx.display.track(ctx.spec.name, read):
                finished = await loop.run()
        except BaseException:
            if loader is not None:  # the sending failed: so does the run, loaded or not
                loader.cancel()
            raise
        finally:
            beats.cancel()
            noting.cancel()
            # After a stop, the load ends at the end of its slice.
            await asyncio.gather(
                beats, noting, *([loader] if loader else []), return_exceptions=True
            )
        if loader is not None and not await loader:  # its error, if it failed, is the run's
            finished = False  # stopped while loading: the next run resumes the load
        return finished, loop.deferred_until

    async def _note_queue(self) -> None:
        """Keep the app's queue, as this run models it, in the store (for ``status``): at
        the start, every few seconds, and at the end. A failed write waits for the next."""
        try:
            while True:
                await self.note_queue()
                await asyncio.sleep(NOTE_QUEUE_EVERY_S)
        finally:  # the last state, as the sending ends
            await asyncio.shield(self.note_queue())

    async def note_queue(self) -> None:
        queue, longest = self.loop.queue()
        if queue is None:
            return
        try:
            await self.store.campaigns.note_queue(
                self.campaign.id,
                size=queue.size,
                limit=queue.limit,
                outbound=queue.outbound,
                at=self.ctx.now(),
                wait=longest,
            )
        except StoreError as exc:
            logger.warning(
                "could not keep the app's queue reading: %s",
                type(exc).__name__,
                extra={"action": "note_queue_failed"},
            )

    async def _beat(self) -> None:
        lease = self.member.settings.lease

        async def settle() -> None:
            await self.loop.settle(lease)

        await self.member.run(
            on_share=lambda live: self.loop.set_rate(share(self.settings.rate, live)),
            on_lost=self.ctx.stop.set,
            settle=settle,
            on_paused=self.ctx.stop.set,
        )


def _stop_on_failure(stop: asyncio.Event, loader: asyncio.Task[bool]) -> None:
    """A load that fails stops the sending; its error is the run's."""
    if not loader.cancelled() and loader.exception() is not None:
        stop.set()
