"""``store.campaigns``: the campaigns themselves (one row each), and cancelling one."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from campaign.models import Status
from campaign.store import chunks
from campaign.store.edge import Group
from campaign.store.records import CampaignRow
from campaign.store.tables import batches, campaigns, recipients

C = recipients.c
B = batches.c


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
    ) -> CampaignRow:
        """Create the campaign, or return the one another process created first."""
        values = {
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
