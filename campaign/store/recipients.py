"""``store.recipients``: claiming due recipients, recording what their sends came to, and
reading how many are where.

Status changes are guarded in the ``WHERE`` clause (``status = 'IN_FLIGHT'``...), so a late or
repeated write never moves a recipient backwards.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, exists, func, or_, select, update
from sqlalchemy.dialects import sqlite

from campaign.models import Status
from campaign.store import chunks, statements, suppression
from campaign.store.edge import Group
from campaign.store.records import (
    OUTCOME_VALUES,
    ChunkSent,
    Claim,
    Outcome,
    Sent,
    chunk_params,
    outcome_params,
)
from campaign.store.tables import UTCDateTime, batches, events, recipients

C = recipients.c
B = batches.c


class Recipients(Group):
    """``store.recipients``: the recipients' rows, one by one (those that follow a chunk are
    ``store.chunks``'s, and counted here by their chunk's status)."""

    async def claim(
        self, campaign_id: int, limit: int, now: datetime, worker_id: int | None = None
    ) -> list[Claim]:
        """Atomically move up to ``limit`` due PENDING rows to IN_FLIGHT and return them, but
        for those on the suppression list (:func:`~campaign.store.suppression.stop_claimed`)."""
        statement = statements.claim_statement(
            self.dialect, campaign_id, limit, now, worker_id=worker_id
        )
        async with self.writes.begin() as conn:
            return await suppression.claim_unlisted(conn, statement, now)

    async def record(
        self,
        outcomes: Sequence[Outcome | ChunkSent],
        now: datetime,
        worker_id: int | None = None,
    ) -> None:
        """Write send outcomes in one transaction; only rows still IN_FLIGHT change, and with
        ``worker_id`` only rows that worker still holds (not rows settled after it died)."""
        by_kind: dict[type, list[dict[str, Any]]] = {kind: [] for kind in OUTCOME_VALUES}
        accepted: list[dict[str, Any]] = []
        for outcome in outcomes:
            if isinstance(outcome, ChunkSent):
                accepted.append(chunk_params(outcome))
            else:
                by_kind[type(outcome)].append(outcome_params(outcome))
        in_flight = and_(C.id == bindparam("rid"), C.status == Status.IN_FLIGHT.value)
        if worker_id is not None:
            in_flight = and_(in_flight, C.worker_id == worker_id)
        async with self.writes.begin() as conn:
            await chunks.lock_chunks(conn, ((p["cid"], p["num"]) for p in accepted))
            for kind, params in by_kind.items():
                if params:
                    values = {**OUTCOME_VALUES[kind], "updated_at": now}
                    if kind is Sent:
                        values["sent_at"] = now
                    await conn.execute(update(recipients).where(in_flight).values(values), params)
            if accepted:
                await chunks.record_accepted(conn, accepted, now, worker_id)

    async def cancel_pending(
        self, campaign_id: int, now: datetime, code: str, description: str
    ) -> int:
        """Every PENDING recipient of the campaign to CANCELLED, with ``code``; how many."""
        async with self.writes.begin() as conn:
            await chunks.close_unsent(conn, campaign_id, "CANCELLED", now)
            result = await conn.execute(
                update(recipients)
                .where(C.campaign_id == campaign_id, C.status == Status.PENDING.value)
                .values(
                    status=Status.CANCELLED.value,
                    error_code=code,
                    error_description=description,
                    updated_at=now,
                )
            )
        return int(result.rowcount)

    async def held_elsewhere(self, campaign_id: int, worker_id: int | None) -> int:
        """IN_FLIGHT rows of the campaign that another worker holds (or held, until it is
        settled): the campaign is not done while there are any."""
        async with self.engine.connect() as conn:
            query = select(func.count()).where(
                C.campaign_id == campaign_id, C.status == Status.IN_FLIGHT.value
            )
            formed = select(func.coalesce(func.sum(B.followers), 0)).where(
                B.campaign_id == campaign_id, B.status == chunks.SENDING
            )
            if worker_id is not None:
                query = query.where(or_(C.worker_id.is_(None), C.worker_id != worker_id))
                formed = formed.where(or_(B.worker_id.is_(None), B.worker_id != worker_id))
            return int(await conn.scalar(query) or 0) + int(await conn.scalar(formed) or 0)

    async def resend_in_doubt(self, campaign_id: int, older_than: datetime, now: datetime) -> int:
        """IN_DOUBT rows that no callback settled since ``older_than``: back to PENDING.

        Only for campaigns whose policy is to send them again; a callback that still comes
        later is applied to the new send as well (status never moves backwards).
        """
        async with self.writes.begin() as conn:
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
        ).where(
            C.campaign_id == campaign_id,
            # Rows of their own: a row that follows its chunk never holds a message id, and the
            # status index skips the million of them (0.14 s at the end of a 1M-row run).
            C.status.in_([status.value for status in Status]),
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).one()
        return dict(zip(("accepted", "delivered", "read", "failed"), map(int, row), strict=True))

    async def delivered_by_channel(self, campaign_id: int) -> dict[str, int]:
        """Delivered (or read) recipients per channel that Sinch delivered them on, after any
        fallback (a row that follows its chunk has had no callback, so has no row here)."""
        statuses = (Status.DELIVERED.value, Status.READ.value)
        query = (
            select(C.channel_used, func.count())
            .where(
                C.campaign_id == campaign_id,
                C.status.in_(statuses),
                C.channel_used.is_not(None),
            )
            .group_by(C.channel_used)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return {str(channel): int(count) for channel, count in rows}

    async def fell_back(self, campaign_id: int) -> int:
        """Delivered (or read) recipients that Sinch reached after another channel failed them:
        their events hold a SWITCHING_CHANNEL."""
        switched = exists().where(
            events.c.recipient_id == C.id,
            events.c.status == Status.SWITCHING_CHANNEL.value,
        )
        query = select(func.count()).where(
            C.campaign_id == campaign_id,
            C.status.in_((Status.DELIVERED.value, Status.READ.value)),
            switched,
        )
        async with self.engine.connect() as conn:
            return int(await conn.scalar(query) or 0)

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
            formed = await conn.scalar(
                select(func.sum(B.followers)).where(
                    B.campaign_id == campaign_id,
                    B.status.in_(chunks.ACCEPTED),
                    B.sent_at < older_than,
                )
            )
        return int(value or 0) + int(formed or 0)

    async def next_due_at(self, campaign_id: int, now: datetime) -> datetime | None:
        """When the earliest row left to send becomes due; None when none is left.

        Left to send: PENDING rows (due at ``now`` when no retry time holds them back) and
        formed chunks not claimed. A send that finishes between a claim that found nothing
        and this look can give either back (a full queue, a stop), so both must be seen, or
        the run would end with them unsent."""
        async with self.engine.connect() as conn:
            unsent = await conn.scalar(
                select(B.id).where(B.campaign_id == campaign_id, B.status == chunks.UNSENT).limit(1)
            )
            if unsent is not None:
                return now
            pending = C.campaign_id == campaign_id, C.status == Status.PENDING.value
            if await conn.scalar(
                select(C.id).where(*pending, C.next_attempt_at.is_(None)).limit(1)
            ):
                return now
            value = (
                await conn.execute(select(func.min(C.next_attempt_at)).where(*pending))
            ).scalar()
        return tables_datetime(value)

    async def pending_zones(self, campaign_id: int) -> dict[str | None, int]:
        """How many PENDING rows each zone key holds (None: the campaign's own zone)."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(C.time_zone, func.count())
                .where(C.campaign_id == campaign_id, C.status == Status.PENDING.value)
                .group_by(C.time_zone)
            )
            return {key: int(n) for key, n in rows.all()}

    async def defer(self, campaign_id: int, held: Mapping[str | None, datetime]) -> int:
        """Quiet hours: PENDING rows of each zone key in ``held`` are not due before its time
        (a later retry time is kept). Returns how many rows were pushed back."""
        if not held:
            return 0
        moved = 0
        async with self.writes.begin() as conn:
            for key, until in held.items():
                zone = C.time_zone.is_(None) if key is None else C.time_zone == key
                result = await conn.execute(
                    update(recipients)
                    .where(
                        C.campaign_id == campaign_id,
                        C.status == Status.PENDING.value,
                        zone,
                        or_(C.next_attempt_at.is_(None), C.next_attempt_at < until),
                    )
                    .values(next_attempt_at=until)
                )
                moved += result.rowcount
        return moved

    async def counts(self, campaign_id: int) -> dict[Status, int]:
        """How many recipients each status holds (those that follow a chunk by its status)."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(C.status, func.count())
                    .where(C.campaign_id == campaign_id, C.status != chunks.FOLLOWS)
                    .group_by(C.status)
                )
            ).all()
            formed = (
                await conn.execute(
                    select(B.status, func.sum(B.followers))
                    .where(B.campaign_id == campaign_id, B.followers > 0)
                    .group_by(B.status)
                )
            ).all()
        counts: Counter[Status] = Counter()
        for status, count in rows:
            counts[Status(status)] += int(count)
        for chunk_status, count in formed:
            counts[chunks.recipient_status(chunk_status)] += int(count)
        return dict(counts)

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


def tables_datetime(value: Any) -> datetime | None:
    """Aggregates bypass the column type on SQLite; give them the same UTC treatment."""
    return UTCDateTime().process_result_value(value, _SQLITE)


_SQLITE = sqlite.dialect()
