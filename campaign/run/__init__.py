"""``campaign run``: a short sequence of named steps. Safe to repeat.

preflight (``--dry-run``, the credentials) -> window (due yet?) -> campaign state (new,
scheduled, resumed, switched, finished) -> load -> resume (what earlier runs left) -> send ->
wait for delivery -> summary.

A new campaign name starts the campaign; an interrupted one resumes where it stopped; a finished
one does nothing. The recipients file is read once, into the store; later runs use the store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

from campaign import rendering
from campaign.config import Config
from campaign.errors import EXIT_INTERRUPTED
from campaign.membership import Membership, MembershipSettings, worker_name
from campaign.models import SCHEDULED
from campaign.progress import ProgressDisplay
from campaign.resources import Resources, open_resources
from campaign.run import audience, finish, preflight, state
from campaign.run.context import RunContext, RunOptions, iso, prepare_spec, utc_now
from campaign.run.finish import wait_for_delivery
from campaign.run.load import (
    FirstPass,
    Ingest,
    LoadBeside,
    check_same_file,
    chunking,
    open_source,
    say_assumed,
    warn_if_changed,
)
from campaign.run.send import Sending
from campaign.sinch.client import AppInfo
from campaign.store.repository import CampaignRow


async def run(
    config: Config,
    options: RunOptions,
    *,
    stop: asyncio.Event,
    display: ProgressDisplay,
    out: Callable[[str], None] = print,
    clock: Callable[[], datetime] = utc_now,
) -> int:
    ctx = RunContext(config, prepare_spec(options), options, stop, display, out, clock)
    if options.dry_run:
        return await preflight.dry_run(ctx)
    source = open_source(ctx.spec)  # file-level problems stop us before anything is written
    say_assumed(source, out)
    template = rendering.MessageTemplate.compile(ctx.spec.message)
    if (early := await state.wait_until_due(ctx, source)) is not None:
        return early
    receive = options.wait_for_delivery is not None and not config.receiver.external
    async with FirstPass(source) as first, open_resources(config, receiver=receive) as resources:
        store = resources.need_store()
        if resources.receiver is not None:
            out(f"receiving delivery callbacks on {resources.receiver.url}")
        found = await store.campaigns.find(ctx.spec.name)
        if found is not None and found.paused_at is not None:
            out(
                f"{ctx.spec.name}: paused by `campaign pause` since {iso(found.paused_at)};"
                f" nothing sent (`campaign resume {ctx.spec.name}` then run again)"
            )
            return 0
        if found is not None and found.state not in ("LOADING", SCHEDULED):
            await first.close()  # loaded already: the pass begun on the way is not needed
        app: AppInfo | None = None
        if found is None or found.state not in state.FINISHED:
            app = await preflight.check(resources)
            audience.check_app(ctx.spec, app)
        campaign = await state.current(ctx, store, found, source)
        beside: LoadBeside | None = None
        if campaign.state == "LOADING":
            check_same_file(campaign, source)
            chunks = chunking(ctx.spec, resources.config, campaign.key)
            ingest = Ingest(store, campaign, first, chunks, stop, ctx.clock)
            if chunks is not None:
                beside = ingest  # batch mode: each stored slice's chunks are sent at once
            else:
                with display.console.status("loading recipients…"):
                    if not await ingest():
                        out(f"{ctx.spec.name}: interrupted; run the same command again to resume")
                        return EXIT_INTERRUPTED
        else:
            warn_if_changed(campaign, source, out)
        if campaign.state in state.FINISHED:
            done = "finished" if campaign.state == "DONE" else "cancelled"
            out(f"{ctx.spec.name}: already {done}; nothing to do")
            return 0
        return await _as_worker(ctx, resources, campaign, template, beside, app)


async def _as_worker(
    ctx: RunContext,
    resources: Resources,
    campaign: CampaignRow,
    template: rendering.MessageTemplate,
    beside: LoadBeside | None,
    app: AppInfo | None,
) -> int:
    """Resume, send, wait for delivery and summarise as one of the campaign's workers."""
    store, sending_config = resources.need_store(), resources.config.sending
    member = await Membership.join(
        store,
        campaign.id,
        name=worker_name(),
        exclusive=ctx.spec.exclusive,
        settings=MembershipSettings(
            interval=sending_config.heartbeat_interval, lease=sending_config.worker_lease
        ),
        clock=ctx.clock,
    )
    try:
        sending = Sending.begin(ctx, resources, campaign, member, template, beside is not None, app)
        await sending.resume()
        finished, deferred = await sending.send(beside)
        deferred = await finish.close_deadline(ctx, store, campaign, deferred)
        if member.lost:
            ctx.out(
                f"{ctx.spec.name}: another worker declared this one dead (no heartbeat for"
                f" {member.settings.lease:g} s); its recipients were settled; stopped"
            )
            return EXIT_INTERRUPTED
        if member.paused and not finished:
            ctx.out(paused_line(ctx.spec.name))
            return 0
        if finished and deferred is None:
            if not await store.campaigns.finish(campaign.id, ctx.now()):
                ctx.out(f"{ctx.spec.name}: recipients were put back while this run finished")
                return await finish.summary(ctx, store, campaign, False, None)
            if ctx.options.wait_for_delivery is not None:
                await wait_for_delivery(
                    store,
                    campaign.id,
                    ctx.options.wait_for_delivery,
                    ctx.stop,
                    ctx.display,
                    ctx.out,
                    ctx.clock,
                )
        return await finish.summary(ctx, store, campaign, finished, deferred)
    finally:
        await member.leave(_stop_reason(member, ctx.stop.is_set()))


def paused_line(name: str) -> str:
    """What a run stopped by `campaign pause` says as it exits 0."""
    return f"{name}: paused by `campaign pause`; `campaign resume {name}` then run again"


def _stop_reason(member: Membership, stopped: bool) -> str:
    if member.lost:
        return "LOST"
    if member.paused:
        return "PAUSED"
    return "STOPPED" if stopped else "FINISHED"


__all__ = ["FirstPass", "RunOptions", "prepare_spec", "run", "wait_for_delivery"]
