"""The send loop of every mode: claim -> pace -> write ahead -> send -> record; stop, drain.

- Rows (or chunks) are claimed in one transaction, sized to what the rate admits in the next
  quarter second, the next claim taken while the last is paced out, so that few rows wait
  IN_FLIGHT before leaving and a claim's stall does not leave the rate's window unused.
- Two separate knobs: the rate (:class:`~campaign.sending.pacer.Pacer`) and a bound on
  requests in flight.
- What a claim becomes on the wire, and what Sinch's answers mean, is the sender's: one per
  mode (:mod:`campaign.sending.individual`, :mod:`campaign.sending.batch`).
- Outcomes are recorded in batched transactions by one recorder task.
- On stop: no new claims, claimed-but-unsent rows are given back, in-flight requests get a
  bounded time to finish, then everything is recorded (shielded from cancellation).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from campaign import errors, pacing, quiet, rendering, windows
from campaign.models import AppQueue, DispatchStats
from campaign.sending.batch import BatchSender
from campaign.sending.context import Context, Halt, SendSettings
from campaign.sending.feed import LoadFeed
from campaign.sending.individual import IndividualSender
from campaign.sending.pacer import Pacer
from campaign.sending.queue import QueueGate, QueueWatch
from campaign.sending.recorder import Recorder
from campaign.sending.timing import Timing
from campaign.sending.writeahead import WriteAhead
from campaign.sinch.client import AppInfo, SinchClient
from campaign.store import repository as repo


class Sender(Protocol):
    """What a mode adds to the loop: what is claimed, and what it becomes on the wire."""

    # Whether the next claim is taken while the last one is paced out.
    claims_ahead: bool

    # Messages in a full request (what the app's queue takes in per request).
    per_request: int

    async def claim(self, size: int) -> list[Any]: ...
    def messages(self, item: Any) -> int: ...
    async def sendable(self, items: list[Any]) -> list[Any]: ...
    async def before_send(self, items: Sequence[Any], index: int) -> bool: ...
    async def send(self, item: Any, grant: pacing.Grant) -> None: ...
    async def give_back(self, items: Sequence[Any]) -> None: ...
    async def settle(self, lease: float) -> tuple[int, int]: ...


SENDERS: Mapping[str, Callable[[Context], Sender]] = {
    "individual": IndividualSender,
    "batch": BatchSender,
}


def quiet_gc() -> None:
    """Keep garbage-collection pauses out of the send loop.

    A full collection walks every live object: after loading a campaign that takes tens of
    milliseconds, long enough for sends granted before the pause to reach Sinch bunched with
    later ones, past the rate limit. Freezing what exists now takes it out of every future
    collection, and a larger young generation makes collections rarer.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


