"""Bulk ingest: one slice of loaded rows into ``recipients`` with set-based SQL.

A slice (up to a few hundred thousand rows) is handed to the database whole: as JSON documents
read by ``json_each`` on SQLite, and by ``COPY`` into a temporary table on Postgres, then stored
by ``INSERT … SELECT … ON CONFLICT DO NOTHING``: a row whose position is already stored (a
resumed or concurrent load of the same file) is left as it is.

On SQLite, what costs is taking the values out of the JSON: every ``json_extract`` parses its
row again. Valid rows therefore come as one JSON object (:func:`json_members`) whose members
hold a row each with nothing to extract in the common case: the name is ``"<position>
<identity>"`` and the value the parameters (docs/benchmarks.md: the 1M-row insert took about
a sixth less than with an array per row).

Duplicates arrive decided (:mod:`campaign.loading.duplicates`: the first row of an identity
over the whole file is the recipient), as ``duplicate_of``: each is stored DUPLICATE, naming the
row that holds its identity. No index on the identity is kept: inserting every row into one, in
the file's (random) order, cost more than the rest of the load.

In batch mode (:class:`Chunking`), valid rows are put in chunks as they are stored: each row
follows its chunk (:mod:`campaign.store.chunks`), and each chunk gets its ``batches`` row, so
sending never rewrites a recipient's row.

The slice comes staged (:mod:`campaign.store.staging`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl
from sqlalchemy import func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from campaign.models import Status
from campaign.store import chunks
from campaign.store.records import IngestCounts
from campaign.store.staging import STAGED, Chunking, Staged
from campaign.store.tables import batches, recipients

C = recipients.c
B = batches.c


def _sqlite_timestamp(now: datetime) -> str:
    """``now`` as SQLAlchemy's SQLite DATETIME stores it (naive UTC, microseconds)."""
    return now.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")


async def ingest(
    conn: AsyncConnection,
    campaign_id: int,
    channel: str,
    staged: Staged,
    now: datetime,
    chunking: Chunking | None = None,
) -> IngestCounts:
    """Store ``staged`` (:func:`stage` with ``chunking.size``) for the campaign, inside the
    caller's transaction."""
    if (chunking.size if chunking else None) != staged.chunk_size:
        raise ValueError("the slice was staged for another chunk size")
    first_chunk = 1
    if chunking is not None:
        first_chunk = await chunks.next_number(conn, campaign_id)
    params: dict[str, Any] = {"cid": campaign_id, "channel": channel, "first": first_chunk}
    if conn.dialect.name == "postgresql":
        sources = await _copy_to_temp(conn, staged.frame)
        params["now"] = now
    else:  # SQLite: the timestamp as its DATETIME stores it, and the rows as JSON
        sources = _json_sources(staged, chunking)
        params["now"] = _sqlite_timestamp(now)
    inserted = []  # per source: the valid rows first
    for source in sources:
        result = await conn.execute(text(_insert_sql(source.select)), source.bind(params))
        inserted.append(result.rowcount)
    frame = staged.frame
    if sum(inserted) == frame.height:
        rejected = frame.height - staged.valid - staged.duplicates
        counts = IngestCounts(
            pending=staged.valid,
            rejected=rejected,
            duplicate=staged.duplicates,
            stored=staged.valid,
            # Every chunk formed as staged: its number is the slice's plus this one.
            first_chunk=first_chunk if chunking is not None else None,
        )
        sizes = [
            (first_chunk + number, n)
            for number, n in frame.get_column("chunk").drop_nulls().value_counts().rows()
        ]
    else:  # a resumed (or concurrent) load of the same file: some positions were stored
        counts = await _counts(conn, campaign_id, frame)
        counts = dataclasses.replace(counts, stored=inserted[0])
        sizes = await _stored_sizes(conn, campaign_id, first_chunk) if chunking else []
    if chunking is not None and sizes:
        await _add_chunks(conn, campaign_id, chunking, sorted(sizes), now)
    return counts


async def _stored_sizes(
    conn: AsyncConnection, campaign_id: int, first_chunk: int
) -> list[tuple[int, int]]:
    """(chunk, rows) of the chunks this slice formed, as stored: duplicates (and rows a resumed
    load had stored already, in earlier chunks) are not in them."""
    rows = await conn.execute(
        select(C.chunk, func.count())
        .where(C.campaign_id == campaign_id, C.chunk >= first_chunk, C.status == chunks.FOLLOWS)
        .group_by(C.chunk)
    )
    return [(int(chunk), int(n)) for chunk, n in rows.all()]


