"""What each subcommand does: build its service's inputs from the parsed arguments and the
config, open the resources it needs, call the service, print its outcome, return its exit code.

Long-lived resources are opened here, inside the running loop (:mod:`campaign.resources`); the
loop itself, and the mapping of errors to one line, are :mod:`campaign.cli`'s.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

from campaign import campaignfile, cancelling, demo, errors, jsonutil, run, run_metrics, status_view
from campaign import receiver as receiver_mod
from campaign import sandbox as sandbox_mod
from campaign.config import SANDBOX_KEY_ID, Config
from campaign.models import DispatchStats, Status
from campaign.progress import ProgressDisplay
from campaign.resources import open_resources
from campaign.store import engine as store_engine
from campaign.store.repository import CampaignRow, Store

Command = Callable[[argparse.Namespace, Config | None], Coroutine[Any, Any, int]]

# What `campaign retry --status` accepts (campaign.store.campaigns.RETRYABLE); FAILED alone by
# default: IN_DOUBT rows may have reached Sinch, and are put back only when named.
RETRY_STATUSES = [Status.FAILED.value, Status.IN_DOUBT.value]


async def run_campaign(args: argparse.Namespace, config: Config | None) -> int:
    assert config is not None
    options = run.RunOptions(
        campaign_file=args.campaign_file,
        recipients=args.recipients,
        mode=args.mode,
        dry_run=args.dry_run,
        wait_for_delivery=args.wait_for_delivery,
        force_mode=args.force_mode,
        force_target=args.force_target,
        wait=args.wait,
        stats=DispatchStats() if getattr(args, "metrics_file", None) is not None else None,
    )
    if not args.dry_run:
        _say_if_sandbox(config)
    if getattr(args, "metrics_file", None) is None:
        return await _run(args, config, options)
    started = time.monotonic()
    code = errors.EXIT_FAILED  # what campaign.cli makes of an exception it did not name
    try:
        code = await _run(args, config, options)
        return code
    except errors.CampaignError as exc:  # the code campaign.cli exits with for it
        code = exc.exit_code
        raise
    except (KeyboardInterrupt, asyncio.CancelledError):
        code = errors.EXIT_INTERRUPTED
        raise
    finally:
        await asyncio.shield(_write_metrics(args, config, code, started, options.stats))


async def _write_metrics(
    args: argparse.Namespace,
    config: Config,
    code: int,
    started: float,
    stats: DispatchStats | None,
) -> None:
    """``--metrics-file``: the run's figures, read from the store, whatever the exit code."""
    try:
        name = campaignfile.load(args.campaign_file).name
    except errors.CampaignError:
        name = args.campaign_file.stem
    counts: dict[Status, int] = {}
    failures: list[tuple[str, str, int]] = []
    try:
        async with open_resources(config, sinch=False) as resources:
            store = resources.need_store()
            found = await store.campaigns.find(name)
            if found is not None:
                counts = await store.recipients.counts(found.id)
                failures = await store.recipients.error_summary(found.id)
    except (errors.CampaignError, OSError) as exc:
        print(f"--metrics-file: the store could not be read: {exc}", file=sys.stderr)
    run_metrics.write(
        args.metrics_file,
        run_metrics.RunFigures(
            name, code, time.monotonic() - started, time.time(), counts, failures, stats
        ),
    )


async def _run(args: argparse.Namespace, config: Config, options: run.RunOptions) -> int:
    try:
        return await run.run(config, options, stop=_stop_event(), display=ProgressDisplay())
    except OSError as exc:
        # The receiver that --wait-for-delivery starts is the one server a run binds to a port
        # of the config's (the embedded sandbox and its receiver take any free port). It starts
        # before anything is sent.
        if not _address_in_use(exc) or args.wait_for_delivery is None:
            raise
        where = f"{config.receiver.host}:{config.receiver.port}"
        raise errors.ConfigError(
            f"the receiver's port {where} is in use, nothing was sent: set [receiver] port to"
            " a free one, or run `campaign receiver` separately on this database and set"
            " [receiver] external = true (run --wait-for-delivery then only waits)"
        ) from exc


