"""Workers: the `campaign run` processes working on campaigns, and what a dead one leaves.

A worker registers, beats a heartbeat, and before each request leaves it writes how far its
requests may have started (``started_through``, a write-ahead mark). A worker whose heartbeat is
older than the lease is dead; settling it (:meth:`Workers.reap`), in one transaction:

- its IN_FLIGHT rows up to ``started_through`` may have reached Sinch: IN_DOUBT;
- those above it were claimed but never sent: back to PENDING, the attempt not counted;
- batch chunks it left SENDING stay for the batch lookup (``store.chunks.in_flight`` finds
  them), which asks Sinch whether each went out.

A reaped worker that turns out to be alive (a long pause) finds itself stopped at its next
heartbeat and stops sending; its late outcomes change nothing, because outcomes are recorded
only for rows the writing worker still holds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from campaign.errors import CampaignBusyError
from campaign.models import Status
from campaign.store.edge import Group
from campaign.store.statements import running_workers
from campaign.store.tables import campaigns, recipients, workers

C = recipients.c
W = workers.c


__all__ = ["Beat", "CampaignBusyError", "Reaped", "Workers"]


@dataclass(frozen=True)
class Reaped:
    workers: int
    in_doubt: int
    released: int


@dataclass(frozen=True)
class Beat:
    live: int  # live workers in the database (this one included), who share the rate
    reaped: bool  # this worker was declared dead by another: it must stop sending


class Workers(Group):
    """``store.workers``: register, beat, write ahead, stop, and settle the dead."""

    async def register(
        self, campaign_id: int, name: str, now: datetime, lease: float, *, exclusive: bool
    ) -> int:
        """A new worker on the campaign; its id. With ``exclusive``, raises
        :class:`CampaignBusyError` when another live worker has the campaign."""
        async with self.writes.begin() as conn:
            if conn.dialect.name == "postgresql":  # serialise registrations per campaign
                await conn.execute(
                    select(campaigns.c.id).where(campaigns.c.id == campaign_id).with_for_update()
                )
            if exclusive and await _live(conn, now, lease, campaign_id):
                raise CampaignBusyError(
                    f"campaign {campaign_id} is exclusive and another live worker runs it"
                )
            result = await conn.execute(
                insert(workers)
                .values(
                    campaign_id=campaign_id,
                    name=name[:200],
                    started_at=now,
                    heartbeat_at=now,
                    started_through=0,
                )
                .returning(W.id)
            )
            return int(result.scalar_one())

    async def heartbeat(
        self,
        worker_id: int,
        now: datetime,
        lease: float,
        counted: Callable[[int], object] | None = None,
    ) -> Beat:
        """Beat at ``now`` and count the live workers. ``counted`` is called with that count
        before the beat commits: whoever sees the beat (a worker waiting to be counted, see
        :meth:`unaware`) knows that its consequence, this worker's lower share, is in force."""
        async with self.writes.begin() as conn:
            result = await conn.execute(
                update(workers)
                .where(W.id == worker_id, W.stopped_at.is_(None))
                .values(heartbeat_at=now)
            )
            live = max(await _live(conn, now, lease), 1)
            if counted is not None:
                counted(live)
        return Beat(live=live, reaped=result.rowcount == 0)

    async def may_send(self, worker_id: int, through: int | None = None) -> bool:
        """Write ahead, before requests leave: the worker's rows up to ``through`` (a recipient
        id) may now be sent. False when the worker was declared dead meanwhile: it must not
        send, its rows are someone else's. Without ``through`` (batch mode, where the claimed
        chunk's row says what may have been sent) there is nothing to write, and the check is
        a read: it does not wait for the writer (a slice being loaded, say)."""
        if through is None:
            async with self.engine.connect() as conn:
                alive = select(W.id).where(W.id == worker_id, W.stopped_at.is_(None))
                return await conn.scalar(alive) is not None
        # never lowered: a retried row may have a lower id
        values = {
            "started_through": case((W.started_through < through, through), else_=W.started_through)
        }
        async with self.writes.begin() as conn:
            result = await conn.execute(
                update(workers).where(W.id == worker_id, W.stopped_at.is_(None)).values(values)
            )
        return result.rowcount == 1

    async def stop(self, worker_id: int, now: datetime, reason: str) -> None:
        async with self.writes.begin() as conn:
            await conn.execute(
                update(workers)
                .where(W.id == worker_id, W.stopped_at.is_(None))
                .values(stopped_at=now, stop_reason=reason)
            )

    async def unaware(self, worker_id: int, since: datetime, now: datetime, lease: float) -> int:
        """Live workers other than this one that have not beaten since ``since`` (so have not
        yet counted this one among those sharing the rate)."""
        async with self.engine.connect() as conn:
            query = select(func.count()).where(
                W.id != worker_id,
                W.stopped_at.is_(None),
                W.heartbeat_at >= now - timedelta(seconds=lease),
                W.heartbeat_at < since,
            )
            return int(await conn.scalar(query) or 0)

    async def live(self, now: datetime, lease: float, campaign_id: int | None) -> int:
        async with self.engine.connect() as conn:
            return await _live(conn, now, lease, campaign_id)

    async def reap(self, campaign_id: int, now: datetime, lease: float) -> Reaped:
        """Settle the campaign's dead workers (see the module), the rows a stopped worker left
        IN_FLIGHT (its last records failed; its write-ahead mark decides, as for a dead one),
        and rows that no worker holds: left IN_FLIGHT by a version without workers. Those are
        IN_DOUBT: nothing says they did not leave."""
        expired = now - timedelta(seconds=lease)
        async with self.writes.begin() as conn:
            dead = (
                await conn.execute(
                    select(W.id, W.started_through).where(
                        W.campaign_id == campaign_id,
                        W.stopped_at.is_(None),
                        W.heartbeat_at < expired,
                    )
                )
            ).all()
            # Stopped workers whose rows were left IN_FLIGHT (their last records failed: the
            # database was locked or full): their write-ahead mark says which may have left.
            holding = select(C.worker_id).where(
                C.campaign_id == campaign_id,
                C.status == Status.IN_FLIGHT.value,
                C.chunk.is_(None),
                C.worker_id.is_not(None),
            )
            stopped = (
                await conn.execute(
                    select(W.id, W.started_through).where(
                        W.campaign_id == campaign_id,
                        W.stopped_at.is_not(None),
                        W.id.in_(holding.distinct()),
                    )
                )
            ).all()
            in_doubt = released = 0
            for worker_id, through in [*dead, *stopped]:
                doubted, back = await _settle(conn, campaign_id, worker_id, through, now)
                in_doubt += doubted
                released += back
            running = running_workers(now, lease)
            orphans = await conn.execute(
                update(recipients)
                .where(
                    C.campaign_id == campaign_id,
                    C.status == Status.IN_FLIGHT.value,
                    C.chunk.is_(None),
                    or_(C.worker_id.is_(None), C.worker_id.not_in(running)),
                )
                .values(**_in_doubt(now))
            )
            in_doubt += orphans.rowcount
        return Reaped(len(dead), in_doubt, released)


