"""The suppression list: identities that opted out, matched on the identity's value whatever
the channel. Adding and removing are idempotent, and every change is recorded in
``suppression_changes`` with who or what made it.

Two set-based statements keep it out of the way of a campaign:

- :meth:`Suppression.identities`, read once by a load, which marks the rows on the list
  SUPPRESSED (``OPTED_OUT``) as it stages them (:func:`campaign.store.staging.staged_frame`):
  they are stored so, in both modes, and join no chunk;
- :meth:`Suppression.add` (an opt-out while campaigns run): the same ``UPDATE`` for the new
  identities, over every campaign. Only PENDING rows move: status never goes backwards, and
  what Sinch already accepted is reported as it is.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import orjson
import polars as pl
from sqlalchemy import case, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Executable

from campaign.models import Status
from campaign.optout import OptOut
from campaign.store import chunks, export
from campaign.store.edge import Group
from campaign.store.engine import sync_url
from campaign.store.records import Claim
from campaign.store.tables import batches, campaigns, recipients, suppression_changes, suppressions

S = suppressions.c
R = recipients.c
B = batches.c
OPTED_OUT = "OPTED_OUT"  # the error code of a SUPPRESSED recipient
OPTED_OUT_NOTE = "on the suppression list (opted out)"
_CHUNK = 5_000  # identities per statement (bind-parameter limits)
_FEW = 50  # opt-outs during a chunk's flight matched on its rows' other identities too
# The campaigns whose PENDING rows an opt-out stops: those not finished. The UPDATE walks their
# (campaign_id, status) index, never the whole recipients table (no index on the identity: it
# would cost every load more than the rest of it).
_RUNNING = R.campaign_id.in_(
    select(campaigns.c.id).where(campaigns.c.state.in_(("LOADING", "READY")))
)


@dataclass(frozen=True)
class Listed:
    """The suppression list, ready to be looked up slice after slice: its identities sorted by
    their hash, so that a slice's lookup is a binary search (a Polars ``is_in`` would build a
    set of the whole list for every slice: a second and a half per million rows)."""

    hashes: pl.Series  # UInt64, sorted
    identities: pl.Series  # in the same order
    exact: bool  # no two identities share a hash (else every lookup is an is_in)

    @classmethod
    def of(cls, identities: pl.Series) -> Listed:
        frame = pl.DataFrame({"h": identities.hash(seed=0), "i": identities}).sort("h")
        hashes = frame.get_column("h")
        return cls(hashes, frame.get_column("i"), not hashes.is_duplicated().any())

    def __len__(self) -> int:
        return self.identities.len()

    def holds(self, values: pl.Series) -> pl.Series:
        """For each of ``values``, whether it is on the list (null: no)."""
        if not len(self) or values.is_empty():
            return pl.Series([False] * values.len(), dtype=pl.Boolean)
        if not self.exact:
            return values.is_in(self.identities.implode()).fill_null(False)
        at = self.hashes.search_sorted(values.hash(seed=0), side="left")
        at = at.clip(upper_bound=len(self) - 1)
        return (self.identities.gather(at) == values).fill_null(False)


@dataclass(frozen=True)
class Entry:
    """One identity on the list."""

    identity: str
    channel: str | None
    source: str
    campaign_id: int | None
    created_at: datetime
    created_by: str | None


@dataclass(frozen=True)
class Changed:
    """What an add or remove did: identities changed, identities already so, recipients
    stopped (an add: PENDING recipients of any campaign moved to SUPPRESSED)."""

    changed: int
    unchanged: int
    stopped: int = 0


class Suppression(Group):
    async def add(
        self,
        identities: Iterable[str],
        *,
        now: datetime,
        source: str,
        by: str | None,
        channel: str | None = None,
        campaign_id: int | None = None,
    ) -> Changed:
        """Put ``identities`` on the list (those already there stay as they were) and stop
        every PENDING recipient of theirs, in every campaign."""
        wanted = list(dict.fromkeys(i for i in identities if i))
        changed = stopped = 0
        for start in range(0, len(wanted), _CHUNK):
            part = wanted[start : start + _CHUNK]
            async with self.writes.begin() as conn:
                new = await self._insert(conn, part, now, source, by, channel, campaign_id)
                if new:
                    await conn.execute(
                        suppression_changes.insert(),
                        [
                            {
                                "identity": i,
                                "action": "ADD",
                                "channel": channel,
                                "source": source,
                                "campaign_id": campaign_id,
                                "changed_at": now,
                                "changed_by": by,
                            }
                            for i in new
                        ],
                    )
                stopped += await _stop(conn, R.identity.in_(part), now, _RUNNING)
            changed += len(new)
        return Changed(changed, len(wanted) - changed, stopped)

    async def _insert(
        self,
        conn: AsyncConnection,
        part: Sequence[str],
        now: datetime,
        source: str,
        by: str | None,
        channel: str | None,
        campaign_id: int | None,
    ) -> list[str]:
        rows: list[dict[str, object]] = [
            {
                "identity": i,
                "channel": channel,
                "source": source,
                "campaign_id": campaign_id,
                "created_at": now,
                "created_by": by,
            }
            for i in part
        ]
        return await _insert_new(conn, self.dialect, rows)

    async def remove(self, identities: Iterable[str], *, now: datetime, by: str | None) -> Changed:
        """Take ``identities`` off the list. Recipients already SUPPRESSED stay so: a later
        campaign sends to them."""
        wanted = list(dict.fromkeys(i for i in identities if i))
        changed = 0
        for start in range(0, len(wanted), _CHUNK):
            part = wanted[start : start + _CHUNK]
            async with self.writes.begin() as conn:
                result = await conn.execute(
                    delete(suppressions).where(S.identity.in_(part)).returning(S.identity)
                )
                gone = list(result.scalars().all())
                if gone:
                    await conn.execute(
                        suppression_changes.insert(),
                        [
                            {
                                "identity": i,
                                "action": "REMOVE",
                                "source": "CLI",
                                "changed_at": now,
                                "changed_by": by,
                            }
                            for i in gone
                        ],
                    )
            changed += len(gone)
        return Changed(changed, len(wanted) - changed)

    async def entries(self) -> list[Entry]:
        """The whole list, by identity."""
        async with self.engine.connect() as conn:
            result = await conn.execute(
                select(
                    S.identity, S.channel, S.source, S.campaign_id, S.created_at, S.created_by
                ).order_by(S.identity)
            )
            return [Entry(*row) for row in result]

    async def count(self) -> int:
        async with self.engine.connect() as conn:
            return int(
                (await conn.execute(select(func.count()).select_from(suppressions))).scalar_one()
            )

    async def identities(self) -> Listed:
        """Every identity on the list, for a load to mark its rows as it stages them (see
        :func:`campaign.store.staging.staged_frame`): read once per load."""
        async with self.engine.connect() as conn:
            if (await conn.execute(select(S.id).limit(1))).first() is None:
                return Listed.of(pl.Series("identity", [], dtype=pl.String))
        found = await _read_beside(sync_url(self._db.url))
        if found is None:  # an in-memory database lives in its own connection only
            async with self.engine.connect() as conn:
                listed = list((await conn.execute(select(S.identity))).scalars().all())
            found = pl.Series("identity", listed, dtype=pl.String)
        return Listed.of(found)

    async def contains(self, identity: str) -> bool:
        async with self.engine.connect() as conn:
            found = await conn.execute(select(S.id).where(S.identity == identity))
            return found.first() is not None


async def read_listed(url: str) -> Listed | None:
    """The list of the database at ``url``, read without opening a store (which would migrate
    a SQLite file, or create it): for the dry run, which writes nothing. None when there is no
    database, or no list in it yet."""
    try:
        found = await _read_beside(sync_url(url))
    except (export.ReportReadError, sqlite3.Error):  # no database yet, or not migrated
        return None
    return None if found is None else Listed.of(found)


async def _read_beside(url: URL) -> pl.Series | None:
    """Every identity on the list of the database at ``url``, read beside SQLAlchemy: by
    connectorx on Postgres (a fifth of the time), by a read-only sqlite3 connection from a
    SQLite file (a file that is not there is not made). None for a database that only its own
    connection can see (in memory)."""
    query = f"SELECT identity FROM {suppressions.name}"
    if url.get_backend_name() == "postgresql":
        frame = await asyncio.to_thread(export.read_sql, export.report_source(url), query)
        return frame.get_column("identity").cast(pl.String)
    database = url.database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    found = await asyncio.to_thread(_read_sqlite, database, query)
    return pl.Series("identity", found, dtype=pl.String)


def _read_sqlite(database: str, query: str) -> list[str]:
    """``query``'s first column, from a connection of its own, read-only (blocking: run it in a
    thread). Without SQLAlchemy's rows: a million identities in a third of a second, not 0.6."""
    uri = Path(database).resolve().as_uri() + "?mode=ro"
    connection = sqlite3.connect(uri, uri=True)
    try:
        connection.row_factory = lambda _cursor, row: row[0]
        return list(connection.execute(query).fetchall())
    finally:
        connection.close()


