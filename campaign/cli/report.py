"""`campaign report NAME --output PATH`: the delivery report of one campaign, one row per input
row, written as CSV or Parquet by the file's suffix; `--status S [S...]` keeps the rows in those
statuses, `--with-input` adds each input row's own columns."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from campaign import errors, report_html, report_input, reporting
from campaign.config import Config
from campaign.models import Status
from campaign.resources import open_resources


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``campaign report``."""
    report = sub.add_parser(
        "report", parents=[common], help="export the delivery report (CSV or Parquet)"
    )
    report.add_argument("name", metavar="NAME")
    report.add_argument(
        "--output",
        "-o",
        type=Path,
        required=True,
        help="PATH ending in .csv, .parquet or .html (a page of charts, self-contained)",
    )
    report.add_argument(
        "--status",
        nargs="+",
        metavar="STATUS",
        choices=[status.value for status in Status],
        help="only the rows in these statuses (e.g. FAILED IN_DOUBT)",
    )
    report.add_argument(
        "--with-input",
        action="store_true",
        help="add the recipients file's columns after the report's (the file is read again;"
        " it must be the one the campaign loaded), so that the report can be the recipients"
        " file of a new campaign",
    )
    report.set_defaults(handler=export_report, needs_config=True, needs_sinch=False)


async def export_report(args: argparse.Namespace, config: Config | None) -> int:
    assert config is not None
    async with open_resources(config, sinch=False) as resources:
        store = resources.need_store()
        campaign = await store.campaigns.find(args.name)
        if campaign is None:
            raise errors.CampaignError(f"no campaign named {args.name!r}")
        if args.output.suffix.lower() == ".html":
            if args.status or args.with_input:
                raise errors.CampaignError("--status and --with-input are for CSV and Parquet")
            data = report_html.ReportData(
                name=campaign.name,
                state=campaign.state,
                mode=campaign.mode,
                counts=await store.recipients.counts(campaign.id),
                failures=await store.recipients.error_summary(campaign.id),
                channels=await store.recipients.delivered_by_channel(campaign.id),
                over_time=await store.export.deliveries_over_time(campaign.id),
                generated=datetime.now(UTC),
            )
            await asyncio.to_thread(_write_html, args.output, data)
            print(f"wrote the report of {sum(data.counts.values()):,} rows to {args.output}")
            return errors.EXIT_OK
        inputs = None
        if args.with_input:
            inputs = reporting.input_columns(
                await asyncio.to_thread(report_input.read_input, campaign)
            )
        only = reporting.ReportFilter(frozenset(args.status or ()), inputs)
        rows = await reporting.export(store.export.pages(campaign.id), args.output, only)
    print(f"wrote {rows:,} rows to {args.output}")
    return errors.EXIT_OK


def _write_html(path: Path, data: report_html.ReportData) -> None:
    if not path.parent.exists():
        raise reporting.ReportError(f"{path.parent}: directory does not exist")
    try:
        report_html.write(path, data)
    except OSError as exc:
        raise reporting.ReportError(f"{path}: cannot write the report: {exc.strerror}") from None
