"""`campaign report NAME --output PATH`: the delivery report of one campaign, one row per input
row, written as CSV or Parquet by the file's suffix."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from campaign import errors, reporting
from campaign.config import Config
from campaign.resources import open_resources


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``campaign report``."""
    report = sub.add_parser(
        "report", parents=[common], help="export the delivery report (CSV or Parquet)"
    )
    report.add_argument("name", metavar="NAME")
    report.add_argument(
        "--output", "-o", type=Path, required=True, help="PATH ending in .csv or .parquet"
    )
    report.set_defaults(handler=export_report, needs_config=True, needs_sinch=False)


async def export_report(args: argparse.Namespace, config: Config | None) -> int:
    assert config is not None
    async with open_resources(config, sinch=False) as resources:
        store = resources.need_store()
        campaign = await store.campaigns.find(args.name)
        if campaign is None:
            raise errors.CampaignError(f"no campaign named {args.name!r}")
        rows = await reporting.export(store.export.pages(campaign.id), args.output)
    print(f"wrote {rows:,} rows to {args.output}")
    return errors.EXIT_OK