async def _insert_new(
    conn: AsyncConnection, dialect_name: str, rows: list[dict[str, object]]
) -> list[str]:
    """Insert ``rows`` into the list, those already on it left as they are; the new
    identities."""
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    statement = (
        dialect.insert(suppressions)
        .on_conflict_do_nothing(index_elements=["identity"])
        .returning(S.identity)
    )
    result = await conn.execute(statement, rows)
    return list(result.scalars().all())


async def apply_opt_outs(
    conn: AsyncConnection, dialect_name: str, opt_outs: Sequence[OptOut], now: datetime
) -> int:
    """Inside the receiver's transaction that stores their callbacks: put each opt-out's
    identity on the list (with the campaign it answered, when the reply names one of our
    messages), record the change, and stop the identity's PENDING recipients in every running
    campaign. How many recipients were stopped."""
    if not opt_outs:
        return 0
    replied = [o.reply_to for o in opt_outs if o.reply_to]
    answered: dict[str, int] = {}
    if replied:
        found = await conn.execute(
            select(R.message_id, R.campaign_id).where(R.message_id.in_(replied))
        )
        answered = {str(m): int(c) for m, c in found}
    rows: list[dict[str, object]] = []
    for o in {o.identity: o for o in opt_outs}.values():
        rows.append(
            {
                "identity": o.identity,
                "channel": o.channel,
                "source": o.source,
                "campaign_id": answered.get(o.reply_to or ""),
                "created_at": now,
                "created_by": o.by,
            }
        )
    new = set(await _insert_new(conn, dialect_name, rows))
    changes = [
        {
            "identity": r["identity"],
            "action": "ADD",
            "channel": r["channel"],
            "source": r["source"],
            "campaign_id": r["campaign_id"],
            "changed_at": now,
            "changed_by": r["created_by"],
        }
        for r in rows
        if r["identity"] in new
    ]
    if changes:
        await conn.execute(suppression_changes.insert(), changes)
    identities = [str(r["identity"]) for r in rows]
    return await _stop(conn, R.identity.in_(identities), now, _RUNNING)


