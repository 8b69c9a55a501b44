"""The repository: every read and write of campaign state, as short transactions.

Rows become plain dataclasses here and nothing SQL leaks out. Status changes are guarded in the
``WHERE`` clause (``status = 'IN_FLIGHT'``...), so a late or repeated write never moves a
recipient backwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl
from sqlalchemy import and_, bindparam, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from campaign.models import Status
from campaign.store import engine as engine_mod
from campaign.store.engine import SQLITE_IMMEDIATE
from campaign.store.events import EventStore
from campaign.store.tables import UTCDateTime, batches, campaigns, recipients

C = recipients.c


@dataclass(frozen=True)
class CampaignRow:
    id: int
    name: str
    key: str
    mode: str
    channel: str
    definition: str
    source: str
    state: str
    total_rows: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class IngestCounts:
    pending: int
    rejected: int
    duplicate: int


@dataclass(frozen=True)
class Claim:
    """A recipient claimed for sending (now IN_FLIGHT)."""

    id: int
    position: int
    identity: str
    parameters: str
    attempts: int


@dataclass(frozen=True)
class Sent:
    id: int
    message_id: str | None  # None for batch messages: their ids come with the callbacks
    batch_id: str | None = None
    key: str | None = None  # the recipient key the request carried (to apply early callbacks)


@dataclass(frozen=True)
class Retry:
    """Back to PENDING, not before ``at``."""

    id: int
    at: datetime
    code: str | None
    description: str


@dataclass(frozen=True)
class Failed:
    id: int
    code: str | None
    description: str


@dataclass(frozen=True)
class InDoubt:
    id: int
    description: str


@dataclass(frozen=True)
class Release:
    """Claimed but never sent (the run is stopping): back to PENDING, attempt not counted."""

    id: int


@dataclass(frozen=True)
class Rejected:
    """Found unsendable just before sending (the rendered message breaks a channel limit)."""

    id: int
    code: str
    description: str


@dataclass(frozen=True)
class Chunk:
    """A batch-mode claim: up to ``batch_size`` recipients sent in one Batch API request."""

    number: int
    tag: str  # batch_metadata "chunk": how the batch is found again after a lost answer
    claims: list[Claim]


Outcome = Sent | Retry | Failed | InDoubt | Release | Rejected

# What each kind of outcome writes (bound parameters come from _outcome_params).
_OUTCOME_VALUES: dict[type, dict[str, Any]] = {
    Sent: {
        "status": Status.QUEUED.value,
        "message_id": bindparam("mid"),
        "batch_id": bindparam("bid"),
        "error_code": None,
        "error_description": None,
    },
    Retry: {
        "status": Status.PENDING.value,
        "next_attempt_at": bindparam("at"),
        "error_code": bindparam("code"),
        "error_description": bindparam("desc"),
    },
    Failed: {
        "status": Status.FAILED.value,
        "error_code": bindparam("code"),
        "error_description": bindparam("desc"),
    },
    InDoubt: {
        "status": Status.IN_DOUBT.value,
        "error_code": "IN_DOUBT",
        "error_description": bindparam("desc"),
    },
    # Claimed, never sent: back to PENDING without counting the attempt.
    Release: {"status": Status.PENDING.value, "attempts": C.attempts - 1},
    Rejected: {
        "status": Status.REJECTED.value,
        "error_code": bindparam("code"),
        "error_description": bindparam("desc"),
    },
}


def _outcome_params(outcome: Outcome) -> dict[str, Any]:
    if isinstance(outcome, Sent):
        return {"rid": outcome.id, "mid": outcome.message_id, "bid": outcome.batch_id}
    if isinstance(outcome, Retry):
        return {
            "rid": outcome.id,
            "at": outcome.at,
            "code": outcome.code,
            "desc": outcome.description,
        }
    if isinstance(outcome, Failed | Rejected):
        return {"rid": outcome.id, "code": outcome.code, "desc": outcome.description}
    if isinstance(outcome, InDoubt):
        return {"rid": outcome.id, "desc": outcome.description}
    return {"rid": outcome.id}


REPORT_COLUMNS = (
    "position",
    "identity",
    "identity_raw",
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
    "channel_used",
)

_REJECT_CODES = (
    ("missing identity", "MISSING_IDENTITY"),
    ("invalid", "INVALID_IDENTITY"),
    ("missing value for parameter", "MISSING_PARAMETER"),
)


def reject_code(reason: str) -> str:
    """A stable code for a loading rejection reason (the reason itself is the description)."""
    for prefix, code in _REJECT_CODES:
        if reason.startswith(prefix):
            return code
    return "INVALID_INPUT"


class Store:
    """Campaign state in SQLite or Postgres. One per process; ``close`` it last."""

    def __init__(self, engine: AsyncEngine, url: str) -> None:
        self.engine = engine
        self.url = url
        self.events = EventStore(engine)

    @classmethod
    async def open(cls, url: str) -> Store:
        engine = engine_mod.create_engine_async(url)
        try:
            await engine_mod.prepare(engine, url)
        except BaseException:
            await engine.dispose()
            raise
        return cls(engine, url)

    async def close(self) -> None:
        await self.engine.dispose()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    # --- campaigns ----------------------------------------------------------------------------

    async def find_campaign(self, name: str) -> CampaignRow | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(campaigns).where(campaigns.c.name == name))).first()
        return CampaignRow(**row._mapping) if row else None

    async def list_campaigns(self) -> list[CampaignRow]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(campaigns).order_by(campaigns.c.id))).all()
        return [CampaignRow(**r._mapping) for r in rows]

    async def create_campaign(
        self,
        *,
        name: str,
        key: str,
        mode: str,
        channel: str,
        definition: str,
        source: str,
        now: datetime,
    ) -> CampaignRow:
        """Create the campaign, or return the one another process created first."""
        values = {
            "name": name,
            "key": key,
            "mode": mode,
            "channel": channel,
            "definition": definition,
            "source": source,
            "state": "LOADING",
            "total_rows": 0,
            "created_at": now,
            "updated_at": now,
        }
        try:
            async with self.engine.begin() as conn:
                await conn.execute(insert(campaigns).values(values))
        except IntegrityError:
            pass
        found = await self.find_campaign(name)
        assert found is not None
        return found

    async def set_campaign(self, campaign_id: int, *, now: datetime, **values: Any) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(campaigns)
                .where(campaigns.c.id == campaign_id)
                .values(updated_at=now, **values)
            )

    # --- ingest -------------------------------------------------------------------------------

    def _insert_ignoring_conflicts(self) -> Any:
        if self.dialect == "postgresql":
            return postgresql.insert(recipients).on_conflict_do_nothing()
        return sqlite.insert(recipients).on_conflict_do_nothing()

    async def ingest(
        self, campaign_id: int, channel: str, frame: pl.DataFrame, now: datetime
    ) -> IngestCounts:
        """Store one slice of loaded rows (columns ``row, identity_raw, identity, reason,
        parameters``), in one transaction. Idempotent: rows already stored are left alone.

        The first row of an identity is PENDING; later ones are DUPLICATE, whether the earlier
        row is in this slice or an earlier one (the unique index decides).
        """
        if frame.is_empty():
            return IngestCounts(0, 0, 0)
        base = {"campaign_id": campaign_id, "channel": channel, "updated_at": now, "attempts": 0}
        rejected = frame.filter(pl.col("reason").is_not_null())
        valid = frame.filter(pl.col("reason").is_null())
        rejected_rows = [
            {
                **base,
                "position": r["row"],
                "identity_raw": r["identity_raw"],
                "identity": None,
                "parameters": r["parameters"] or "{}",
                "status": Status.REJECTED.value,
                "error_code": reject_code(r["reason"]),
                "error_description": r["reason"],
            }
            for r in rejected.iter_rows(named=True)
        ]
        valid_rows = [
            {
                **base,
                "position": r["row"],
                "identity_raw": r["identity_raw"],
                "identity": r["identity"],
                "parameters": r["parameters"] or "{}",
                "status": Status.PENDING.value,
                "error_code": None,
                "error_description": None,
            }
            for r in valid.iter_rows(named=True)
        ]
        first, last = int(frame["row"].min()), int(frame["row"].max())  # type: ignore[arg-type]
        statement = self._insert_ignoring_conflicts()
        async with self.engine.begin() as conn:
            if rejected_rows:
                await conn.execute(statement, rejected_rows)
            if valid_rows:
                await conn.execute(statement, valid_rows)
            stored = set(
                (
                    await conn.execute(
                        select(C.position).where(
                            C.campaign_id == campaign_id, C.position.between(first, last)
                        )
                    )
                ).scalars()
            )
            duplicates = [r for r in valid_rows if r["position"] not in stored]
            if duplicates:
                await self._insert_duplicates(conn, campaign_id, channel, duplicates)
        return IngestCounts(
            pending=len(valid_rows) - len(duplicates),
            rejected=len(rejected_rows),
            duplicate=len(duplicates),
        )

    async def _insert_duplicates(
        self, conn: AsyncConnection, campaign_id: int, channel: str, rows: list[dict[str, Any]]
    ) -> None:
        identities = sorted({r["identity"] for r in rows})
        first_row: dict[str, int] = {}
        for start in range(0, len(identities), 500):
            chunk = identities[start : start + 500]
            result = await conn.execute(
                select(C.identity, C.position).where(
                    C.campaign_id == campaign_id,
                    C.channel == channel,
                    C.identity.in_(chunk),
                    C.status.not_in([Status.REJECTED.value, Status.DUPLICATE.value]),
                )
            )
            first_row.update({identity: position for identity, position in result.all()})
        for r in rows:
            r["status"] = Status.DUPLICATE.value
            r["error_code"] = "DUPLICATE"
            original = first_row.get(r["identity"])
            r["error_description"] = (
                f"same identity as row {original}" if original else "same identity as another row"
            )
        await conn.execute(self._insert_ignoring_conflicts(), rows)

    # --- dispatch -----------------------------------------------------------------------------

    async def recover_in_flight(self, campaign_id: int, now: datetime) -> int:
        """Rows left IN_FLIGHT by a process that died: their outcome is unknown -> IN_DOUBT."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(recipients)
                .where(C.campaign_id == campaign_id, C.status == Status.IN_FLIGHT.value)
                .values(
                    status=Status.IN_DOUBT.value,
                    error_code="IN_DOUBT",
                    error_description="the process sending it stopped before Sinch answered",
                    updated_at=now,
                )
            )
        return int(result.rowcount)

    def _claim_statement(
        self, campaign_id: int, limit: int, now: datetime, chunk: int | None = None
    ) -> Any:
        due = (
            select(C.id)
            .where(
                C.campaign_id == campaign_id,
                C.status == Status.PENDING.value,
                or_(C.next_attempt_at.is_(None), C.next_attempt_at <= now),
            )
            .order_by(C.id)
            .limit(limit)
        )
        if self.dialect == "postgresql":
            due = due.with_for_update(skip_locked=True)
        return (
            update(recipients)
            .where(C.id.in_(due.scalar_subquery()))
            .values(
                status=Status.IN_FLIGHT.value,
                attempts=C.attempts + 1,
                next_attempt_at=None,
                chunk=chunk,
                updated_at=now,
            )
            .returning(C.id, C.position, C.identity, C.parameters, C.attempts)
        )

    async def claim(self, campaign_id: int, limit: int, now: datetime) -> list[Claim]:
        """Atomically move up to ``limit`` due PENDING rows to IN_FLIGHT and return them."""
        async with self.engine.begin() as conn:
            rows = (await conn.execute(self._claim_statement(campaign_id, limit, now))).all()
        return sorted((Claim(*row) for row in rows), key=lambda c: c.id)

    async def _next_chunk(self, conn: AsyncConnection, campaign_id: int) -> int:
        """The campaign's next chunk number. Serialised: BEGIN IMMEDIATE on SQLite, a lock on
        the campaign's row on Postgres (concurrent senders must not pick the same number)."""
        if self.dialect == "postgresql":
            await conn.execute(
                select(campaigns.c.id).where(campaigns.c.id == campaign_id).with_for_update()
            )
        value = await conn.scalar(
            select(func.coalesce(func.max(batches.c.chunk), 0) + 1).where(
                batches.c.campaign_id == campaign_id
            )
        )
        return int(value or 1)

    async def claim_chunk(
        self, campaign_id: int, campaign_key: str, size: int, now: datetime
    ) -> Chunk | None:
        """Claim up to ``size`` rows as the campaign's next batch chunk, recorded as SENDING."""
        async with self.engine.connect() as conn:
            await conn.execution_options(**{SQLITE_IMMEDIATE: True})
            async with conn.begin():
                number = await self._next_chunk(conn, campaign_id)
                statement = self._claim_statement(campaign_id, size, now, chunk=number)
                rows = (await conn.execute(statement)).all()
                if not rows:
                    return None
                tag = f"{campaign_key}:{number}"
                await conn.execute(
                    insert(batches).values(
                        campaign_id=campaign_id,
                        chunk=number,
                        tag=tag,
                        status="SENDING",
                        size=len(rows),
                        created_at=now,
                        updated_at=now,
                    )
                )
        return Chunk(number, tag, sorted((Claim(*row) for row in rows), key=lambda c: c.id))

    async def new_chunk(
        self, campaign_id: int, campaign_key: str, ids: Sequence[int], now: datetime
    ) -> tuple[int, str]:
        """Move claimed rows ``ids`` to a chunk of their own (a split batch's part), so that
        each request sent has its own tag to be found by after a lost answer."""
        async with self.engine.connect() as conn:
            await conn.execution_options(**{SQLITE_IMMEDIATE: True})
            async with conn.begin():
                number = await self._next_chunk(conn, campaign_id)
                tag = f"{campaign_key}:{number}"
                await conn.execute(
                    insert(batches).values(
                        campaign_id=campaign_id,
                        chunk=number,
                        tag=tag,
                        status="SENDING",
                        size=len(ids),
                        created_at=now,
                        updated_at=now,
                    )
                )
                await conn.execute(
                    update(recipients).where(C.id.in_(list(ids))).values(chunk=number)
                )
        return number, tag

    async def queued_batch_ids(self, campaign_id: int) -> list[str]:
        """The Sinch batch ids of recipients still QUEUED (not yet delivered or failed)."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(C.batch_id)
                .where(
                    C.campaign_id == campaign_id,
                    C.status == Status.QUEUED.value,
                    C.batch_id.is_not(None),
                )
                .distinct()
            )
            return [str(b) for b in rows.scalars()]

    async def set_batch(
        self,
        campaign_id: int,
        chunk: int,
        status: str,
        now: datetime,
        *,
        batch_id: str | None = None,
        send_after: datetime | None = None,
    ) -> None:
        values: dict[str, Any] = {"status": status, "updated_at": now}
        if batch_id is not None:
            values["batch_id"] = batch_id
        if send_after is not None:
            values["send_after"] = send_after
        async with self.engine.begin() as conn:
            await conn.execute(
                update(batches)
                .where(batches.c.campaign_id == campaign_id, batches.c.chunk == chunk)
                .values(values)
            )

    async def in_flight_chunks(self, campaign_id: int) -> list[tuple[int, str, list[int]]]:
        """Chunks whose recipients are still IN_FLIGHT (a run stopped while sending them)."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(batches.c.chunk, batches.c.tag, C.id)
                    .join(
                        recipients,
                        and_(C.campaign_id == batches.c.campaign_id, C.chunk == batches.c.chunk),
                    )
                    .where(
                        batches.c.campaign_id == campaign_id,
                        C.status == Status.IN_FLIGHT.value,
                    )
                    .order_by(batches.c.chunk, C.id)
                )
            ).all()
        found: dict[int, tuple[str, list[int]]] = {}
        for chunk, tag, rid in rows:
            found.setdefault(chunk, (tag, []))[1].append(rid)
        return [(chunk, tag, ids) for chunk, (tag, ids) in found.items()]

    async def batches_by_status(self, campaign_id: int, status: str | None = None) -> Any:
        """``{status: count}``, or with ``status`` the (chunk, batch_id) pairs in it."""
        async with self.engine.connect() as conn:
            if status is None:
                rows = await conn.execute(
                    select(batches.c.status, func.count())
                    .where(batches.c.campaign_id == campaign_id)
                    .group_by(batches.c.status)
                )
                return {s: int(n) for s, n in rows.all()}
            rows = await conn.execute(
                select(batches.c.chunk, batches.c.batch_id).where(
                    batches.c.campaign_id == campaign_id, batches.c.status == status
                )
            )
            return [(int(c), str(b)) for c, b in rows.all()]

    async def cancel(
        self, campaign_id: int, batch_ids: Sequence[str], now: datetime
    ) -> dict[str, int]:
        """Cancel what is not sent: PENDING rows, and QUEUED rows of the given (scheduled,
        cancelled at Sinch) batches. Returns how many of each."""
        note = {"error_code": "CANCELLED", "error_description": "cancelled by `campaign cancel`"}
        async with self.engine.begin() as conn:
            pending = await conn.execute(
                update(recipients)
                .where(C.campaign_id == campaign_id, C.status == Status.PENDING.value)
                .values(status=Status.CANCELLED.value, updated_at=now, **note)
            )
            scheduled = 0
            if batch_ids:
                result = await conn.execute(
                    update(recipients)
                    .where(
                        C.campaign_id == campaign_id,
                        C.batch_id.in_(list(batch_ids)),
                        C.status == Status.QUEUED.value,
                    )
                    .values(status=Status.CANCELLED.value, updated_at=now, **note)
                )
                scheduled = int(result.rowcount)
                await conn.execute(
                    update(batches)
                    .where(
                        batches.c.campaign_id == campaign_id,
                        batches.c.batch_id.in_(list(batch_ids)),
                    )
                    .values(status="CANCELLED", updated_at=now)
                )
            await conn.execute(
                update(campaigns)
                .where(campaigns.c.id == campaign_id)
                .values(state="CANCELLED", updated_at=now)
            )
        return {"pending": int(pending.rowcount), "scheduled": scheduled}

    async def record(self, outcomes: Sequence[Outcome], now: datetime) -> None:
        """Write send outcomes in one transaction; only rows still IN_FLIGHT change."""
        batches: dict[type, list[dict[str, Any]]] = {kind: [] for kind in _OUTCOME_VALUES}
        for outcome in outcomes:
            batches[type(outcome)].append(_outcome_params(outcome))
        in_flight = and_(C.id == bindparam("rid"), C.status == Status.IN_FLIGHT.value)
        async with self.engine.begin() as conn:
            for kind, params in batches.items():
                if params:
                    values = {**_OUTCOME_VALUES[kind], "updated_at": now}
                    if kind is Sent:
                        values["sent_at"] = now
                    await conn.execute(update(recipients).where(in_flight).values(values), params)

    async def resend_in_doubt(self, campaign_id: int, older_than: datetime, now: datetime) -> int:
        """IN_DOUBT rows that no callback settled since ``older_than``: back to PENDING.

        Only for campaigns whose policy is to send them again; a callback that still comes
        later is applied to the new send as well (status never moves backwards).
        """
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(recipients)
                .where(
                    C.campaign_id == campaign_id,
                    C.status == Status.IN_DOUBT.value,
                    C.updated_at < older_than,
                )
                .values(
                    status=Status.PENDING.value,
                    error_code="RESENT_IN_DOUBT",
                    error_description="no callback within the grace period; sent again",
                    updated_at=now,
                )
            )
        return int(result.rowcount)

    async def delivery_summary(self, campaign_id: int) -> dict[str, int]:
        """Accepted by Sinch, delivered (or read), read, and failed after acceptance."""
        accepted = C.message_id.is_not(None)
        statuses = (Status.DELIVERED.value, Status.READ.value)
        query = select(
            func.count().filter(accepted),
            func.count().filter(accepted, C.status.in_(statuses)),
            func.count().filter(accepted, C.status == Status.READ.value),
            func.count().filter(accepted, C.status == Status.FAILED.value),
        ).where(C.campaign_id == campaign_id)
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).one()
        return dict(zip(("accepted", "delivered", "read", "failed"), map(int, row), strict=True))

    async def stale_queued(self, campaign_id: int, older_than: datetime) -> int:
        """QUEUED rows sent before ``older_than`` that no callback has moved since."""
        async with self.engine.connect() as conn:
            value = await conn.scalar(
                select(func.count()).where(
                    C.campaign_id == campaign_id,
                    C.status == Status.QUEUED.value,
                    C.sent_at < older_than,
                )
            )
        return int(value or 0)

    async def next_retry_at(self, campaign_id: int) -> datetime | None:
        """When the earliest PENDING row waiting for a retry becomes due (None: none waits)."""
        async with self.engine.connect() as conn:
            value = (
                await conn.execute(
                    select(func.min(C.next_attempt_at)).where(
                        C.campaign_id == campaign_id, C.status == Status.PENDING.value
                    )
                )
            ).scalar()
        return tables_datetime(value)

    # --- reading ------------------------------------------------------------------------------

    async def counts(self, campaign_id: int) -> dict[Status, int]:
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(C.status, func.count())
                    .where(C.campaign_id == campaign_id)
                    .group_by(C.status)
                )
            ).all()
        return {Status(status): int(count) for status, count in rows}

    async def error_summary(self, campaign_id: int) -> list[tuple[str, str, int]]:
        """``(status, error_code, count)`` for rows that carry an error, most frequent first."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(C.status, C.error_code, func.count().label("n"))
                    .where(C.campaign_id == campaign_id, C.error_code.is_not(None))
                    .group_by(C.status, C.error_code)
                    .order_by(func.count().desc())
                )
            ).all()
        return [(str(s), str(code), int(n)) for s, code, n in rows]

    async def report_pages(
        self, campaign_id: int, page_size: int = 100_000
    ) -> AsyncIterator[list[tuple[Any, ...]]]:
        """Every recipient in input order, as tuples of :data:`REPORT_COLUMNS`, page by page."""
        columns = [C[name] for name in REPORT_COLUMNS]
        after = 0
        while True:
            async with self.engine.connect() as conn:
                rows = (
                    await conn.execute(
                        select(*columns)
                        .where(C.campaign_id == campaign_id, C.position > after)
                        .order_by(C.position)
                        .limit(page_size)
                    )
                ).all()
            if not rows:
                return
            yield [tuple(r) for r in rows]
            after = rows[-1][0]


def tables_datetime(value: Any) -> datetime | None:
    """Aggregates bypass the column type on SQLite; give them the same UTC treatment."""
    return UTCDateTime().process_result_value(value, _SQLITE)


_SQLITE = sqlite.dialect()
