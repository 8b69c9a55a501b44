"""The load step: the recipients file into the store, a slice per transaction, the first pass
(duplicates over the whole file) begun as soon as the file is open."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import polars as pl

from campaign import campaignfile, loading
from campaign.config import Config
from campaign.errors import ConfigError
from campaign.loading import Duplicates
from campaign.messages.limits import text_limit
from campaign.sending import LoadFeed
from campaign.store.repository import CampaignRow, Chunking, Store
from campaign.store.staging import Staged

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Rows loaded, validated and stored at a time: each slice is one transaction. Memory while
# loading is a few slices (being prepared, and being stored), whatever the file's size.
INGEST_SLICE_ROWS = 50_000


def open_source(spec: campaignfile.CampaignSpec) -> loading.RecipientSource:
    return loading.open_recipients(
        loading.LoadSpec(
            path=spec.recipients,
            channel=spec.channel,
            identity_column=spec.identity_column,
            default_country=spec.default_country,
            parameters=spec.parameters,
            defaults=spec.defaults,
            text_limit=text_limit(spec.channel.value, spec.message),
            zones=spec.quiet_hours is not None,
            zone_column=spec.timezone_column,
            identities=spec.identities,
            delimiter=spec.delimiter,
            encoding=spec.encoding,
        )
    )


def say_assumed(source: loading.RecipientSource, out: Callable[[str], None]) -> None:
    """One line for what was told from a CSV file rather than said by the campaign."""
    if source.assumed is not None:
        out(
            f"{source.path}: read as {source.assumed} (say so with 'encoding' and "
            "'delimiter' in the campaign file)"
        )


async def slices(
    source: loading.RecipientSource,
    prepare: Callable[[pl.DataFrame], T],
    numbers: loading.NormalisedNumbers | None = None,
) -> AsyncGenerator[T, None]:
    """The slices, each read and ``prepare``-d in a worker thread, one ahead: the next slice is
    made ready while the caller stores this one, and the loop stays responsive. ``numbers``:
    the phone numbers that the first pass normalised."""
    iterator = source.slices(INGEST_SLICE_ROWS, numbers)

    def step() -> T | None:
        frame = next(iterator, None)
        return None if frame is None else prepare(frame)

    ahead = asyncio.ensure_future(asyncio.to_thread(step))
    try:
        while (item := await ahead) is not None:
            ahead = asyncio.ensure_future(asyncio.to_thread(step))
            yield item
    finally:
        # A thread cannot be stopped: the step under way ends before the caller goes on, and
        # its own error (the caller's, if any, is the one raised) is not left unretrieved.
        await asyncio.wait([ahead])
        if not ahead.cancelled():
            ahead.exception()


def chunking(spec: campaignfile.CampaignSpec, config: Config, key: str) -> Chunking | None:
    """Batch mode forms its chunks as it stores the rows, unless quiet hours decide who may
    be sent when (then chunks are formed of the rows due at each claim)."""
    if spec.mode != "batch" or spec.quiet_plan is not None:
        return None
    return Chunking(config.sending.batch_size, key, channel=spec.channel.value)


@dataclass
class Loaded:
    """What this run's load stored so far (the progress total grows with it)."""

    sendable: int = 0


# A load that runs beside the sending: it counts what it stores and feeds the sending.
LoadBeside = Callable[[Loaded, LoadFeed], Coroutine[Any, Any, bool]]