async def claim_unlisted(conn: AsyncConnection, claim: Executable, now: datetime) -> list[Claim]:
    """Run ``claim`` (a claim statement) and keep the claimed rows not on the list, by id
    (:func:`stop_claimed`); again while every row it claimed was on the list (each time fewer
    are due). []: no row is due."""
    while True:
        claims = [Claim(*row) for row in (await conn.execute(claim)).all()]
        stopped = await stop_claimed(conn, claims, now)
        kept = [c for c in claims if c.id not in stopped]
        if kept or not claims:
            return sorted(kept, key=lambda c: c.id)


async def stop_claimed(conn: AsyncConnection, claims: Sequence[Claim], now: datetime) -> set[int]:
    """In a claim's transaction: the claimed rows whose identity, or any of their identities,
    is on the list become SUPPRESSED and are not sent; their ids. An opt-out stops the PENDING
    rows of its identity when it comes, but not a row in flight then whose send is retried
    later, nor a row that has it as another identity than its first: each is stopped here,
    before it leaves. One indexed lookup of the claimed identities."""
    own = {claim.id: _identities_of(claim) for claim in claims}
    wanted = sorted(set().union(*own.values()))
    on_list: set[str] = set()
    for start in range(0, len(wanted), _CHUNK):
        part = wanted[start : start + _CHUNK]
        on_list.update(
            (await conn.execute(select(S.identity).where(S.identity.in_(part)))).scalars()
        )
    if not on_list:
        return set()
    stopped = {rid for rid, identities in own.items() if identities & on_list}
    # Out of the chunk the claim put them in: they belong to no request.
    values = {**_stopped(now), "chunk": None, "worker_id": None}
    await conn.execute(update(recipients).where(R.id.in_(stopped)).values(**values))
    return stopped