async def _add_chunks(
    conn: AsyncConnection,
    campaign_id: int,
    chunking: Chunking,
    sizes: list[tuple[int, int]],
    now: datetime,
) -> None:
    """A ``batches`` row, PENDING, for each chunk formed: (number, rows). A chunk that another
    run's load formed meanwhile is left as it is."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    await conn.execute(
        dialect.insert(batches).on_conflict_do_nothing(index_elements=["campaign_id", "chunk"]),
        [
            {
                "campaign_id": campaign_id,
                "chunk": number,
                "tag": f"{chunking.key}:{number}",
                "status": chunks.UNSENT,
                "size": size,
                "followers": size,
                "created_at": now,
                "updated_at": now,
            }
            for number, size in sizes
        ],
    )


async def _counts(conn: AsyncConnection, campaign_id: int, staged: pl.DataFrame) -> IngestCounts:
    """What the slice's positions hold now (after a resumed load had stored some)."""
    first, last = staged.get_column("position").min(), staged.get_column("position").max()
    rows = await conn.execute(
        select(C.status, func.count())
        .where(C.campaign_id == campaign_id, C.position.between(first, last))
        .group_by(C.status)
    )
    found = {status: int(n) for status, n in rows.all()}
    return IngestCounts(
        pending=staged.height
        - found.get(Status.REJECTED.value, 0)
        - found.get(Status.DUPLICATE.value, 0)
        - found.get(Status.SUPPRESSED.value, 0),
        rejected=found.get(Status.REJECTED.value, 0),
        duplicate=found.get(Status.DUPLICATE.value, 0),
    )


@dataclass(frozen=True)
class _Source:
    select: str  # a SELECT of the staged columns, aliased ``src``; chunks from 0
    payload: str | None = None  # SQLite: the JSON bound as ``:rows``

    def bind(self, params: dict[str, Any]) -> dict[str, Any]:
        return params if self.payload is None else {**params, "rows": self.payload}


def _json_sources(staged: Staged, chunking: Chunking | None) -> list[_Source]:
    """The valid rows (:func:`json_members`), and the others (rejected, duplicate: an array
    of :data:`STAGED` each)."""
    sources = [_Source(_valid_source(chunking), staged.valid_json)]
    if staged.height > staged.valid:
        every = {name: f"json_extract(value, '$[{i}]')" for i, name in enumerate(STAGED)}
        sources.append(_Source(_select_json(every), staged.unsendable_json))
    return sources


def _valid_source(chunking: Chunking | None) -> str:
    """The rows of :func:`json_members`. ``CAST`` reads the leading integer of the name (the
    position); a member valued by an array (``type`` is not ``'text'``) carries the rest."""

    def extra(index: int) -> str:
        return f"CASE type WHEN 'text' THEN NULL ELSE json_extract(value, '$[{index}]') END"

    status = Status.PENDING.value if chunking is None else chunks.FOLLOWS
    return _select_json(
        {
            "position": "CAST(key AS INTEGER)",
            "identity_raw": extra(1),
            "identity": "substr(key, instr(key, ' ') + 1)",
            "parameters": "CASE type WHEN 'text' THEN value ELSE json_extract(value, '$[0]') END",
            "status": f"'{status}'",
            "error_code": "NULL",
            "error_description": "NULL",
            "time_zone": extra(2),
            "channel": extra(3),
            "identities": extra(4),
            # json_each's rowid counts the members from 0: the row's index among the slice's
            # valid rows
            "chunk": "NULL" if chunking is None else f"rowid / {int(chunking.size)}",
        }
    )


def _select_json(columns: dict[str, str]) -> str:
    selected = ", ".join(f"{columns[name]} AS {name}" for name in STAGED)
    return f"SELECT {selected} FROM json_each(:rows)"


async def _copy_to_temp(conn: AsyncConnection, staged: pl.DataFrame) -> list[_Source]:
    """``COPY`` the slice into a temporary table that lives until the transaction ends; its
    valid rows, and the others."""
    await conn.execute(
        text(
            "CREATE TEMP TABLE IF NOT EXISTS campaign_ingest (position bigint, identity_raw text,"
            " identity text, parameters text, status text, error_code text,"
            " error_description text, time_zone text, chunk bigint, channel text, identities text)"
            " ON COMMIT DELETE ROWS"
        )
    )
    # Strings quoted, nulls bare: COPY's CSV format tells an empty string from NULL that way.
    data = staged.write_csv(include_header=False, null_value=r"\N", quote_style="non_numeric")
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    async with driver.cursor() as cursor:
        columns = ", ".join(STAGED)
        statement = f"COPY campaign_ingest ({columns}) FROM STDIN (FORMAT csv, NULL '\\N')"
        async with cursor.copy(statement) as copy:
            await copy.write(data.encode())
    every = f"SELECT {', '.join(STAGED)} FROM campaign_ingest"
    return [
        _Source(f"{every} WHERE error_code IS NULL"),
        _Source(f"{every} WHERE error_code IS NOT NULL"),
    ]


_INSERTED = (
    "campaign_id, channel, updated_at, attempts, position, identity_raw, identity, identities,"
    " parameters, status, error_code, error_description, time_zone"
)


def _insert_sql(source: str) -> str:
    return (
        f"INSERT INTO recipients ({_INSERTED}, chunk) "
        "SELECT :cid, coalesce(src.channel, :channel), :now, 0, src.position, src.identity_raw,"
        " src.identity, src.identities, src.parameters, src.status, src.error_code,"
        " src.error_description, src.time_zone,"
        f" src.chunk + :first FROM ({source}) AS src WHERE true ON CONFLICT DO NOTHING"
    )