class SendLoop:
    """Sends one campaign's PENDING recipients in ``mode`` until none is left."""

    def __init__(
        self,
        *,
        store: repo.Store,
        client: SinchClient,
        campaign: repo.CampaignRow,
        channel: str,
        template: rendering.MessageTemplate,
        send_fields: Mapping[str, Any],
        settings: SendSettings,
        stop: asyncio.Event,
        mode: str = "individual",
        stats: DispatchStats | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        worker_id: int | None = None,
        window: windows.Window | None = None,
        quiet_hours: quiet.Plan | None = None,
        feed: LoadFeed | None = None,
        app: AppInfo | None = None,
    ) -> None:
        pacer = Pacer(settings.rate, settings.rate_guard)
        gate = QueueGate(stop)
        self._ctx = ctx = Context(
            store=store,
            client=client,
            campaign=campaign,
            channel=channel,
            template=template,
            settings=settings,
            clock=clock,
            worker=worker_id,
            timing=Timing(
                send_fields=send_fields,
                clock=clock,
                window=window,
                quiet_hours=quiet_hours,
                queue_wait=gate.wait,
            ),
            pacer=pacer,
            recorder=Recorder(
                store,
                clock,
                worker_id,
                interval=settings.flush_interval,
                patience=settings.drain_timeout,
            ),
            halt=Halt(stop),
            writeahead=WriteAhead(store, worker_id, stop, lambda: pacer.rate),
            stats=stats or DispatchStats(),
            gate=gate,
            feed=feed,
        )
        self.sender = SENDERS[mode](ctx)
        self.stats = ctx.stats
        # Set when the run ends with only recipients that are not due for a while (quiet
        # hours): when the first of them becomes due.
        self.deferred_until: datetime | None = None
        self._after_load = False  # a claim began after the load was over
        self._room = asyncio.Event()  # set whenever a send finishes
        self._tasks: set[asyncio.Task[None]] = set()
        self._crashed: BaseException | None = None
        self._watch = self._queue_watch(app)

    def _queue_watch(self, app: AppInfo | None) -> QueueWatch | None:
        """The reader of the app's queue, from the preflight's reading of the app; none without
        one (it could not be read), without a request rate (a benchmark's), or with
        ``queue_share`` unset."""
        ctx = self._ctx
        share = ctx.settings.queue_share
        if app is None or not share or ctx.settings.rate is None:
            return None
        rate = ctx.settings.rate
        watch = QueueWatch(ctx.client, ctx.pacer, ctx.gate, share=share, full_rate=rate)
        watch.seed(app)
        return watch

    def queue(self) -> tuple[AppQueue | None, float]:
        """The app's queue now as this run models it (None: not read), and the longest a
        message it sent is expected to wait there (seconds)."""
        gate = self._ctx.gate
        return gate.queue(), gate.longest

    def set_rate(self, rate: float | None) -> None:
        """Send at ``rate`` from now on (this worker's share, as workers come and go)."""
        self._ctx.pacer.set_rate(rate)

    def join(self, counted: Callable[[], Awaitable[None]]) -> None:
        """Beside others that send: nothing leaves before ``counted`` returns (see
        :meth:`~campaign.sending.pacer.Pacer.join`)."""
        self._ctx.pacer.join(counted)

    async def settle(self, lease: float) -> tuple[int, int]:
        """Settle what a stopped run left in flight, where the mode can (batch: by looking
        each batch up). Returns (recipients found accepted, recipients to be sent)."""
        return await self.sender.settle(lease)

    async def run(self) -> bool:
        """Send until nothing is left (True) or a stop was asked (False).

        When the database fails while sending (locked, full, gone), the run stops: requests
        under way finish, their outcomes are written if the database comes back within the
        drain timeout, and :class:`~campaign.errors.RunInterruptedError` (exit 3) says so. The
        same when Sinch refuses the credentials mid-run: refused rows go back to PENDING.
        """
        try:
            finished = await self._run()
        except errors.StoreError as exc:
            if not self.stats.requests:
                raise  # nothing was sent: the caller reports it like any database problem
            raise errors.RunInterruptedError(
                f"the database failed while sending ({exc.reason}); stopped, run the same "
                "command again to resume"
            ) from exc
        self._ctx.halt.raise_refusal()
        return finished

    async def _run(self) -> bool:
        quiet_gc()
        recorder = self._ctx.recorder
        recorder.start()
        watching = None
        if self._watch is not None:
            # The preflight's read of the app may be less than a second old: its place in the
            # window is taken, as if written now.
            (await self._ctx.pacer.grant()).written()
            watching = asyncio.create_task(self._watch.run(), name="queue")
        try:
            return await self._produce()
        finally:
            if watching is not None:
                watching.cancel()
                await asyncio.gather(watching, return_exceptions=True)
            # Whatever stopped the sending, requests under way get their time to finish.
            await self._drain()
            recorder.stop()
            await self._ctx.writeahead.settle()
            await recorder.finish()

    # --- producing ----------------------------------------------------------------------------

    async def _produce(self) -> bool:
        """Claim and pace out until done. In individual mode the next claim is taken while
        the last one is paced out: a claim holds the loop and the database for milliseconds,
        in which nothing would be granted and the rate's window would go partly unused."""
        ctx = self._ctx
        ahead: asyncio.Future[list[Any]] | None = None
        try:
            while not ctx.halt.asked:
                self._check()
                if ctx.timing.closed() or self._too_late():
                    return True
                # Quiet hours are looked at when the rows are about to leave, not when claimed.
                items = await self.sender.sendable(await (ahead or self._claim()))
                ahead = None
                ctx.writeahead.followed()
                if not items:
                    if await self._nothing_to_claim():
                        return True
                    continue
                if self.sender.claims_ahead:
                    ahead = asyncio.ensure_future(self._claim())
                    ahead.add_done_callback(ctx.writeahead.follow)
                finished = await self._pace_out(items)
                if finished is not None:
                    return finished
            return False
        finally:
            if ahead is not None:  # claimed, never sent
                await self.sender.give_back(await ahead)

    async def _pace_out(self, items: list[Any]) -> bool | None:
        """Start a request for each of ``items`` at the rate's pace. None when all have left;
        else what did not leave is given back, and the run ends: finished (the deadline
        passed) or not (a stop)."""
        ctx = self._ctx
        for index, item in enumerate(items):
            await ctx.gate.admit(self.sender.messages(item))
            grant = await self._pace()
            if grant is None or not await self.sender.before_send(items, index):
                if grant is not None:
                    grant.release()
                await self.sender.give_back(items[index:])
                return False
            if ctx.timing.closed() or self._too_late():
                grant.release()
                await self.sender.give_back(items[index:])
                return True
            self._start(self.sender.send(item, grant))
        return None

    def _too_late(self) -> bool:
        """What is sent now would leave Sinch's queue after the deadline: the run ends, what
        is left waits for the deadline (which cancels it) instead of expiring in the queue."""
        deadline = self._ctx.timing.too_late()
        if deadline is not None:
            self.deferred_until = deadline
        return deadline is not None

    async def _claim(self) -> list[Any]:
        """Claim the next items due (the rows of zones in quiet hours deferred first): what
        the rate admits in the next quarter second, or the in-flight bound without a limit."""
        ctx = self._ctx
        if ctx.timing.quiet_due():
            campaign_id = ctx.campaign.id
            held = ctx.timing.held(await ctx.store.recipients.pending_zones(campaign_id))
            await ctx.store.recipients.defer(campaign_id, held)
        bound = ctx.settings.max_in_flight
        size = min(bound, ctx.pacer.admits(0.25) or bound)
        drain = ctx.gate.rate()
        if drain is not None and ctx.gate.near():  # what the queue takes in a quarter second
            size = min(size, max(1, math.ceil(drain * 0.25 / self.sender.per_request)))
        return await self.sender.claim(size)

    async def _nothing_to_claim(self) -> bool:
        """Nothing is due now: True when the campaign is done, False after waiting a while
        (for sends under way to finish, or for the next retry to become due)."""
        ctx = self._ctx
        self._check()
        if self._tasks:
            await self._wait_for_room()
            return False
        if ctx.feed is not None and not self._after_load:
            # The claim that found nothing may have begun before the last slice was stored:
            # once the load is over, one more claim looks.
            self._after_load = ctx.feed.over
            if not self._after_load:
                await ctx.feed.next_slice()
            return False
        await ctx.recorder.flush()
        self._check()
        due = await ctx.store.recipients.next_due_at(ctx.campaign.id, ctx.clock())
        if due is None:
            if ctx.worker is None or not await ctx.store.recipients.held_elsewhere(
                ctx.campaign.id, ctx.worker
            ):
                return True
            # Other workers hold rows: live ones will record them, dead ones' are settled
            # when their lease runs out, and may come back to send.
            await self._sleep(1.0)
            return False
        wait = (due - ctx.clock()).total_seconds()
        if ctx.timing.gate is not None and wait > ctx.settings.idle_limit:
            self.deferred_until = due
            return True
        await self._sleep(wait)
        return False

    async def _pace(self) -> pacing.Grant | None:
        """Wait for room under the in-flight bound, then for the rate (and any 429 pause).
        The request's place in the rate window, or None when a stop came meanwhile."""
        ctx = self._ctx
        while self.stats.in_flight >= ctx.settings.max_in_flight:
            await self._wait_for_room()
        grant = await ctx.pacer.grant()
        if ctx.halt.asked:
            grant.release()
            return None
        return grant

    # --- requests under way -------------------------------------------------------------------

    def _start(self, send: Coroutine[Any, Any, None]) -> None:
        """Run ``send`` as a tracked in-flight task."""
        self.stats.in_flight += 1
        task = asyncio.create_task(send)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self.stats.in_flight -= 1
        self._room.set()
        if not task.cancelled() and task.exception() is not None and self._crashed is None:
            # An unexpected error (a bug, the database gone): its rows stay IN_FLIGHT, and the
            # run must stop and say so rather than finish as if all went well.
            self._crashed = task.exception()

    def _check(self) -> None:
        """Stop sending when the recorder or a send task failed: raise its error."""
        if self._crashed is not None:
            raise self._crashed
        self._ctx.recorder.check()

    async def _wait_for_room(self) -> None:
        """Wait until a send finishes (or a short while, to look again for due retries)."""
        self._room.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._room.wait(), timeout=0.5)

    async def _sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ctx.halt.stop.wait(), timeout=min(seconds, 5.0))

    async def _drain(self) -> None:
        if not self._tasks:
            return
        _, pending = await asyncio.wait(self._tasks, timeout=self._ctx.settings.drain_timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
