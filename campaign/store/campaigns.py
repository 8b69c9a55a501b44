"""``store.campaigns``: the campaigns themselves (one row each); cancelling, pausing and
resuming one, and putting its failed recipients back to be sent again."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import case, exists, func, insert, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from campaign.models import Status
from campaign.store import chunks
from campaign.store.edge import Group
from campaign.store.records import CampaignRow
from campaign.store.tables import batches, campaigns, recipients

C = recipients.c
B = batches.c

# What `campaign retry` may put back. FAILED: Sinch refused the request, or the channel
# reported it undelivered: nothing reached the recipient, so a new send is no second copy.
# IN_DOUBT: the request may have reached Sinch (the CLI puts it back only when asked by name,
# and warns). Never a status in which Sinch accepted a message it may still deliver (QUEUED,
# QUEUED_ON_CHANNEL, SWITCHING_CHANNEL, DELIVERED, READ), nor REJECTED, DUPLICATE, CANCELLED.
RETRYABLE: frozenset[Status] = frozenset({Status.FAILED, Status.IN_DOUBT})


@dataclass(frozen=True)
class Retried:
    """What :meth:`Campaigns.retry` did: how many rows of each status went back to PENDING,
    the campaign's state before and after (``refused``: it is CANCELLED, nothing changed)."""

    counts: dict[Status, int] = field(default_factory=dict)
    state_before: str = ""
    state_after: str = ""
    refused: bool = False

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class Campaigns(Group):
    """``store.campaigns``: find, list, create, update and cancel campaigns."""

    async def find(self, name: str) -> CampaignRow | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(campaigns).where(campaigns.c.name == name))).first()
        return CampaignRow(**row._mapping) if row else None

    async def all(self) -> list[CampaignRow]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(campaigns).order_by(campaigns.c.id))).all()
        return [CampaignRow(**r._mapping) for r in rows]

    async def create(
        self,
        *,
        name: str,
        key: str,
        mode: str,
        channel: str,
        definition: str,
        source: str,
        now: datetime,
        source_digest: str | None = None,
        target: str | None = None,
    ) -> CampaignRow:
        """Create the campaign, or return the one another process created first."""
        values = {
            "target": target,
            "name": name,
            "key": key,
            "mode": mode,
            "channel": channel,
            "definition": definition,
            "source": source,
            "source_digest": source_digest,
            "state": "LOADING",
            "total_rows": 0,
            "created_at": now,
            "updated_at": now,
        }
        try:
            async with self.writes.begin() as conn:
                await conn.execute(insert(campaigns).values(values))
        except IntegrityError:
            pass
        found = await self.find(name)
        assert found is not None
        return found

    async def update(self, campaign_id: int, *, now: datetime, **values: Any) -> None:
        async with self.writes.begin() as conn:
            await conn.execute(
                update(campaigns)
                .where(campaigns.c.id == campaign_id)
                .values(updated_at=now, **values)
            )

    async def finish(self, campaign_id: int, now: datetime) -> bool:
        """Mark the campaign DONE, unless recipients wait to be sent: `campaign retry` may
        have put some back after this run's last claim found none, and a DONE campaign is
        never run again. Whether it is DONE now."""
        waiting = select(C.id).where(C.campaign_id == campaign_id, C.status == Status.PENDING.value)
        async with self.writes.begin() as conn:
            result = await conn.execute(
                update(campaigns)
                .where(campaigns.c.id == campaign_id, ~exists(waiting))
                .values(state="DONE", updated_at=now)
            )
        return result.rowcount == 1

    async def cancel(
        self, campaign_id: int, batch_ids: Sequence[str], now: datetime
    ) -> dict[str, int]:
        """Cancel what is not sent: PENDING rows, and QUEUED rows of the given (scheduled,
        cancelled at Sinch) batches. Returns how many of each."""
        note = {"error_code": "CANCELLED", "error_description": "cancelled by `campaign cancel`"}
        async with self.writes.begin() as conn:
            # Chunks not sent yet, and those of the scheduled batches: their rows first.
            await chunks.close_unsent(conn, campaign_id, "CANCELLED", now)
            if batch_ids:
                await chunks.materialise(conn, campaign_id, B.batch_id.in_(list(batch_ids)))
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

    async def retry(
        self,
        campaign_id: int,
        statuses: Sequence[Status],
        codes: Sequence[str],
        now: datetime,
    ) -> Retried:
        """Put the campaign's rows in ``statuses`` (of :data:`RETRYABLE`; with ``codes``, only
        those with one of these error codes) back to PENDING, as if never sent: no error, no
        attempt, no chunk, batch or message id of the earlier send. A DONE campaign becomes
        READY again, so that `campaign run` sends them. One transaction; a CANCELLED campaign
        is refused and nothing changes."""
        wrong = sorted(set(statuses) - RETRYABLE)
        if wrong:
            raise ValueError(f"not retryable: {', '.join(wrong)}")
        async with self.writes.begin() as conn:
            state = await _locked_state(conn, campaign_id)
            if state == "CANCELLED":
                return Retried(state_before=state, state_after=state, refused=True)
            counts: dict[Status, int] = {}
            for status in sorted(set(statuses)):
                counts[status] = await _put_back(conn, campaign_id, status, codes, now)
            after = state
            if state == "DONE" and any(counts.values()):
                after = "READY"
                await conn.execute(
                    update(campaigns)
                    .where(campaigns.c.id == campaign_id)
                    .values(state=after, updated_at=now)
                )
        return Retried(counts, state, after)

    async def pause(self, campaign_id: int, now: datetime) -> datetime | None:
        """Pause the campaign: its runs stop claiming at their next heartbeat. Returns when it
        was paused already (None: it was not, and is now)."""
        async with self.writes.begin() as conn:
            before = await conn.scalar(
                select(campaigns.c.paused_at).where(campaigns.c.id == campaign_id)
            )
            if before is None:
                await conn.execute(
                    update(campaigns)
                    .where(campaigns.c.id == campaign_id)
                    .values(paused_at=now, updated_at=now)
                )
        return before

    async def resume(self, campaign_id: int, now: datetime) -> datetime | None:
        """Lift a pause; returns when the campaign had been paused (None: it was not)."""
        async with self.writes.begin() as conn:
            before = await conn.scalar(
                select(campaigns.c.paused_at).where(campaigns.c.id == campaign_id)
            )
            if before is not None:
                await conn.execute(
                    update(campaigns)
                    .where(campaigns.c.id == campaign_id)
                    .values(paused_at=None, updated_at=now)
                )
        return before

    async def note_queue(
        self,
        campaign_id: int,
        *,
        size: int,
        limit: int,
        outbound: int,
        at: datetime,
        wait: float,
    ) -> None:
        """Keep the app's MT queue as a run has it at ``at`` (for ``status``'s time to drain),
        and ``wait``, the longest a message it sent waits there, if longer than any kept
        (a message of an earlier run may still wait)."""
        longest = campaigns.c.queue_wait
        kept = case((func.coalesce(longest, 0.0) >= wait, longest), else_=literal(wait))
        async with self.writes.begin() as conn:
            await conn.execute(
                update(campaigns)
                .where(campaigns.c.id == campaign_id)
                .values(
                    app_queue_size=size,
                    app_queue_limit=limit,
                    app_outbound=outbound,
                    app_read_at=at,
                    queue_wait=kept,
                )
            )

    async def paused(self, campaign_id: int) -> bool:
        """Whether the campaign is paused: read by every run's heartbeat."""
        async with self.engine.connect() as conn:
            value = await conn.scalar(
                select(campaigns.c.paused_at).where(campaigns.c.id == campaign_id)
            )
        return value is not None


