"""The window and campaign-state steps: is the campaign due, and which campaign row does
this run carry on (new, scheduled, resumed, switched to another mode, or finished)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from typing import Any

import orjson
import ulid

from campaign import loading, windows
from campaign.errors import EXIT_INTERRUPTED, ConfigError
from campaign.models import SCHEDULED
from campaign.resources import open_resources
from campaign.run.context import RunContext, iso
from campaign.store.repository import CampaignRow, Store

FINISHED = ("DONE", "CANCELLED")


async def wait_until_due(ctx: RunContext, source: loading.RecipientSource) -> int | None:
    """Before ``send_after``: record the campaign as SCHEDULED and exit 0, or wait for it
    (``--wait``; a stop meanwhile exits 3). None: the campaign is due, go on."""
    spec = ctx.spec
    window = windows.Window(spec.send_after, spec.deadline)
    if window.phase(ctx.now()) is not windows.Phase.EARLY:
        return None
    assert spec.send_after is not None
    due = iso(spec.send_after)
    await _schedule(ctx, source)
    if not ctx.options.wait:
        ctx.out(f"{spec.name}: not due yet; it may send from {due} (run again then, or --wait)")
        return 0
    ctx.out(f"{spec.name}: waiting until {due}")
    with contextlib.suppress(TimeoutError):
        left = (spec.send_after - ctx.now()).total_seconds()
        await asyncio.wait_for(ctx.stop.wait(), timeout=max(0.0, left))
    return EXIT_INTERRUPTED if ctx.stop.is_set() else None


async def current(
    ctx: RunContext, store: Store, campaign: CampaignRow | None, source: loading.RecipientSource
) -> CampaignRow:
    """The campaign row this run carries on: created when new, begun LOADING when it was
    SCHEDULED, switched to the mode asked for when ``--force-mode`` allows it."""
    spec = ctx.spec
    if campaign is None:
        return await _create(ctx, store, source, str(ulid.ULID()))
    campaign = await _same_target(ctx, store, campaign)
    if campaign.state == SCHEDULED:  # due now: it begins as a new campaign would
        await store.campaigns.update(campaign.id, now=ctx.now(), **_as_now(ctx, source, "LOADING"))
        found = await store.campaigns.find(spec.name)
        assert found is not None
        return found
    if campaign.mode == spec.mode:
        return campaign
    if not ctx.options.force_mode:
        raise ConfigError(
            f"{spec.name}: the campaign was started in {campaign.mode} mode and stays "
            f"in it (pass --force-mode to switch it to {spec.mode})"
        )
    await store.campaigns.update(campaign.id, now=ctx.now(), mode=spec.mode)
    ctx.out(f"{spec.name}: switched from {campaign.mode} to {spec.mode} mode")
    return dataclasses.replace(campaign, mode=spec.mode)


async def _same_target(ctx: RunContext, store: Store, campaign: CampaignRow) -> CampaignRow:
    """The campaign, if this run sends where it began: a campaign begun on the built-in
    sandbox and carried on against Sinch (or another app) would tell the sandbox's results for
    real ones. ``--force-target`` moves it; a campaign that did not record it takes this one."""
    target = ctx.config.sinch.target
    if campaign.target == target:
        return campaign
    if campaign.target is not None and not ctx.options.force_target:
        raise ConfigError(
            f"{ctx.spec.name}: the campaign was started on {campaign.target}; this run would "
            f"send on {target} (pass --force-target to carry it on there, or give the "
            "campaign another name)"
        )
    await store.campaigns.update(campaign.id, now=ctx.now(), target=target)
    if campaign.target is not None:
        ctx.out(f"{ctx.spec.name}: moved from {campaign.target} to {target}")
    return dataclasses.replace(campaign, target=target)


def _as_now(ctx: RunContext, source: loading.RecipientSource, state: str) -> dict[str, Any]:
    """The campaign's row as the files are now (a SCHEDULED campaign follows them)."""
    spec = ctx.spec
    return {
        "state": state,
        "mode": spec.mode,
        "channel": spec.channel.value,
        "definition": orjson.dumps(spec.definition()).decode(),
        "source": str(spec.recipients),
        "source_digest": source.digest,
    }


async def _create(
    ctx: RunContext, store: Store, source: loading.RecipientSource, key: str
) -> CampaignRow:
    """The campaign's row, created with ``key`` (or the row another run created first)."""
    spec = ctx.spec
    return await store.campaigns.create(
        name=spec.name,
        key=key,
        mode=spec.mode,
        channel=spec.channel.value,
        definition=orjson.dumps(spec.definition()).decode(),
        source=str(spec.recipients),
        source_digest=source.digest,
        now=ctx.now(),
        target=ctx.config.sinch.target,
    )


async def _schedule(ctx: RunContext, source: loading.RecipientSource) -> None:
    """Record the campaign, not due yet, as SCHEDULED (or bring a SCHEDULED one up to date
    with its files). A campaign that has begun is left as it is."""
    async with open_resources(ctx.config, sinch=False) as resources:
        store = resources.need_store()
        campaign = await store.campaigns.find(ctx.spec.name)
        if campaign is None:
            key = str(ulid.ULID())
            campaign = await _create(ctx, store, source, key)
            if campaign.key != key:  # another run created it first: that one decides
                return
        elif campaign.state != SCHEDULED:
            return
        await store.campaigns.update(campaign.id, now=ctx.now(), **_as_now(ctx, source, SCHEDULED))