async def unless_stopped(work: Awaitable[T], stop: asyncio.Event) -> T | None:
    """``work``'s result, or None when ``stop`` is set first (``work`` is then cancelled)."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait([task, stopped], return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if task.done():
        return task.result()
    task.cancel()
    return None


class FirstPass:
    """The first pass over the file (:meth:`~campaign.loading.RecipientSource.duplicates`, which
    keeps the numbers it normalised), begun in a worker thread as soon as the file is open, so
    that it runs while the store opens and the credentials are checked. A run that turns out not
    to load stops it (between two slices); it is the owner of the kept numbers."""

    def __init__(self, source: loading.RecipientSource) -> None:
        self.source = source
        self.numbers = loading.NormalisedNumbers()
        self._stop = threading.Event()
        self._task: asyncio.Future[Duplicates] | None = None

    async def __aenter__(self) -> FirstPass:
        self._task = asyncio.ensure_future(
            asyncio.to_thread(self.source.duplicates, keep=self.numbers, stop=self._stop)
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def duplicates(self) -> Duplicates:
        assert self._task is not None, "the first pass was not begun"
        return await asyncio.shield(self._task)  # a stopped load leaves it to close()

    async def close(self) -> None:
        """Stop the pass if it still runs, wait for its thread, let the numbers go."""
        self._stop.set()
        if self._task is not None:
            await asyncio.wait([self._task])
            if not self._task.cancelled():
                self._task.exception()  # retrieved: a load that needed it raised it already
        self.numbers.close()


@dataclass
class Ingest:
    """Loading one campaign's file into the store."""

    store: Store
    campaign: CampaignRow
    first_pass: FirstPass
    chunks: Chunking | None
    stop: asyncio.Event
    clock: Callable[[], datetime]

    async def __call__(self, loaded: Loaded | None = None, feed: LoadFeed | None = None) -> bool:
        """A first pass decides duplicates, the second stores the rows, a slice per
        transaction, and tells ``feed`` of each. False when a stop came first: the campaign
        stays LOADING, and the next run resumes the load."""
        rows = 0
        started = time.monotonic()
        try:
            async with contextlib.aclosing(self._staged(feed)) as staged_slices:
                async for staged in staged_slices:
                    await self._store_slice(staged, loaded, feed)
                    rows += staged.height
                    if self.stop.is_set():
                        return False
            await self.store.campaigns.update(
                self.campaign.id, now=self.clock(), state="READY", total_rows=rows
            )
        finally:
            await self.first_pass.close()  # the kept numbers are let go with the load
            if feed is not None:
                feed.end()
        logger.info(
            "loaded recipients",
            extra={"action": "ingested", "rows": rows, "seconds": time.monotonic() - started},
        )
        return True

    async def _staged(self, feed: LoadFeed | None) -> AsyncGenerator[Staged, None]:
        found = await self.first_pass.duplicates()
        # Who is on the suppression list is never sent: marked as the rows are staged, in
        # both modes (a suppressed row joins no chunk), on any of a row's identities.
        suppressed = await self.store.suppression.identities()

        def stage(frame: pl.DataFrame) -> Staged:
            # The chunks' entries only for a sending beside the load, and only while there
            # is room to keep them (else they are read back when claimed).
            room = feed.room() if feed is not None else 0
            return self.store.ingest.stage(
                found.mark(frame), self.chunks, entries_room=room, suppressed=suppressed
            )

        source, numbers = self.first_pass.source, self.first_pass.numbers
        async with contextlib.aclosing(slices(source, stage, numbers)) as staged_slices:
            async for staged in staged_slices:
                yield staged

    async def _store_slice(
        self, staged: Staged, loaded: Loaded | None, feed: LoadFeed | None
    ) -> None:
        campaign = self.campaign
        counts = await self.store.ingest.write(
            campaign.id, campaign.channel, staged, self.clock(), self.chunks
        )
        if loaded is not None:
            loaded.sendable += counts.stored
        if feed is not None:
            first = counts.first_chunk
            feed.stored(
                {}
                if first is None
                else {first + n: entries for n, entries in staged.entries.items()}
            )


def warn_if_changed(
    campaign: CampaignRow, source: loading.RecipientSource, out: Callable[[str], None]
) -> None:
    """A campaign loaded already sends what it loaded; a file changed since is named, so that
    whoever edited it knows that the edit is not being sent."""
    if campaign.source_digest is not None and campaign.source_digest != source.digest:
        out(
            f"warning: {source.path} changed after campaign {campaign.name!r} loaded it: the"
            " campaign sends the rows it loaded then; to send the file as it is now, run it as"
            " a campaign of another name"
        )


def check_same_file(campaign: CampaignRow, source: loading.RecipientSource) -> None:
    """A load resumes only over the file it began with: duplicates are decided over the whole
    file, and rows are known by their position in it."""
    if campaign.source_digest is not None and campaign.source_digest != source.digest:
        raise ConfigError(
            f"{campaign.name}: {source.path} is not the file this campaign began loading"
            f" ({campaign.source}): it changed since. Put the original back to finish loading,"
            " or load the new file as a campaign of another name"
        )
