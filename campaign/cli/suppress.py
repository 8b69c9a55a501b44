"""`campaign suppress add|remove|import|export|list`: the suppression list (opt-outs).

Identities are normalised like recipients: a phone number in any usual form becomes E.164 (with
``--default-country`` for national numbers); anything else (an email, a PSID, a contact ID) is
kept as written, trimmed. Adding an identity already on the list, or removing one that is not,
changes nothing and says so. Every change is recorded with who made it (``--by``, else the
user's login).
"""

from __future__ import annotations

import argparse
import getpass
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from campaign import errors, optout
from campaign.config import Config
from campaign.resources import open_resources


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``campaign suppress`` and its actions."""
    suppress = sub.add_parser(
        "suppress",
        parents=[common],
        help="the suppression list: identities that opted out are never sent",
        description="Manage the suppression list. A recipient whose identity is on it is "
        "loaded SUPPRESSED (OPTED_OUT) and never sent, whatever the channel.",
    )
    actions = suppress.add_subparsers(dest="suppress_command", required=True, metavar="ACTION")

    def action(name: str, help_: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = actions.add_parser(name, parents=[common], help=help_)
        parser.set_defaults(needs_config=True, needs_sinch=False)
        return parser

    def who(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--by", help="who makes the change (default: your login)")
        parser.add_argument(
            "--default-country",
            metavar="CC",
            help="country of phone numbers written without a country code (e.g. DE)",
        )

    add = action("add", "put identities on the list (idempotent)")
    add.add_argument("identities", nargs="+", metavar="IDENTITY")
    who(add)
    add.set_defaults(handler=add_identities)
    remove = action("remove", "take identities off the list (idempotent)")
    remove.add_argument("identities", nargs="+", metavar="IDENTITY")
    who(remove)
    remove.set_defaults(handler=remove_identities)
    importing = action("import", "add every identity of a CSV or Parquet file")
    importing.add_argument("file", type=Path, metavar="FILE")
    importing.add_argument("--column", help="the identity column (default: the only one)")
    who(importing)
    importing.set_defaults(handler=import_identities)
    export = action("export", "write the list to a CSV or Parquet file (by its suffix)")
    export.add_argument("file", type=Path, metavar="FILE")
    export.set_defaults(handler=export_identities)
    listing = action("list", "print the list")
    listing.set_defaults(handler=list_identities)


def normalise(raw: str, default_country: str | None = None) -> str | None:
    """The identity as recipients hold it: E.164 for a phone number, else trimmed text."""
    return optout.normalise_identity(raw, default_country)


def _by(args: argparse.Namespace) -> str:
    if args.by:
        return str(args.by)
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER", "unknown")


def _normalised(values: Iterable[str], default_country: str | None) -> list[str]:
    return [n for n in (normalise(v, default_country) for v in values) if n is not None]


async def _add(config: Config, identities: list[str], source: str, by: str) -> int:
    async with open_resources(config, sinch=False) as resources:
        done = await resources.need_store().suppression.add(
            identities, now=datetime.now(UTC), source=source, by=by
        )
    print(f"suppression list: {done.changed:,} added, {done.unchanged:,} already on it")
    if done.stopped:
        print(f"suppression list: {done.stopped:,} pending recipients will not be sent")
    return errors.EXIT_OK


async def add_identities(args: argparse.Namespace, config: Config | None) -> int:
    assert config is not None
    identities = _normalised(args.identities, args.default_country)
    return await _add(config, identities, "CLI", _by(args))


async def remove_identities(args: argparse.Namespace, config: Config | None) -> int:
    assert config is not None
    identities = _normalised(args.identities, args.default_country)
    async with open_resources(config, sinch=False) as resources:
        done = await resources.need_store().suppression.remove(
            identities, now=datetime.now(UTC), by=_by(args)
        )
    print(f"suppression list: {done.changed:,} removed, {done.unchanged:,} were not on it")
    return errors.EXIT_OK


def read_identities(path: Path, column: str | None) -> list[str]:
    """The identity column of a CSV or Parquet file, as text."""
    try:
        if path.suffix.lower() == ".parquet":
            frame = pl.read_parquet(path)
        else:
            frame = pl.read_csv(path, infer_schema=False)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise errors.ConfigError(f"{path}: cannot read it: {exc}") from None
    if column is None:
        if frame.width != 1:
            raise errors.ConfigError(
                f"{path}: {frame.width} columns; name the identity one with --column"
            )
        column = frame.columns[0]
    if column not in frame.columns:
        raise errors.ConfigError(f"{path}: no column {column!r}")
    return [str(v) for v in frame[column].cast(pl.String).drop_nulls().to_list()]


async def import_identities(args: argparse.Namespace, config: Config | None) -> int:
    assert config is not None
    identities = _normalised(read_identities(args.file, args.column), args.default_country)
    return await _add(config, identities, "IMPORT", f"{_by(args)} (import {args.file.name})")


def _frame(entries: list[Any]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "identity": [e.identity for e in entries],
            "channel": [e.channel for e in entries],
            "source": [e.source for e in entries],
            "campaign_id": [e.campaign_id for e in entries],
            "created_at": [e.created_at.isoformat() for e in entries],
            "created_by": [e.created_by for e in entries],
        },
        schema={
            "identity": pl.String,
            "channel": pl.String,
            "source": pl.String,
            "campaign_id": pl.Int64,
            "created_at": pl.String,
            "created_by": pl.String,
        },
    )


async def export_identities(args: argparse.Namespace, config: Config | None) -> int:
    assert config is not None
    async with open_resources(config, sinch=False) as resources:
        entries = await resources.need_store().suppression.entries()
    frame = _frame(entries)
    if args.file.suffix.lower() == ".parquet":
        frame.write_parquet(args.file)
    else:
        frame.write_csv(args.file)
    print(f"suppression list: {len(entries):,} identities written to {args.file}")
    return errors.EXIT_OK


async def list_identities(args: argparse.Namespace, config: Config | None) -> int:
    assert config is not None
    async with open_resources(config, sinch=False) as resources:
        entries = await resources.need_store().suppression.entries()
    for e in entries:
        when = e.created_at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        print(f"{e.identity}\t{e.channel or '-'}\t{e.source}\t{when}\t{e.created_by or '-'}")
    print(f"{len(entries):,} identities on the suppression list")
    return errors.EXIT_OK
