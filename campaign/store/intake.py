"""``store.ingest``: loaded rows stored, slice by slice (the SQL: :mod:`campaign.store.ingest`)."""

from __future__ import annotations

import asyncio
from datetime import datetime

import polars as pl

from campaign.store import ingest, staging
from campaign.store.edge import Group
from campaign.store.records import IngestCounts
from campaign.store.staging import Chunking, Staged
from campaign.store.suppression import Listed


class Ingest(Group):
    """``store.ingest``: :meth:`stage` a slice (CPU only), :meth:`write` it (one transaction)."""

    def stage(
        self,
        frame: pl.DataFrame,
        chunking: Chunking | None = None,
        entries_room: int | None = None,
        suppressed: Listed | None = None,
    ) -> Staged:
        """``frame`` (loaded rows) made ready for :meth:`write`: CPU only, no I/O, safe to
        run in a worker thread while another slice is being stored. ``entries_room`` and
        ``suppressed`` (the suppression list): see :func:`campaign.store.staging.stage`."""
        return staging.stage(frame, chunking, self.dialect, entries_room, suppressed)

    async def write(
        self,
        campaign_id: int,
        channel: str,
        frame: pl.DataFrame | Staged,
        now: datetime,
        chunking: Chunking | None = None,
    ) -> IngestCounts:
        """Store one slice of loaded rows (columns ``row, identity_raw, identity, reason,
        parameters``; or that slice already :meth:`stage`-d), in one transaction, with
        set-based SQL (:mod:`campaign.store.ingest`). Idempotent: rows already stored are left
        alone.

        A row with ``duplicate_of`` (decided by the load over the whole file:
        :mod:`campaign.loading.duplicates`) is stored DUPLICATE; the store does not look for
        duplicates itself. With ``chunking`` (batch mode), valid rows are put in chunks
        (:mod:`campaign.store.chunks`).
        """
        if frame.height == 0:
            return IngestCounts(0, 0, 0)
        if isinstance(frame, pl.DataFrame):
            frame = await asyncio.to_thread(self.stage, frame, chunking)
        async with self.writes.begin() as conn:
            counts = await ingest.ingest(conn, campaign_id, channel, frame, now, chunking)
        # A slice is some 2,000 pages of WAL: copied into the database beside the next one's
        # insert, not in the next commit (engine.Checkpointer).
        self._db.checkpoints.soon()
        return counts