async def stop_given_back(
    conn: AsyncConnection, campaign_id: int, numbers: Sequence[int], since: datetime, now: datetime
) -> int:
    """In the transaction that gives formed chunks ``numbers`` back (claimed at ``since``, not
    sent): their rows whose identity opted out meanwhile become SUPPRESSED, as the opt-out
    would have made them had no worker held the chunk. Their other identities are matched when
    few opted out meanwhile (:data:`_FEW`; each is a text search of the rows). How many."""
    recent = list((await conn.execute(select(S.identity).where(S.created_at >= since))).scalars())
    if not recent:
        return 0
    others = (
        [
            R.identities.contains(f'"identity":{orjson.dumps(i).decode()}', autoescape=True)
            for i in recent
        ]
        if len(recent) <= _FEW  # then one statement: _FEW < _CHUNK
        else []
    )
    stopped = 0
    for start in range(0, len(recent), _CHUNK):
        which = or_(R.identity.in_(recent[start : start + _CHUNK]), *others)
        stopped += await _stop(
            conn, which, now, R.campaign_id == campaign_id, R.chunk.in_(list(numbers))
        )
    return stopped


def _identities_of(claim: Claim) -> set[str]:
    found = {claim.identity}
    if claim.identities:
        found.update(str(entry["identity"]) for entry in orjson.loads(claim.identities))
    return found


async def _stop(conn: AsyncConnection, which: object, now: datetime, *more: object) -> int:
    """Recipients matching ``which`` that are not sent yet become SUPPRESSED; how many. Not
    sent yet: PENDING, or following a formed chunk that no worker claimed (batch mode; the
    chunk then counts one follower less, and a chunk left empty is dissolved). A recipient
    claimed, sent or settled keeps its status (it never moves backwards)."""
    stopped = _stopped(now)
    result = await conn.execute(
        update(recipients)
        .where(R.status == Status.PENDING.value, which, *more)  # type: ignore[arg-type]
        .values(**stopped)
    )
    return int(result.rowcount or 0) + await _stop_followers(conn, which, stopped, *more)


def _stopped(now: datetime) -> dict[str, object]:
    return {
        "status": Status.SUPPRESSED.value,
        "error_code": OPTED_OUT,
        "error_description": OPTED_OUT_NOTE,
        "updated_at": now,
        "status_at": now,
    }


async def _stop_followers(
    conn: AsyncConnection, which: object, stopped: dict[str, object], *more: object
) -> int:
    """The batch-mode half of :func:`_stop`: the chunk first (its row locked by the update,
    so that a worker's claim, which skips locked chunks, cannot take it meanwhile), then its
    rows."""
    following = (
        select(R.campaign_id, R.chunk, func.count())
        .where(R.status == chunks.FOLLOWS, which, *more)  # type: ignore[arg-type]
        .group_by(R.campaign_id, R.chunk)
    )
    stopped_count = 0
    for campaign_id, chunk, count in (await conn.execute(following)).all():
        left = B.followers - count
        taken = await conn.execute(
            update(batches)
            .where(B.campaign_id == campaign_id, B.chunk == chunk, B.status == chunks.UNSENT)
            .values(
                followers=left,
                size=B.size - count,
                status=case((left <= 0, chunks.DISSOLVED), else_=B.status),
                updated_at=stopped["updated_at"],
            )
        )
        if not taken.rowcount:  # claimed already: its rows are being sent
            continue
        result = await conn.execute(
            update(recipients)
            .where(
                R.campaign_id == campaign_id,
                R.chunk == chunk,
                R.status == chunks.FOLLOWS,
                which,  # type: ignore[arg-type]
            )
            .values(**stopped)
        )
        stopped_count += int(result.rowcount or 0)
    return stopped_count