def _in_doubt(now: datetime) -> dict[str, Any]:
    return {
        "status": Status.IN_DOUBT.value,
        "error_code": "IN_DOUBT",
        "error_description": "the process sending it stopped before Sinch answered",
        "updated_at": now,
    }


async def _settle(
    conn: AsyncConnection, campaign_id: int, worker_id: int, through: int, now: datetime
) -> tuple[int, int]:
    """A dead (or stopped) worker's IN_FLIGHT rows: up to its write-ahead mark IN_DOUBT, above
    it back to PENDING; the worker stopped. ``(in doubt, released)``."""
    mine = and_(
        C.campaign_id == campaign_id,
        C.status == Status.IN_FLIGHT.value,
        C.worker_id == worker_id,
        C.chunk.is_(None),  # batch chunks are settled by lookup
    )
    released = (
        await conn.execute(
            update(recipients)
            .where(mine, C.id > through)
            .values(status=Status.PENDING.value, attempts=C.attempts - 1, updated_at=now)
        )
    ).rowcount
    in_doubt = (
        await conn.execute(update(recipients).where(mine, C.id <= through).values(**_in_doubt(now)))
    ).rowcount
    await conn.execute(
        update(workers)
        .where(W.id == worker_id, W.stopped_at.is_(None))
        .values(stopped_at=now, stop_reason="LEASE_EXPIRED")
    )
    return int(in_doubt), int(released)


async def _live(
    conn: AsyncConnection, now: datetime, lease: float, campaign_id: int | None = None
) -> int:
    """Workers whose heartbeat is within the lease (of the campaign, or of every campaign:
    they all share one Sinch project's rate)."""
    query = select(func.count()).where(
        W.stopped_at.is_(None), W.heartbeat_at >= now - timedelta(seconds=lease)
    )
    if campaign_id is not None:
        query = query.where(W.campaign_id == campaign_id)
    return int(await conn.scalar(query) or 0)