async def show_status(args: argparse.Namespace, config: Config | None) -> int:
    assert config is not None
    async with open_resources(config, sinch=False) as resources:
        store = resources.need_store()
        if args.name:
            found = await store.campaigns.find(args.name)
            if found is None:
                raise errors.CampaignError(f"no campaign named {args.name!r}")
            campaigns = [found]
        else:
            campaigns = await store.campaigns.all()
        views = []
        now = datetime.now(UTC)
        for campaign in campaigns:
            paused = None if campaign.paused_at is None else campaign.paused_at.isoformat()
            definition = jsonutil.loads(campaign.definition)
            # A queued message leaves Sinch's queue only after the wait in it: stale after
            # that, not from when it was sent.
            stale_after = float(definition.get("stale_after", 3600.0)) + (
                campaign.queue_wait or 0.0
            )
            views.append(
                status_view.campaign_view(
                    campaign,
                    await store.recipients.counts(campaign.id),
                    await store.recipients.error_summary(campaign.id) if args.name else [],
                    await store.recipients.delivery_summary(campaign.id),
                    await store.recipients.stale_queued(
                        campaign.id, now - timedelta(seconds=stale_after)
                    ),
                    str(definition.get("in_doubt_policy", "hold")),
                    await store.chunks.by_status(campaign.id),
                    definition.get("send_after"),
                    status_view.Pace(
                        config.sending.requests_per_second,
                        config.sending.batch_size if campaign.mode == "batch" else 1,
                    ),
                    now,
                    await store.recipients.delivered_by_channel(campaign.id),
                    await store.recipients.fell_back(campaign.id),
                )
                | {"paused_at": paused}
            )
    if args.json:
        print(jsonutil.dumps(views if not args.name else views[0]))
    elif not views:
        print("no campaigns yet")
    else:
        shown = [v | {"state": f"{v['state']}, PAUSED"} if v["paused_at"] else v for v in views]
        for line in status_view.render_text(shown):
            print(line)
    return errors.EXIT_OK


def _say_if_sandbox(config: Config) -> None:
    """With Sinch credentials in the environment and ``sandbox = true``, say plainly that
    nothing goes to Sinch: the run would report everyone QUEUED as if it had."""
    if config.sinch.sandbox and os.environ.get("SINCH_KEY_ID", "") not in ("", SANDBOX_KEY_ID):
        print(
            "campaign: note: [sinch] sandbox = true: this sends to the built-in sandbox, not to"
            " Sinch (set sandbox = false in the config to send for real)",
            file=sys.stderr,
        )


async def cancel_campaign(args: argparse.Namespace, config: Config | None) -> int:
    assert config is not None
    _say_if_sandbox(config)
    async with open_resources(config) as resources:
        store = resources.need_store()
        campaign = await store.campaigns.find(args.name)
        if campaign is None:
            raise errors.CampaignError(f"no campaign named {args.name!r}")
        cancelled = await cancelling.cancel_scheduled(
            resources.need_client(), await store.chunks.queued_batch_ids(campaign.id)
        )
        counts = await store.campaigns.cancel(campaign.id, cancelled, datetime.now(UTC))
    print(
        f"{args.name}: cancelled {counts['pending']:,} recipients not yet sent and "
        f"{counts['scheduled']:,} in {len(cancelled):,} scheduled batches"
    )
    return errors.EXIT_OK


async def retry_recipients(args: argparse.Namespace, config: Config | None) -> int:
    assert config is not None
    statuses = [Status(s) for s in dict.fromkeys(args.statuses or [Status.FAILED.value])]
    async with open_resources(config, sinch=False) as resources:
        store = resources.need_store()
        campaign = await _campaign(store, args.name)
        retried = await store.campaigns.retry(
            campaign.id, statuses, args.codes or [], datetime.now(UTC)
        )
    if retried.refused:
        raise errors.CampaignError(
            f"{args.name}: the campaign was cancelled; its recipients are not sent again"
        )
    codes = f" with error code {', '.join(args.codes)}" if args.codes else ""
    for status in statuses:
        print(f"{args.name}: {retried.counts[status]:,} {status.value} recipients{codes} put back")
    if retried.counts.get(Status.IN_DOUBT):
        _warn(
            f"{args.name}: IN_DOUBT recipients may have reached Sinch before their answer was"
            " lost: sending them again may deliver the message twice"
        )
    if retried.total:
        paused = " (paused: `campaign resume` it first)" if campaign.paused_at else ""
        print(f"{args.name}: `campaign run` sends them{paused}")
    return errors.EXIT_OK


