"""Outcomes of requests, written in batched transactions by one task.

Sinch's answers are facts: once gathered, an outcome is written or kept for the next write,
never dropped. The last write is retried for a while when the database is unavailable (a
lock held elsewhere, a full disk), and the recorder is told to stop, never cancelled: a write
cut short would lose outcomes of requests that Sinch has already answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from datetime import datetime

from campaign.errors import StoreError
from campaign.store import repository as repo

logger = logging.getLogger(__name__)

Written = repo.Outcome | repo.ChunkSent


class Recorder:
    def __init__(
        self,
        store: repo.Store,
        clock: Callable[[], datetime],
        worker: int | None,
        *,
        interval: float,
        patience: float,
    ) -> None:
        self._store = store
        self._clock = clock
        self._worker = worker
        self._interval = interval
        self._patience = patience  # how long the last write is retried
        self._outcomes: list[Written] = []
        self._lock = asyncio.Lock()
        self._done = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def add(self, outcome: Written) -> None:
        self._outcomes.append(outcome)

    def extend(self, outcomes: Iterable[Written]) -> None:
        self._outcomes.extend(outcomes)

    def start(self) -> None:
        self._task = asyncio.create_task(self._forever(), name="recorder")

    def check(self) -> None:
        """Raise the recorder's error if it failed: sending must stop."""
        if self._task is not None and self._task.done():
            self._task.result()
            raise RuntimeError("the outcome recorder stopped unexpectedly")

    def stop(self) -> None:
        """No more periodic writes: :meth:`finish` writes the rest."""
        self._done.set()

    async def finish(self) -> None:
        """Wait for the recorder's last write, then write what is left. Its error, if it
        failed, is already on its way (the sending raised it); the last write retries."""
        self._done.set()
        if self._task is not None:
            await asyncio.gather(asyncio.shield(self._task), return_exceptions=True)
        await asyncio.shield(self._final_flush())

    async def flush(self) -> None:
        """Write the outcomes gathered so far. Serialised: when it returns, every outcome
        gathered before the call is committed (the "anything left?" check relies on it)."""
        async with self._lock:
            if not self._outcomes:
                return
            outcomes, self._outcomes = self._outcomes, []
            try:
                await self._store.recipients.record(outcomes, self._clock(), self._worker)
            except BaseException:
                self._outcomes[:0] = outcomes  # not written: kept for the next flush
                raise
            sent = [o for o in outcomes if isinstance(o, repo.Sent | repo.ChunkSent)]
            if sent:
                await self._apply_waiting_events(sent)

    async def _final_flush(self) -> None:
        deadline = time.monotonic() + self._patience
        while True:
            try:
                await self.flush()
            except StoreError:
                if time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(0.5)
            else:
                return

    async def _apply_waiting_events(self, sent: list[repo.Sent | repo.ChunkSent]) -> None:
        """Callbacks that arrived before their sends were recorded can be applied now.

        A supervision point: the receiver (maybe another process) applies events too, and a
        conflict there must never stop the sending; what is not applied now waits for later.
        """
        try:
            await self._store.events.apply_for(
                message_ids=[
                    s.message_id for s in sent if isinstance(s, repo.Sent) and s.message_id
                ],
                keys=[s.key for s in sent if isinstance(s, repo.Sent) and s.key],
                batch_ids=[s.batch_id for s in sent if isinstance(s, repo.ChunkSent)],
                now=self._clock(),
            )
        except StoreError as exc:
            logger.warning(
                "could not apply waiting delivery events: %s",
                type(exc).__name__,
                extra={"action": "apply_events_failed"},
            )

    async def _forever(self) -> None:
        while not self._done.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._done.wait(), timeout=self._interval)
            await self.flush()
