"""A store call cut short by a cancellation (a run's end cancels its heartbeat and its queue
notes, whatever they are doing) finishes anyway, and leaves the database usable.

On SQLite a statement cancelled half-way left its connection holding the write lock until the
garbage collector freed its cursor: every later write waited out the busy timeout and failed
"database is locked" (a CI run of the fault soak hung at its end for 90 s that way)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from campaign.store import repository as repo
from campaign.store.engine import upgrade_sync
from campaign.store.tables import workers

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
LEASE = 60.0


async def _open(database_url: str) -> repo.Store:
    if database_url.startswith("postgresql"):
        upgrade_sync(database_url)
        return await repo.Store.open(database_url)
    # A lock left behind fails the next write in half a second, not in 30.
    return await repo.Store.open(database_url + "?timeout=0.5")


async def test_cancelled_store_writes_finish_and_leave_no_lock(database_url: str) -> None:
    store = await _open(database_url)
    try:
        campaign = await store.campaigns.create(
            name="c1", key="K1", mode="individual", channel="SMS", definition="{}",
            source="r.csv", now=NOW,
        )  # fmt: skip
        worker = await store.workers.register(campaign.id, "w", NOW, LEASE, exclusive=False)
        asked = 0  # the last beat asked for, in seconds after NOW

        async def beat_forever() -> None:
            nonlocal asked
            while True:
                asked += 1
                # An update, then a read in the same transaction: the pattern that a
                # cancellation cut short while the read's rows were not yet fetched.
                await store.workers.heartbeat(worker, NOW + timedelta(seconds=asked), LEASE)

        # Cancelled after 0.2, 0.4, ... ms: at every point of a write, from waiting for the
        # write lock to the commit.
        for turns in range(1, 80):
            task = asyncio.create_task(beat_forever())
            await asyncio.sleep(turns * 0.0002)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            assert task.cancelled()
            # The call that the cancellation interrupted was written whole.
            async with store.engine.connect() as conn:
                written = await conn.scalar(
                    select(workers.c.heartbeat_at).where(workers.c.id == worker)
                )
            assert written is not None
            written = written if written.tzinfo else written.replace(tzinfo=UTC)  # SQLite's
            assert written == NOW + timedelta(seconds=asked)
            # And the next write finds the database free (before: "database is locked").
            assert await store.workers.may_send(worker, turns)
    finally:
        await store.close()
