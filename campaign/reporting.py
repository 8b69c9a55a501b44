"""Delivery reports and summaries: plain functions over plain rows. Writing files is the only
I/O here, and it takes already-fetched pages.

A report has one row per input row, in input order. Cells that a spreadsheet would run as a
formula (``=``, ``+``, ``-``, ``@``, tab, CR at the start) are prefixed with ``'`` unless they are
phone numbers (``+15551234567`` stays as it is, so identities keep their ``+`` and zeros).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from campaign.errors import EXIT_FAILED, EXIT_OK, CampaignError
from campaign.models import Status

# The columns of the report file, in order.
REPORT_FILE_COLUMNS = (
    "row",
    "identity",
    "channel",
    "status",
    "message_id",
    "batch_id",
    "error_code",
    "error_description",
    "sent_at",
    "updated_at",
    "attempts",
    "status_at",
    "delivery_channel",
)

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PHONE = re.compile(r"^\+?[0-9][0-9 ().-]*$")
# Every text column that holds outside data (the recipients file, Sinch's answers, callbacks).
_TEXT_COLUMNS = (
    "identity",
    "channel",
    "error_code",
    "error_description",
    "message_id",
    "batch_id",
    "delivery_channel",
)


class ReportError(CampaignError):
    """The report cannot be written."""


def defuse(value: str | None) -> str | None:
    """A cell that cannot run as a formula when a spreadsheet opens the CSV."""
    if value and value.startswith(_FORMULA_START) and not _PHONE.match(value):
        return "'" + value
    return value


# Report column names and types of the store's columns
# (campaign.store.records.REPORT_READ_COLUMNS).
_FROM_STORE: dict[str, tuple[str, Any]] = {
    "position": ("row", pl.UInt64),
    "identity": ("identity", pl.String),
    "identity_raw": ("identity_raw", pl.String),
    "channel": ("channel", pl.String),
    "status": ("status", pl.String),
    "message_id": ("message_id", pl.String),
    "batch_id": ("batch_id", pl.String),
    "error_code": ("error_code", pl.String),
    "error_description": ("error_description", pl.String),
    "sent_at": ("sent_at", pl.String),
    "updated_at": ("updated_at", pl.String),
    "attempts": ("attempts", pl.UInt32),
    "status_at": ("status_at", pl.String),
    "channel_used": ("delivery_channel", pl.String),
}
_EMPTY_PAGE = pl.DataFrame(schema={name: dtype for name, (_, dtype) in _FROM_STORE.items()})


def report_frame(page: pl.DataFrame) -> pl.DataFrame:
    """One page of store rows (:data:`campaign.store.records.REPORT_READ_COLUMNS`, timestamps
    already ISO-8601 UTC text) as a report frame: identity falls back to the raw cell for
    rejected and duplicate rows; text that a spreadsheet would run as a formula is defused."""
    frame = page.select(
        pl.col(name).cast(dtype).alias(report) for name, (report, dtype) in _FROM_STORE.items()
    )
    frame = frame.with_columns(identity=pl.coalesce("identity", "identity_raw"))
    return frame.select(REPORT_FILE_COLUMNS).with_columns(
        defuse_expr(name) for name in _TEXT_COLUMNS
    )


def defuse_expr(name: str) -> pl.Expr:
    """:func:`defuse`, vectorised over a column."""
    column = pl.col(name)
    risky = column.str.contains(r"^[=+\-@\t\r]") & ~column.str.contains(_PHONE.pattern)
    return pl.when(risky).then(pl.lit("'") + column).otherwise(column).alias(name)


@dataclass(frozen=True)
class ReportFilter:
    """Which rows, and which columns: ``statuses`` keeps only rows in those statuses (all when
    empty); ``inputs`` (``row`` and the recipients file's columns, as text) adds the input
    row's own columns after the report's."""

    statuses: frozenset[str] = frozenset()
    inputs: pl.DataFrame | None = None


def input_columns(inputs: pl.DataFrame) -> pl.DataFrame:
    """The input frame with its columns named as the report shows them: a name the report
    already has gets ``input_`` before it."""
    return inputs.rename(
        {name: f"input_{name}" for name in inputs.columns if name in REPORT_FILE_COLUMNS[1:]}
    )


def filtered_frame(page: pl.DataFrame, only: ReportFilter) -> pl.DataFrame:
    """:func:`report_frame` of ``page``, rows and columns as ``only`` says."""
    frame = report_frame(page)
    if only.statuses:
        frame = frame.filter(pl.col("status").is_in(sorted(only.statuses)))
    if only.inputs is not None:
        extra = [name for name in only.inputs.columns if name != "row"]
        frame = frame.join(only.inputs, on="row", how="left", maintain_order="left")
        frame = frame.with_columns(defuse_expr(name) for name in extra)
    return frame


async def export(
    pages: AsyncIterator[pl.DataFrame], path: Path, only: ReportFilter | None = None
) -> int:
    """Write store pages to ``path`` (``.csv`` or ``.parquet``); returns the row count.

    CSV is written page by page; Parquet is assembled from the pages and written once.
    ``only`` narrows the rows and adds the input's columns (:class:`ReportFilter`).
    """
    only = only or ReportFilter()
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ReportError(f"{path}: the report must end in .csv or .parquet")
    if not path.parent.exists():
        raise ReportError(f"{path.parent}: directory does not exist")
    total = 0
    try:
        if suffix == ".parquet":
            frames = [filtered_frame(page, only) async for page in pages]
            frame = pl.concat(frames) if frames else filtered_frame(_EMPTY_PAGE, only)
            frame.write_parquet(path)
            return frame.height
        with path.open("wb") as out:
            first = True
            async for page in pages:
                frame = filtered_frame(page, only)
                frame.write_csv(out, include_header=first)
                first = False
                total += frame.height
            if first:
                filtered_frame(_EMPTY_PAGE, only).write_csv(out)
    except OSError as exc:
        raise ReportError(f"{path}: cannot write the report: {exc.strerror}") from None
    return total


# --- summaries ---------------------------------------------------------------------------------

FINAL_BAD = (Status.FAILED, Status.REJECTED, Status.IN_DOUBT)


def exit_code_for(counts: Mapping[Status, int]) -> int:
    """0 when every recipient made it (or was a duplicate), 1 when some ended badly."""
    return EXIT_FAILED if any(counts.get(s, 0) for s in FINAL_BAD) else EXIT_OK


def summary_lines(
    name: str, counts: Mapping[Status, int], errors: Sequence[tuple[str, str, int]]
) -> list[tuple[str, str]]:
    """``(label, value)`` pairs for a summary table: totals, per-status counts, top errors."""
    total = sum(counts.values())
    lines = [("campaign", name), ("rows", f"{total:,}")]
    for status in Status:
        if counts.get(status):
            share = counts[status] / total * 100 if total else 0.0
            lines.append((status.value, f"{counts[status]:,} ({share:.1f}%)"))
    for status_name, code, count in errors[:10]:
        if code != status_name:  # "DUPLICATE DUPLICATE" says nothing the count above did not
            lines.append((f"  {status_name}: {code}", f"{count:,}"))
    return lines