async def pause_campaign(args: argparse.Namespace, config: Config | None) -> int:
    assert config is not None
    async with open_resources(config, sinch=False) as resources:
        store = resources.need_store()
        campaign = await _campaign(store, args.name)
        since = await store.campaigns.pause(campaign.id, datetime.now(UTC))
    if since is not None:
        print(f"{args.name}: already paused since {_iso(since)}")
    else:
        print(
            f"{args.name}: paused; its runs stop claiming within a heartbeat and exit once their"
            f" requests under way are recorded (`campaign resume {args.name}` lifts it)"
        )
    return errors.EXIT_OK


async def resume_campaign(args: argparse.Namespace, config: Config | None) -> int:
    assert config is not None
    async with open_resources(config, sinch=False) as resources:
        store = resources.need_store()
        campaign = await _campaign(store, args.name)
        since = await store.campaigns.resume(campaign.id, datetime.now(UTC))
    if since is None:
        print(f"{args.name}: not paused; nothing to resume")
    else:
        print(f"{args.name}: resumed (paused since {_iso(since)}); run it again to carry on")
    return errors.EXIT_OK


async def _campaign(store: Store, name: str) -> CampaignRow:
    campaign = await store.campaigns.find(name)
    if campaign is None:
        raise errors.CampaignError(f"no campaign named {name!r}")
    return campaign


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _warn(text: str) -> None:
    print(f"campaign: warning: {text}", file=sys.stderr)


async def upgrade_database(args: argparse.Namespace, config: Config | None) -> int:
    assert config is not None
    url = config.database.url
    migrated = await asyncio.to_thread(store_engine.upgrade_sync, url)
    after = store_engine.revision_name(migrated.after)
    if not migrated.steps:
        print(f"database {store_engine.safe_url(url)} is at the latest schema ({after})")
        return errors.EXIT_OK
    count = len(migrated.steps)
    print(
        f"migrated {store_engine.safe_url(url)} from {store_engine.revision_name(migrated.before)}"
        f" to {after}: {count} migration{'s' if count != 1 else ''}"
    )
    return errors.EXIT_OK


async def serve_receiver(args: argparse.Namespace, config: Config | None) -> int:
    assert config is not None
    settings = receiver_mod.ReceiverSettings.from_config(
        config.receiver,
        config.sinch,
        allow_unsigned=args.unsigned,
        path=args.path,
        optout=config.optout,
    )
    settings.require_secret()  # refuse to start unsigned before opening anything
    stop = _stop_event()
    host = args.host or config.receiver.host
    port = config.receiver.port if args.port is None else args.port
    async with open_resources(config, sinch=False) as resources:
        try:
            await receiver_mod.serve(
                resources.need_store(), settings, host, port, stop, print_fn=_print
            )
        except OSError as exc:
            if not _address_in_use(exc):
                raise
            raise errors.ConfigError(
                f"the receiver's port {host}:{port} is in use: pass --port or set [receiver]"
                " port to a free one (or stop what listens there)"
            ) from exc
    return errors.EXIT_OK


def _address_in_use(exc: OSError) -> bool:
    return exc.errno == errno.EADDRINUSE


async def run_demo(args: argparse.Namespace, config: Config | None) -> int:
    return await demo.run_demo(
        output_dir=args.output_dir,
        campaign_file=args.campaign,
        stop=_stop_event(),
        display=ProgressDisplay(),
    )


async def serve_sandbox(args: argparse.Namespace, config: Config | None) -> int:
    settings = sandbox_mod.settings_from_args(args)
    stop = _stop_event()
    server = asyncio.create_task(
        sandbox_mod.serve_forever(settings, args.host, args.port, print_fn=_print)
    )
    waiter = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({server, waiter}, return_when=asyncio.FIRST_COMPLETED)
    for task in (server, waiter):
        task.cancel()
    await asyncio.gather(server, waiter, return_exceptions=True)
    if server in done and server.exception() is not None:
        raise server.exception()  # type: ignore[misc]
    return errors.EXIT_OK


def _print(text: str) -> None:
    print(text, flush=True)


def _stop_event() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM (the loop's handlers replace the default ones)."""
    event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, event.set)
    return event
