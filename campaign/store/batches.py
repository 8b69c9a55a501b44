"""Batch-mode queries: chunks of recipients sent as one Batch API request each."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from campaign.models import Status
from campaign.store.engine import WriteGate
from campaign.store.records import Chunk, Claim
from campaign.store.tables import batches, campaigns, recipients, workers

C = recipients.c


def claim_statement(
    dialect: str,
    campaign_id: int,
    limit: int,
    now: datetime,
    chunk: int | None = None,
    worker_id: int | None = None,
) -> Any:
    """``UPDATE … RETURNING`` that moves up to ``limit`` due PENDING rows to IN_FLIGHT (in
    ``chunk`` when given) for ``worker_id``, atomically; on Postgres, rows locked by another
    worker are skipped."""
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
    if dialect == "postgresql":
        due = due.with_for_update(skip_locked=True)
    return (
        update(recipients)
        .where(C.id.in_(due.scalar_subquery()))
        .values(
            status=Status.IN_FLIGHT.value,
            attempts=C.attempts + 1,
            next_attempt_at=None,
            chunk=chunk,
            worker_id=worker_id,
            updated_at=now,
        )
        .returning(C.id, C.position, C.identity, C.parameters, C.attempts, C.time_zone)
    )


def running_workers(now: datetime, lease: float) -> Any:
    """The ids of workers that are running (their heartbeat within the lease), as a subquery."""
    return select(workers.c.id).where(
        workers.c.stopped_at.is_(None),
        workers.c.heartbeat_at >= now - timedelta(seconds=lease),
    )


class BatchQueries:
    """The batch half of :class:`campaign.store.repository.Store` (a base class of it)."""

    engine: AsyncEngine
    writes: WriteGate

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

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

    async def _add_batch(
        self,
        conn: AsyncConnection,
        campaign_id: int,
        campaign_key: str,
        number: int,
        size: int,
        now: datetime,
        worker_id: int | None = None,
    ) -> str:
        """Record chunk ``number`` as SENDING; returns its tag (``<campaign key>:<number>``)."""
        tag = f"{campaign_key}:{number}"
        await conn.execute(
            insert(batches).values(
                campaign_id=campaign_id,
                chunk=number,
                tag=tag,
                status="SENDING",
                size=size,
                worker_id=worker_id,
                created_at=now,
                updated_at=now,
            )
        )
        return tag

    async def claim_chunk(
        self,
        campaign_id: int,
        campaign_key: str,
        size: int,
        now: datetime,
        worker_id: int | None = None,
    ) -> Chunk | None:
        """Claim up to ``size`` rows as the campaign's next batch chunk, recorded as SENDING."""
        async with self.writes.begin(immediate=True) as conn:
            number = await self._next_chunk(conn, campaign_id)
            statement = claim_statement(
                self.dialect, campaign_id, size, now, chunk=number, worker_id=worker_id
            )
            rows = (await conn.execute(statement)).all()
            if not rows:
                return None
            tag = await self._add_batch(
                conn, campaign_id, campaign_key, number, len(rows), now, worker_id
            )
        return Chunk(number, tag, sorted((Claim(*row) for row in rows), key=lambda c: c.id))

    async def new_chunk(
        self, campaign_id: int, campaign_key: str, ids: Sequence[int], now: datetime
    ) -> tuple[int, str]:
        """Move claimed rows ``ids`` to a chunk of their own (a split batch's part), so that
        each request sent has its own tag to be found by after a lost answer."""
        async with self.writes.begin(immediate=True) as conn:
            number = await self._next_chunk(conn, campaign_id)
            tag = await self._add_batch(conn, campaign_id, campaign_key, number, len(ids), now)
            await conn.execute(update(recipients).where(C.id.in_(list(ids))).values(chunk=number))
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
        async with self.writes.begin() as conn:
            await conn.execute(
                update(batches)
                .where(batches.c.campaign_id == campaign_id, batches.c.chunk == chunk)
                .values(values)
            )

    async def record_chunks(
        self,
        conn: AsyncConnection,
        params: list[dict[str, Any]],
        now: datetime,
        worker_id: int | None = None,
    ) -> None:
        """Accepted chunks (:func:`campaign.store.records.chunk_params`): a statement per kind
        of row, not per recipient; only recipients still IN_FLIGHT change."""
        await conn.execute(
            update(recipients)
            .where(
                C.campaign_id == bindparam("cid"),
                C.chunk == bindparam("num"),
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
            params,
        )
        await conn.execute(
            update(batches)
            .where(
                batches.c.campaign_id == bindparam("cid"),
                batches.c.chunk == bindparam("num"),
                batches.c.status == "SENDING",
            )
            .values(
                status=bindparam("bstatus"),
                batch_id=bindparam("bid"),
                send_after=bindparam("after"),
                updated_at=now,
            ),
            params,
        )

    async def in_flight_chunks(
        self, campaign_id: int, now: datetime, lease: float
    ) -> list[tuple[int, str, list[int]]]:
        """Chunks whose recipients are still IN_FLIGHT and whose worker no longer runs (a run
        stopped while sending them): the chunks of live workers are theirs."""
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
                        or_(
                            batches.c.worker_id.is_(None),
                            batches.c.worker_id.not_in(running_workers(now, lease)),
                        ),
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
        async with self.writes.begin() as conn:
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
