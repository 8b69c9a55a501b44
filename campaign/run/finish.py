"""The last steps of a run: the deadline, waiting for delivery, the summary and exit code."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import datetime

from campaign import windows
from campaign.errors import EXIT_INTERRUPTED, StoreError
from campaign.models import Status
from campaign.progress import ProgressDisplay, RateMeter, Snapshot
from campaign.reporting import exit_code_for, summary_lines
from campaign.run.context import RunContext, iso, utc_now
from campaign.store.repository import CampaignRow, Store

# Statuses after which a callback is still expected.
AWAITING = (Status.QUEUED, Status.QUEUED_ON_CHANNEL, Status.SWITCHING_CHANNEL)


async def close_deadline(
    ctx: RunContext, store: Store, campaign: CampaignRow, deferred: datetime | None
) -> datetime | None:
    """Past the deadline, or with what is left held by quiet hours until after it: what was
    not sent is CANCELLED (and nothing is deferred any more)."""
    deadline = ctx.spec.deadline
    if deadline is None or (deferred or ctx.now()) < deadline:
        return deferred
    closed = await store.recipients.cancel_pending(
        campaign.id, ctx.now(), windows.DEADLINE_CODE, windows.DEADLINE_REASON
    )
    if closed:
        why = (
            "the deadline passed"
            if deferred is None
            else "what is left could not reach the channels before the deadline"
        )
        ctx.out(f"{ctx.spec.name}: {why}: {closed:,} recipients not sent, CANCELLED")
    return None


async def summary(
    ctx: RunContext,
    store: Store,
    campaign: CampaignRow,
    finished: bool,
    deferred: datetime | None,
) -> int:
    """The campaign's summary table, what comes next, and the run's exit code."""
    spec = ctx.spec
    counts = await store.recipients.counts(campaign.id)
    lines = summary_lines(spec.name, counts, await store.recipients.error_summary(campaign.id))
    lines.insert(1, ("sent to", campaign.target or ctx.config.sinch.target))
    delivery = await store.recipients.delivery_summary(campaign.id)
    if delivery["accepted"]:
        accepted = delivery["accepted"]
        lines.append(("delivered (of accepted)", f"{delivery['delivered'] / accepted:.1%}"))
        lines.append(("read (of accepted)", f"{delivery['read'] / accepted:.1%}"))
    channels = await store.recipients.delivered_by_channel(campaign.id)
    for channel, count in sorted(channels.items()):
        lines.append((f"delivered on {channel}", f"{count:,}"))
    fell_back = await store.recipients.fell_back(campaign.id)
    if fell_back:
        lines.append(("fell back to another channel", f"{fell_back:,}"))
    lines.append(("in-doubt policy", f"{spec.in_doubt_policy} after {spec.in_doubt_grace:g} s"))
    ctx.display.table(f"summary: {spec.name}", lines)
    if finished and deferred is not None:
        ctx.out(
            f"{spec.name}: {counts.get(Status.PENDING, 0):,} recipients wait for their sending"
            f" hours ({spec.quiet_hours} is quiet); the next window opens at {iso(deferred)}:"
            " run again then"
        )
        return 0
    if not finished:
        ctx.out(f"{spec.name}: interrupted; run the same command again to resume")
        return EXIT_INTERRUPTED
    return exit_code_for(counts)


async def wait_for_delivery(
    store: Store,
    campaign_id: int,
    seconds: float,
    stop: asyncio.Event,
    display: ProgressDisplay,
    out: Callable[[str], None],
    clock: Callable[[], datetime] = utc_now,
) -> bool:
    """Wait until no sent recipient still expects a callback (True), or time runs out."""
    deadline = time.monotonic() + seconds
    counts = await store.recipients.counts(campaign_id)
    received = first = await store.events.count(campaign_id)
    meter = RateMeter(start=time.monotonic())

    def read() -> Snapshot:
        waiting = sum(counts.get(s, 0) for s in AWAITING)
        settled = sum(counts.get(s, 0) for s in (Status.DELIVERED, Status.READ, Status.FAILED))
        detail = (
            f"delivered {counts.get(Status.DELIVERED, 0):,} · read {counts.get(Status.READ, 0):,}"
            f" · failed {counts.get(Status.FAILED, 0):,} · waiting {waiting:,}"
        )
        rate = meter.rate(time.monotonic(), received - first)
        return Snapshot(settled, settled + waiting, rate, None, detail, "callbacks/s")

    async with display.track("delivery", read):
        while True:
            with contextlib.suppress(StoreError):  # another applier got there first
                await store.events.apply(clock())
            counts = await store.recipients.counts(campaign_id)
            received = await store.events.count(campaign_id)
            if not any(counts.get(s, 0) for s in AWAITING):
                return True
            if stop.is_set() or time.monotonic() >= deadline:
                waiting = sum(counts.get(s, 0) for s in AWAITING)
                out(
                    f"stopped waiting for delivery: {waiting:,} recipients have no final status yet"
                )
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.5)
