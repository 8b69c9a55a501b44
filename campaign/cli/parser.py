"""The command line's grammar: the subcommands, their arguments and their help. Each
subcommand names its handler (:mod:`campaign.cli.commands`) and whether it needs the config
and Sinch's credentials."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from campaign import __version__
from campaign import sandbox as sandbox_mod
from campaign.cli import commands, preview, report, suppress, webhooks

Subparsers = Any  # argparse's _SubParsersAction, private


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

    _run(sub, common)
    _cancel(sub, common)
    _retry(sub, common)
    _pause(sub, common)
    _status(sub, common)
    report.add_parser(sub, common)
    webhooks.add_parser(sub, common)
    suppress.add_parser(sub, common)
    preview.add_parser(sub, common)
    _db(sub, common)
    _receiver(sub, common)
    _demo(sub, common)
    _sandbox(sub, common)
    return parser


def _run(sub: Subparsers, common: argparse.ArgumentParser) -> None:
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
        "--force-target",
        action="store_true",
        help="carry a started campaign on where this run sends (the built-in sandbox, or a"
        " Sinch project's app and region), not where it began",
    )
    run.add_argument(
        "--wait",
        action="store_true",
        help="a campaign not due yet (send_after): wait for it instead of exiting 0",
    )
    run.add_argument(
        "--metrics-file",
        type=Path,
        metavar="PATH",
        help="when the run ends (any exit code), write its figures there in node_exporter's"
        " textfile-collector format",
    )
    run.set_defaults(handler=commands.run_campaign, needs_config=True)


def _cancel(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    cancel = sub.add_parser(
        "cancel",
        parents=[common],
        help="stop further sends and cancel scheduled batches",
        description="Mark every recipient not yet sent CANCELLED, and ask Sinch to cancel "
        "batches scheduled with send_after that have not gone out (their recipients become "
        "CANCELLED once Sinch confirms).",
    )
    cancel.add_argument("name", metavar="NAME")
    cancel.set_defaults(handler=commands.cancel_campaign, needs_config=True)


def _retry(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    retry = sub.add_parser(
        "retry",
        parents=[common],
        help="put failed recipients back, to be sent by the next run",
        description="Put the campaign's FAILED recipients (or those of the --status given) back "
        "to PENDING, their error and attempts cleared, in one transaction; a finished campaign "
        "is sent again by the next `campaign run`. Nothing Sinch accepted and may still deliver "
        "is ever put back. IN_DOUBT recipients may have reached Sinch: only with "
        "--status IN_DOUBT, and they may receive the message twice.",
    )
    retry.add_argument("name", metavar="NAME")
    retry.add_argument(
        "--status",
        action="append",
        choices=commands.RETRY_STATUSES,
        dest="statuses",
        help="the status to put back (repeatable; default: FAILED)",
    )
    retry.add_argument(
        "--code",
        action="append",
        dest="codes",
        metavar="CODE",
        help="only recipients with this error code (repeatable; see `campaign status NAME`)",
    )
    retry.set_defaults(handler=commands.retry_recipients, needs_config=True, needs_sinch=False)


def _pause(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    pause = sub.add_parser(
        "pause",
        parents=[common],
        help="hold a campaign: its runs stop claiming and drain",
        description="Pause the campaign: every `campaign run` of it stops claiming within a "
        "heartbeat (about a second), lets its requests under way finish and be recorded, and "
        "exits 0; a new run sends nothing until `campaign resume`.",
    )
    pause.add_argument("name", metavar="NAME")
    pause.set_defaults(handler=commands.pause_campaign, needs_config=True, needs_sinch=False)
    resume = sub.add_parser(
        "resume",
        parents=[common],
        help="lift a pause (then run the campaign again)",
        description="Lift `campaign pause`: the next `campaign run` carries on where the "
        "paused runs stopped.",
    )
    resume.add_argument("name", metavar="NAME")
    resume.set_defaults(handler=commands.resume_campaign, needs_config=True, needs_sinch=False)


def _status(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    status = sub.add_parser("status", parents=[common], help="show campaigns and their counts")
    status.add_argument("name", nargs="?", metavar="NAME")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(handler=commands.show_status, needs_config=True, needs_sinch=False)


def _db(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    db = sub.add_parser("db", parents=[common], help="database administration")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    upgrade = db_sub.add_parser(
        "upgrade", parents=[common], help="migrate the database schema to the latest version"
    )
    upgrade.set_defaults(handler=commands.upgrade_database, needs_config=True, needs_sinch=False)


def _receiver(sub: Subparsers, common: argparse.ArgumentParser) -> None:
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
    receiver.set_defaults(handler=commands.serve_receiver, needs_config=True, needs_sinch=False)


def _demo(sub: Subparsers, common: argparse.ArgumentParser) -> None:
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
    demo.set_defaults(handler=commands.run_demo, needs_config=False)


def _sandbox(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    sandbox = sub.add_parser(
        "sandbox",
        parents=[common],
        help="run the local Sinch emulator",
        description="Run the local Sinch sandbox: OAuth, messages:send, the Batch API, rate "
        "limits, faults and signed delivery callbacks, over real HTTP.",
    )
    sandbox_mod.add_arguments(sandbox)
    sandbox.set_defaults(handler=commands.serve_sandbox, needs_config=False)


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
