"""The report read: every recipient of a campaign, in input order, as Polars frames.

The report is the one read of every row of a campaign. Through the async driver, a million rows
come back as fifteen million Python objects (3-4 s on the 2-core machine), and making a frame of
them costs 2 s more. Here connectorx reads them instead: Rust reads the columns straight into
Arrow, without the GIL, each page in two queries that run in parallel on their own connections
(about 1 s per million rows; ``docs/benchmarks.md``).

Only declared columns are selected (connectorx types a column by its declared type; an
expression has none). What a recipient that follows its chunk takes from it is joined in Polars
(:func:`campaign.store.chunks.follower_view`), with the campaign's chunks read before the page's
recipients: a recipient then shows its chunk's status as it was at that read or later, never a
status the chunk had not reached (a chunk formed since counts as not sent yet).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import polars as pl
from sqlalchemy import String, cast, func, select
from sqlalchemy.engine import URL

from campaign.errors import ReportReadError
from campaign.models import Status
from campaign.store import chunks
from campaign.store.edge import Group
from campaign.store.engine import sync_url
from campaign.store.records import REPORT_READ_COLUMNS
from campaign.store.tables import batches, recipients

# A recipient's own columns, as stored, and its chunk number.
_OWN = (*(name for name in REPORT_READ_COLUMNS if name != "status"), "status", "chunk")
_CHUNK = ("chunk", "status", "batch_id", "sent_at", "updated_at")
_TIMESTAMPS = ("sent_at", "updated_at", "status_at")
ISO_UTC = "%Y-%m-%dT%H:%M:%S%.6fZ"
C = recipients.c

__all__ = ["Export", "ReportReadError", "ReportSource", "page_bounds", "read_page", "report_source"]


@dataclass(frozen=True)
class ReportSource:
    """Where connectorx reads a campaign's report from; :func:`report_source` makes one."""

    uri: str  # connectorx's URI: it holds the password of a Postgres URL; never shown
    shown: str  # the URL with the password masked, for messages
    partitions: int = 2  # parallel queries per page: one per core


def report_source(url: URL) -> ReportSource:
    """``url`` (the store's SQLAlchemy URL) as connectorx reads it. A SQLite database must be
    an existing file: an in-memory one lives only in its own connection."""
    shown = url.render_as_string(hide_password=True)
    if url.get_backend_name() == "postgresql":
        uri = url.set(drivername="postgresql").render_as_string(hide_password=False)
        return ReportSource(uri, shown)
    database = url.database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        raise ReportReadError(f"database {shown}: a report needs a database file")
    path = Path(database).resolve()
    if not path.is_file():  # connectorx would create it
        raise ReportReadError(f"database {shown}: no such file")
    return ReportSource("sqlite://" + quote(str(path)), shown)


def page_bounds(first: int, last: int, size: int) -> Iterator[tuple[int, int]]:
    """``(after, up_to)`` position ranges of at most ``size`` positions covering first..last."""
    for after in range(first - 1, last, size):
        yield after, min(after + size, last)


def read_page(source: ReportSource, campaign_id: int, after: int, up_to: int) -> pl.DataFrame:
    """The recipients with ``after < position <= up_to``, in position order, as columns
    :data:`REPORT_READ_COLUMNS` (timestamps as ISO-8601 UTC text). Blocking: run it in a
    thread."""
    chunk_rows = _read(
        source,
        [
            f"SELECT {', '.join(_CHUNK)} FROM {batches.name} "  # numbers and names only
            f"WHERE campaign_id = {int(campaign_id)} AND followers > 0"
        ],
    )
    step = -(-(up_to - after) // source.partitions)
    own = _read(
        source,
        [
            f"SELECT {', '.join(_OWN)} FROM {recipients.name} "  # numbers and names only
            f"WHERE campaign_id = {int(campaign_id)} AND position > {low} "
            f"AND position <= {min(low + step, up_to)} ORDER BY position"
            for low in range(after, up_to, step)
        ],
    )
    if not own["position"].is_sorted():  # connectorx keeps the queries' order; make sure
        own = own.sort("position")
    # Formatted before the join: a chunk's times once, not once per recipient that follows it.
    frame = chunks.follower_view(_iso_text(own), _iso_text(chunk_rows))
    return frame.select(REPORT_READ_COLUMNS)


def _iso_text(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        pl.col(name).dt.strftime(ISO_UTC) for name in _TIMESTAMPS if name in frame.columns
    )


def read_sql(source: ReportSource, query: str) -> pl.DataFrame:
    """One query's rows, read by connectorx (blocking: run it in a thread)."""
    return _read(source, [query])


def _read(source: ReportSource, queries: list[str]) -> pl.DataFrame:
    import connectorx  # imported here: only reports need it, and it takes a while

    try:
        frame: pl.DataFrame = connectorx.read_sql(source.uri, queries, return_type="polars")
    except (RuntimeError, ValueError, OSError) as exc:
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
        reason = (first or type(exc).__name__).replace(source.uri, source.shown)
        raise ReportReadError(
            f"database {source.shown}: cannot read the report: {reason}"
        ) from None
    return frame


class Export(Group):
    """``store.export``: a campaign's recipients read whole, for its report."""

    async def pages(
        self, campaign_id: int, page_size: int = 200_000
    ) -> AsyncIterator[pl.DataFrame]:
        """Every recipient in input order, as frames of :data:`REPORT_READ_COLUMNS`, page by page
        (at most ``page_size`` positions each).

        Timestamps come as ISO-8601 UTC text (``2026-11-21T12:00:00.000000Z``). The rows are
        read by connectorx in a worker thread (:func:`read_page`), the next page
        while the caller works on this one.
        """
        async with self.engine.connect() as conn:
            first, last = (
                await conn.execute(
                    select(func.min(C.position), func.max(C.position)).where(
                        C.campaign_id == campaign_id
                    )
                )
            ).one()
        if first is None:
            return
        source = report_source(sync_url(self._db.url))
        pages = list(page_bounds(int(first), int(last), page_size))

        def read(bounds: tuple[int, int]) -> asyncio.Future[pl.DataFrame]:
            return asyncio.ensure_future(asyncio.to_thread(read_page, source, campaign_id, *bounds))

        ahead = read(pages[0])
        try:
            for following in pages[1:]:
                page = await ahead
                ahead = read(following)
                yield page
            yield await ahead
        finally:
            ahead.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ahead

    async def deliveries_over_time(self, campaign_id: int) -> list[tuple[str, int]]:
        """``(minute, count)`` of recipients delivered (or read), by the minute of their last
        status (``2026-11-21T12:00``, UTC), oldest first: counted in SQL, one row a minute."""
        if self.dialect == "postgresql":
            minute = func.to_char(func.timezone("UTC", C.status_at), 'YYYY-MM-DD"T"HH24:MI')
        else:  # SQLite keeps UTC as naive ISO text
            minute = func.strftime("%Y-%m-%dT%H:%M", C.status_at)
        bucket = cast(minute, String).label("minute")
        query = (
            select(bucket, func.count())
            .where(
                C.campaign_id == campaign_id,
                C.status.in_((Status.DELIVERED.value, Status.READ.value)),
                C.status_at.is_not(None),
            )
            .group_by(bucket)
            .order_by(bucket)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [(str(at), int(count)) for at, count in rows]
