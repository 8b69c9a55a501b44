"""The command line: parse -> config -> one set of resources -> one service call -> exit code.

There is exactly one ``asyncio.run`` in the product, here. Errors print as one line on stderr
(the cause chain too with ``-v``) and map to the exit codes of the interface:
0 success, 1 some recipients did not make it, 2 usage/config/input error, 3 interrupted,
4 campaign held by another process.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import signal
import sys
import traceback
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from campaign import (
    __version__,
    cancelling,
    demo,
    errors,
    jsonutil,
    reporting,
    run,
    secrets,
    status_view,
)
from campaign import receiver as receiver_mod
from campaign import sandbox as sandbox_mod
from campaign.config import Config, load_config
from campaign.progress import ProgressDisplay
from campaign.resources import open_resources
from campaign.store import engine as store_engine

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

Command = Callable[[argparse.Namespace, Config | None], Coroutine[Any, Any, int]]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="campaign",
        description="High-volume campaigns over the Sinch Conversation API.",
    )
    parser.add_argument("--version", action="version", version=f"campaign {__version__}")
    _add_global_options(parser, default=True)
    # The same options after the subcommand. Their defaults are left out there, so that a value
    # given before the subcommand is not overwritten by the subcommand's default.
    common = argparse.ArgumentParser(add_help=False)
    _add_global_options(common, default=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
        parents=[common],
        help="run (or resume) a campaign",
        description="Load, validate, plan and send a campaign. Safe to repeat: a new name starts "
        "it, an interrupted one resumes, a finished one does nothing.",
    )
    run.add_argument("campaign_file", type=Path, metavar="CAMPAIGN.toml")
    run.add_argument("--recipients", type=Path, help="recipients file (overrides the campaign's)")
    run.add_argument("--mode", choices=["batch", "individual"], help="override the send mode")
    run.add_argument(
        "--dry-run", action="store_true", help="validate and plan; write and send nothing"
    )
    run.add_argument(
        "--wait-for-delivery",
        type=float,
        metavar="SECONDS",
        help="after sending, receive delivery callbacks (in-process unless [receiver] external)"
        " until every sent recipient has a final status or SECONDS pass",
    )
    run.add_argument(
        "--force-mode",
        action="store_true",
        help="switch a started campaign to the --mode given (it otherwise keeps its mode)",
    )
    run.add_argument(
        "--wait",
        action="store_true",
        help="a campaign not due yet (send_after): wait for it instead of exiting 0",
    )
    run.set_defaults(handler=_run, needs_config=True)

    cancel = sub.add_parser(
        "cancel",
        parents=[common],
        help="stop further sends and cancel scheduled batches",
        description="Mark every recipient not yet sent CANCELLED, and ask Sinch to cancel "
        "batches scheduled with send_after that have not gone out (their recipients become "
        "CANCELLED once Sinch confirms).",
    )
    cancel.add_argument("name", metavar="NAME")
    cancel.set_defaults(handler=_cancel, needs_config=True)

    status = sub.add_parser("status", parents=[common], help="show campaigns and their counts")
    status.add_argument("name", nargs="?", metavar="NAME")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(handler=_status, needs_config=True, needs_sinch=False)

    report = sub.add_parser(
        "report", parents=[common], help="export the delivery report (CSV or Parquet)"
    )
    report.add_argument("name", metavar="NAME")
    report.add_argument(
        "--output", "-o", type=Path, required=True, help="PATH ending in .csv or .parquet"
    )
    report.set_defaults(handler=_report, needs_config=True, needs_sinch=False)

    db = sub.add_parser("db", parents=[common], help="database administration")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    upgrade = db_sub.add_parser(
        "upgrade", parents=[common], help="migrate the database schema to the latest version"
    )
    upgrade.set_defaults(handler=_db_upgrade, needs_config=True, needs_sinch=False)

    receiver = sub.add_parser(
        "receiver",
        parents=[common],
        help="run the delivery-webhook receiver",
        description="Receive Sinch's signed delivery callbacks, store each one durably before "
        "answering 200, and apply it to its recipient. Run it behind a reverse proxy; the "
        "webhook secret comes from SINCH_WEBHOOK_SECRET.",
    )
    receiver.add_argument("--host", help="address to listen on (default: [receiver] host)")
    receiver.add_argument("--port", type=int, help="port (default: [receiver] port)")
    receiver.add_argument("--path", help="callback path (default: [receiver] path)")
    receiver.add_argument(
        "--unsigned",
        action="store_true",
        help="accept unsigned callbacks (local tests only; never in production)",
    )
    receiver.set_defaults(handler=_receiver, needs_config=True, needs_sinch=False)

    demo = sub.add_parser(
        "demo",
        parents=[common],
        help="run the sample campaign end to end against the built-in sandbox",
    )
    demo.add_argument(
        "--output-dir",
        type=Path,
        default=Path("campaign-demo"),
        help="where the demo database and report go (default: ./campaign-demo)",
    )
    demo.add_argument(
        "--campaign",
        type=Path,
        default=None,
        help="campaign file to run (default: sample_data/text_campaign.toml)",
    )
    demo.set_defaults(handler=_demo, needs_config=False)

    sandbox = sub.add_parser(
        "sandbox",
        parents=[common],
        help="run the local Sinch emulator",
        description="Run the local Sinch sandbox: OAuth, messages:send, the Batch API, rate "
        "limits, faults and signed delivery callbacks, over real HTTP.",
    )
    sandbox_mod.add_arguments(sandbox)
    sandbox.set_defaults(handler=_sandbox, needs_config=False)
    return parser


def _add_global_options(parser: argparse.ArgumentParser, *, default: bool) -> None:
    """``--config``, ``--database`` and ``-v``: accepted before the subcommand (``default``:
    the top-level parser, which sets their defaults) and after it (each subcommand's)."""
    suppress: Any = argparse.SUPPRESS
    parser.add_argument(
        "--config",
        type=Path,
        default=None if default else suppress,
        help="config file (default: $CAMPAIGN_CONFIG, else ./config.toml)",
    )
    parser.add_argument(
        "--database",
        default=None if default else suppress,
        help="database URL (default: $CAMPAIGN_DATABASE_URL, else the config file's)",
    )
    # A count of its own after the subcommand: `-v run -v` is -vv, not -v.
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        dest="verbose" if default else "verbose_after",
        default=0 if default else suppress,
        help="more logging, and the cause chain of an error",
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    args.verbose += vars(args).pop("verbose_after", 0)
    return args


async def _run(args: argparse.Namespace, config: Config | None) -> int:
    assert config is not None
    options = run.RunOptions(
        campaign_file=args.campaign_file,
        recipients=args.recipients,
        mode=args.mode,
        dry_run=args.dry_run,
        wait_for_delivery=args.wait_for_delivery,
        force_mode=args.force_mode,
        wait=args.wait,
    )
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


async def _status(args: argparse.Namespace, config: Config | None) -> int:
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
            definition = jsonutil.loads(campaign.definition)
            stale_after = float(definition.get("stale_after", 3600.0))
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
                )
            )
    if args.json:
        print(jsonutil.dumps(views if not args.name else views[0]))
    elif not views:
        print("no campaigns yet")
    else:
        for line in status_view.render_text(views):
            print(line)
    return EXIT_OK


