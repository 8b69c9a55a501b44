"""Recipients that follow their chunk: batch-mode state kept once per 1,000 recipients.

A batch-mode campaign's valid recipients are put in chunks when they are stored (one ``batches``
row each, status PENDING), and each is stored with the status ``CHUNKED``: its status is its
chunk's, read through :func:`status_of`:

=====================  ====================
chunk (``batches``)    recipient
=====================  ====================
PENDING                PENDING
SENDING                IN_FLIGHT
ACCEPTED, SCHEDULED    QUEUED (its ``batch_id``, ``sent_at`` are the chunk's)
=====================  ====================

So a chunk is claimed, sent and accepted by changing one row, not a thousand: each recipient's
row is written once, when it is stored. A recipient stops following its chunk (its row is
*materialised*: given the status, batch id, send time and attempt its chunk gives it) as soon as
something happens to it alone (a delivery callback) or the chunk leaves that happy path (a retry,
a split, a failure, a cancel): from then on it is an ordinary row, and every other query of the
store works on it as before. A chunk therefore holds ``CHUNKED`` rows only while its status is
one of the four above, and its ``followers`` column says how many, so that counting needs no
join of a million rows: only :func:`materialise` (and ingest, which sets it) changes it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import polars as pl
from sqlalchemy import Select, and_, bindparam, case, func, literal, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from campaign.models import Status
from campaign.store.tables import batches, campaigns, recipients


async def next_number(conn: AsyncConnection, campaign_id: int) -> int:
    """The campaign's next chunk number, inside the caller's write transaction. Serialised: the
    transaction holds SQLite's write lock (BEGIN IMMEDIATE); on Postgres it locks the campaign's
    row, so that concurrent loads and senders never pick the same number."""
    if conn.dialect.name == "postgresql":
        await conn.execute(
            select(campaigns.c.id).where(campaigns.c.id == campaign_id).with_for_update()
        )
    last = await conn.scalar(
        select(func.max(batches.c.chunk)).where(batches.c.campaign_id == campaign_id)
    )
    return int(last or 0) + 1


C = recipients.c
B = batches.c

FOLLOWS = "CHUNKED"  # recipients.status of a row that follows its chunk
UNSENT = "PENDING"  # batches.status of a chunk formed at ingest, not claimed yet
SENDING = "SENDING"
ACCEPTED = ("ACCEPTED", "SCHEDULED")
DISSOLVED = "DISSOLVED"  # a formed chunk broken up: its rows are ordinary PENDING rows

# How a recipient joins its chunk's row (only rows that follow one do).
JOIN = and_(B.campaign_id == C.campaign_id, B.chunk == C.chunk, C.status == FOLLOWS)


# What a chunk's status gives the recipients that follow it; any other: QUEUED (accepted or
# scheduled: the only other statuses a chunk with followers can have).
_GIVES = {UNSENT: Status.PENDING, SENDING: Status.IN_FLIGHT}


def recipient_status(chunk: str) -> Status:
    """:func:`chunk_status`, in Python."""
    return _GIVES.get(chunk, Status.QUEUED)


def chunk_status(chunk: Any) -> ColumnElement[Any]:
    """The status a chunk's status gives its following recipients."""
    return case(
        *((chunk == given, literal(status.value)) for given, status in _GIVES.items()),
        else_=literal(Status.QUEUED.value),
    )


def status_of() -> ColumnElement[Any]:
    """A recipient's status, over ``recipients`` outer-joined to ``batches`` on :data:`JOIN`."""
    return case((C.status == FOLLOWS, chunk_status(B.status)), else_=C.status)


def follower_view(own: pl.DataFrame, chunk_rows: pl.DataFrame) -> pl.DataFrame:
    """:func:`status_of` and :func:`attempts_of`, and the batch id and times a following
    recipient takes from its chunk, in Polars: ``own`` (recipients' own columns, with ``status``
    and ``chunk``) joined to ``chunk_rows`` (``batches``: chunk, status, batch_id, sent_at,
    updated_at). A follower whose chunk is not in ``chunk_rows`` (formed after they were read)
    is PENDING, as a chunk is when it is formed."""
    follows = pl.col("status") == FOLLOWS
    theirs = chunk_rows.select(
        pl.col("chunk").alias("_chunk"),
        *(pl.col(name).alias(f"_chunk_{name}") for name in chunk_rows.columns if name != "chunk"),
    )
    joined = own.with_columns(_chunk=pl.when(follows).then(pl.col("chunk"))).join(
        theirs, on="_chunk", how="left", maintain_order="left"
    )
    given = pl.col("_chunk_status").replace_strict(
        {chunk: status.value for chunk, status in _GIVES.items()},
        default=pl.lit(Status.QUEUED.value),
        return_dtype=pl.String,
    )
    sent = follows & pl.col("_chunk_status").is_not_null() & (pl.col("_chunk_status") != UNSENT)
    return joined.with_columns(
        status=pl.when(~follows)
        .then(pl.col("status"))
        .when(pl.col("_chunk_status").is_null())
        .then(pl.lit(_GIVES[UNSENT].value))
        .otherwise(given),
        attempts=pl.col("attempts") + sent.cast(pl.Int64),
        batch_id=pl.coalesce("batch_id", "_chunk_batch_id"),
        sent_at=pl.coalesce("sent_at", "_chunk_sent_at"),
        updated_at=pl.when(follows)
        .then(pl.coalesce("_chunk_updated_at", "updated_at"))
        .otherwise(pl.col("updated_at")),
    ).drop("_chunk", *theirs.columns[1:])


