"""The store: every read and write of campaign state, as short transactions, in query groups.

:class:`Store` is one object per process, composed of groups, each a small class of its own
module holding the engine, the write gate and the dialect (:class:`campaign.store.edge.Group`):

- ``store.campaigns`` (:mod:`campaign.store.campaigns`): find, list, create, update, cancel;
- ``store.recipients`` (:mod:`campaign.store.recipients`): claim, record outcomes, counts;
- ``store.chunks`` (:mod:`campaign.store.batches`): batch mode's chunks;
- ``store.workers`` (:mod:`campaign.store.workers`): workers, heartbeats, the dead settled;
- ``store.events`` (:mod:`campaign.store.events`): delivery callbacks stored and applied;
- ``store.ingest`` (:mod:`campaign.store.intake`): loaded rows stored, slice by slice;
- ``store.export`` (:mod:`campaign.store.export`): the report's read of every row;
- ``store.suppression`` (:mod:`campaign.store.suppression`): the suppression list (opt-outs).

Rows become plain dataclasses here and nothing SQL leaks out: a database failure leaves every
group as a :class:`campaign.errors.StoreError` (:mod:`campaign.store.edge`).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from campaign.store import edge
from campaign.store import engine as engine_mod
from campaign.store.batches import Chunks
from campaign.store.campaigns import Campaigns
from campaign.store.events import EventStore
from campaign.store.export import Export
from campaign.store.intake import Ingest
from campaign.store.recipients import Recipients, tables_datetime
from campaign.store.records import (
    REPORT_READ_COLUMNS,
    CampaignRow,
    Chunk,
    ChunkSent,
    Claim,
    Deferred,
    Failed,
    InDoubt,
    IngestCounts,
    Members,
    Outcome,
    Release,
    Retry,
    Sent,
    reject_code,
)
from campaign.store.staging import Chunking
from campaign.store.suppression import Suppression
from campaign.store.workers import Workers

# The records are defined beside the store and re-exported here: ``repo.Sent`` and friends.
__all__ = [
    "REPORT_READ_COLUMNS",
    "CampaignRow",
    "Chunk",
    "ChunkSent",
    "Chunking",
    "Claim",
    "Deferred",
    "Failed",
    "InDoubt",
    "IngestCounts",
    "Members",
    "Outcome",
    "Release",
    "Retry",
    "Sent",
    "Store",
    "reject_code",
    "tables_datetime",
]


class Store:
    """Campaign state in SQLite or Postgres. One per process; ``close`` it last."""

    def __init__(self, engine: AsyncEngine, url: str) -> None:
        self.engine = engine
        self.url = url
        self.writes = engine_mod.WriteGate(engine)
        self.checkpoints = engine_mod.Checkpointer(engine)
        db = edge.Handle(engine, self.writes, self.checkpoints, url, edge.Place.of(url))
        self.campaigns = Campaigns(db)
        self.recipients = Recipients(db)
        self.chunks = Chunks(db)
        self.workers = Workers(db)
        self.events = EventStore(db)
        self.ingest = Ingest(db)
        self.export = Export(db)
        self.suppression = Suppression(db)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @classmethod
    async def open(cls, url: str) -> Store:
        """The store of ``url``, its schema at head (a :class:`~campaign.errors.StoreError`
        when the database cannot be used)."""
        engine = engine_mod.create_engine_async(url)
        try:
            with edge.translating(edge.Place.of(url)):
                await engine_mod.prepare(engine, url)
        except BaseException:
            await engine.dispose()
            raise
        return cls(engine, url)

    async def close(self) -> None:
        await self.checkpoints.wait()
        with edge.translating(edge.Place.of(self.url)):
            await self.engine.dispose()