async def _cancel(args: argparse.Namespace, config: Config | None) -> int:
    assert config is not None
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
    return EXIT_OK


async def _report(args: argparse.Namespace, config: Config | None) -> int:
    assert config is not None
    async with open_resources(config, sinch=False) as resources:
        store = resources.need_store()
        campaign = await store.campaigns.find(args.name)
        if campaign is None:
            raise errors.CampaignError(f"no campaign named {args.name!r}")
        rows = await reporting.export(store.export.pages(campaign.id), args.output)
    print(f"wrote {rows:,} rows to {args.output}")
    return EXIT_OK


async def _db_upgrade(args: argparse.Namespace, config: Config | None) -> int:
    assert config is not None
    url = config.database.url
    migrated = await asyncio.to_thread(store_engine.upgrade_sync, url)
    after = store_engine.revision_name(migrated.after)
    if not migrated.steps:
        print(f"database {store_engine.safe_url(url)} is at the latest schema ({after})")
        return EXIT_OK
    count = len(migrated.steps)
    print(
        f"migrated {store_engine.safe_url(url)} from {store_engine.revision_name(migrated.before)}"
        f" to {after}: {count} migration{'s' if count != 1 else ''}"
    )
    return EXIT_OK


async def _receiver(args: argparse.Namespace, config: Config | None) -> int:
    assert config is not None
    settings = receiver_mod.ReceiverSettings.from_config(
        config.receiver, config.sinch, allow_unsigned=args.unsigned, path=args.path
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
    return EXIT_OK


def _address_in_use(exc: OSError) -> bool:
    return exc.errno == errno.EADDRINUSE


async def _demo(args: argparse.Namespace, config: Config | None) -> int:
    return await demo.run_demo(
        output_dir=args.output_dir,
        campaign_file=args.campaign,
        stop=_stop_event(),
        display=ProgressDisplay(),
    )


async def _sandbox(args: argparse.Namespace, config: Config | None) -> int:
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
    return EXIT_OK


def _print(text: str) -> None:
    print(text, flush=True)


def _stop_event() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM (the loop's handlers replace the default ones)."""
    event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, event.set)
    return event


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    handler = logging.StreamHandler()
    # Every log line, any library's included, goes through the one redaction of secrets.
    handler.setFormatter(
        secrets.RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    logging.basicConfig(level=level, handlers=[handler])
    # Its debug lines carry SQL parameters, that is recipient data: not for a log.
    logging.getLogger("aiosqlite").setLevel(max(level, logging.INFO))


def _cause(exc: BaseException) -> BaseException | None:
    """The exception ``exc`` came from, unless it was raised ``from None`` on purpose."""
    if exc.__cause__ is not None:
        return exc.__cause__
    return None if exc.__suppress_context__ else exc.__context__


def _one_line(text: str) -> str:
    """``text`` on one line: a driver's message of several lines (psycopg's hints, a
    deadlock's detail) joined."""
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def _describe(exc: BaseException, verbose: bool) -> str:
    text = _one_line(str(exc)) or type(exc).__name__
    if verbose:
        cause = _cause(exc)
        while cause is not None:
            text += f"\n  caused by {type(cause).__name__}: {cause}"
            cause = _cause(cause)
    return text


def _error(text: str) -> None:
    """Print an error for the user, with any secret value masked."""
    print(f"campaign: error: {secrets.redact(text)}", file=sys.stderr)


async def _supervised(command: Coroutine[Any, Any, int], verbose: bool) -> int:
    """Run ``command`` with the loop's last-resort error handler saying what went wrong in one
    log line (asyncio's own prints a traceback of a hundred lines, for instance for a task
    whose database connection the server closed): the command's own error still says why it
    stopped, in its one line."""
    loop = asyncio.get_running_loop()

    def report(_loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        what = context.get("message", "unexpected error")
        if exc is not None:
            first = next((line for line in str(exc).splitlines() if line.strip()), "")
            what = f"{what}: {type(exc).__name__}: {first}".rstrip(": ")
        logging.getLogger("campaign").warning(
            secrets.redact(what), exc_info=exc if verbose else None
        )

    loop.set_exception_handler(report)
    return await command


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    _configure_logging(args.verbose)
    handler: Command = args.handler
    config: Config | None = None
    try:
        if args.needs_config:  # commands that never call Sinch need no credentials
            credentials = getattr(args, "needs_sinch", True)
            config = load_config(args.config, database_url=args.database, credentials=credentials)
        return asyncio.run(_supervised(handler(args, config), args.verbose > 0))
    except errors.StoreError as exc:
        # Unreachable, locked, full or not migrated: the store's one line names the database
        # (password masked) and what the driver said; -v adds the whole story.
        text = str(exc)
        if args.verbose:
            text += "\n" + "".join(traceback.format_exception(exc)).rstrip()
        _error(text)
        return exc.exit_code
    except errors.CampaignError as exc:
        _error(_describe(exc, args.verbose > 0))
        return exc.exit_code
    except KeyboardInterrupt:
        print("campaign: interrupted", file=sys.stderr)
        return errors.EXIT_INTERRUPTED
    except Exception as exc:  # the supervision point of last resort: no secret in a crash
        if args.verbose:
            _error("internal error\n" + "".join(traceback.format_exception(exc)).rstrip())
        else:
            _error(f"internal error: {type(exc).__name__}: {_one_line(str(exc))} (-v shows where)")
        return EXIT_FAILED