def attempts_of() -> ColumnElement[Any]:
    """A recipient's attempts: a following row counts its chunk's send."""
    sent = and_(C.status == FOLLOWS, B.status != UNSENT)
    return C.attempts + case((sent, 1), else_=0)


def _locked(conn: AsyncConnection, query: Select[Any]) -> Select[Any]:
    """``query`` (of ``batches`` rows, in a fixed order) locking the rows it reads, on Postgres.

    A chunk's row is the lock on its following recipients. Under Postgres's READ COMMITTED,
    a materialisation that read a chunk as SENDING while its acceptance was being recorded
    would write its rows IN_FLIGHT after the acceptance committed, for good; and acceptance
    reading its rows before a materialisation committed would miss them. Whoever locks the
    chunk first finishes; the other's next statements see what it wrote. (SQLite serialises
    every write transaction already.)"""
    return query.with_for_update() if conn.dialect.name == "postgresql" else query


async def lock_chunks(conn: AsyncConnection, pairs: Iterable[tuple[int, int]]) -> None:
    """Lock these chunks' rows ((campaign id, number) pairs) for the transaction, in order:
    before anything else that the transaction writes, so that every writer of a chunk and its
    rows takes their locks in the same order."""
    wanted = sorted(set(pairs))
    if not wanted or conn.dialect.name != "postgresql":
        return
    for start in range(0, len(wanted), 500):
        part = wanted[start : start + 500]
        query = select(B.id).where(tuple_(B.campaign_id, B.chunk).in_(part))
        await conn.execute(query.order_by(B.campaign_id, B.chunk).with_for_update())


async def materialise(
    conn: AsyncConnection, campaign_id: int, *chunk_where: Any, rows: Any = None
) -> int:
    """Make the following rows of the campaign's chunks matched by ``chunk_where`` (conditions
    on ``batches``; and of them, with ``rows``, those it matches) ordinary rows, with what their
    chunk gives them, and count them out of their chunks' ``followers``. Returns how many.

    The chunks are picked first (from ``batches``, small), so that the rows are found by
    their chunk's index, never by a scan of every row that follows a chunk."""
    picked = select(B.chunk).where(B.campaign_id == campaign_id, B.followers > 0, *chunk_where)
    numbers = list((await conn.execute(_locked(conn, picked.order_by(B.chunk)))).scalars())
    left: Counter[int] = Counter()
    for start in range(0, len(numbers), 500):
        part = numbers[start : start + 500]
        moved = await conn.execute(
            update(recipients)
            .where(
                JOIN,
                C.campaign_id == campaign_id,
                C.chunk.in_(part),
                B.campaign_id == campaign_id,
                *([] if rows is None else [rows]),
            )
            .values(
                status=chunk_status(B.status),
                attempts=attempts_of(),
                batch_id=B.batch_id,
                sent_at=B.sent_at,
                worker_id=B.worker_id,
                updated_at=B.updated_at,
            )
            .returning(C.chunk)
        )
        left.update(chunk for (chunk,) in moved.all())
    if left:
        await conn.execute(
            update(batches)
            .where(B.campaign_id == campaign_id, B.chunk == bindparam("number"))
            .values(followers=B.followers - bindparam("gone")),
            [{"number": number, "gone": gone} for number, gone in left.items()],
        )
    return left.total()


async def close_unsent(
    conn: AsyncConnection,
    campaign_id: int,
    status: str,
    now: datetime,
    larger_than: int | None = None,
) -> int:
    """Break up the campaign's chunks not sent yet (or those of more than ``larger_than``
    rows): their rows become ordinary PENDING rows, and the chunks take ``status``
    (CANCELLED, DISSOLVED). Returns how many rows."""
    unsent = and_(B.campaign_id == campaign_id, B.status == UNSENT)
    if larger_than is not None:
        unsent = and_(unsent, B.size > larger_than)
    moved = await materialise(conn, campaign_id, unsent)
    await conn.execute(update(batches).where(unsent).values(status=status, updated_at=now))
    return moved


async def record_accepted(
    conn: AsyncConnection,
    params: list[dict[str, Any]],
    now: datetime,
    worker_id: int | None = None,
) -> None:
    """Accepted chunks (:func:`campaign.store.records.chunk_params`): a statement per kind
    of row, not per recipient; only recipients still IN_FLIGHT change."""
    for follows in (False, True):
        part = [p for p in params if p["follows"] is follows]
        if not part:
            continue
        # A formed chunk's recipients follow it: its rows IN_FLIGHT, if any, are found by
        # status (``chunk + 0`` keeps the planner off the chunk's index, whose thousand
        # rows it would read for none: 0.13 s per 1,000 chunks, under the write lock).
        chunk = C.chunk + 0 if follows else C.chunk
        await conn.execute(
            update(recipients)
            .where(
                C.campaign_id == bindparam("cid"),
                chunk == bindparam("num"),
                C.status == Status.IN_FLIGHT.value,
                *([C.worker_id == worker_id] if worker_id is not None else []),
            )
            .values(
                status=Status.QUEUED.value,
                batch_id=bindparam("bid"),
                error_code=None,
                error_description=None,
                sent_at=now,
                updated_at=now,
            ),
            part,
        )
    await conn.execute(
        update(batches)
        .where(
            B.campaign_id == bindparam("cid"),
            B.chunk == bindparam("num"),
            B.status == SENDING,
            # A formed chunk's recipients follow its row: only its worker may accept it.
            *([or_(B.worker_id.is_(None), B.worker_id == worker_id)] if worker_id else []),
        )
        .values(
            status=bindparam("bstatus"),
            batch_id=bindparam("bid"),
            send_after=bindparam("after"),
            sent_at=now,
            updated_at=now,
        ),
        params,
    )