async def _locked_state(conn: AsyncConnection, campaign_id: int) -> str:
    """The campaign's state, its row locked on Postgres until the transaction ends (SQLite's
    write transaction holds the whole database), so that a cancel cannot slip in between."""
    query = select(campaigns.c.state).where(campaigns.c.id == campaign_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return str(await conn.scalar(query))


async def _put_back(
    conn: AsyncConnection, campaign_id: int, status: Status, codes: Sequence[str], now: datetime
) -> int:
    """Rows of ``status`` (and of ``codes``, when given) back to PENDING; how many. They are
    ordinary rows (a row that follows its chunk is never FAILED nor IN_DOUBT), and leave
    their old chunk: the next claim puts them in a chunk of its own, or none."""
    where = [C.campaign_id == campaign_id, C.status == status.value]
    if codes:
        where.append(C.error_code.in_(list(codes)))
    result = await conn.execute(
        update(recipients)
        .where(*where)
        .values(
            status=Status.PENDING.value,
            attempts=0,
            next_attempt_at=None,
            error_code=None,
            error_description=None,
            message_id=None,
            batch_id=None,
            chunk=None,
            worker_id=None,
            sent_at=None,
            status_at=None,
            channel_used=None,
            updated_at=now,
        )
    )
    return int(result.rowcount)
