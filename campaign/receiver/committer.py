"""Group commit of received callbacks, then applying them to recipients off the request path.

Handlers :meth:`Committer.submit` an event and wait. One committer task takes everything queued
(up to ``max_batch``), stores it with one ``store.events.insert`` (one transaction) and resolves
every waiter: a request is answered 200 only once its event is durably stored. While one commit
runs, the next requests queue up, so the number of transactions falls as the load rises.

A failed insert fails its whole batch with :class:`Unavailable` (the handlers answer 503) and
the committer carries on: the next batch tries the database again. A value the database refuses
(``DataError``: too long, a NUL byte on Postgres) would fail every batch it lands in, so such a
batch is split until the one event is alone; that one gets :class:`Unstorable` (a 400).

Applying stored events to recipients is a separate task, woken by commits and run at most once
per ``apply_interval_s``; a failure there is logged and retried, never fatal, and never delays
an answer. Events that match no recipient are tried again while any wait, and given up after
``match_window_s`` (counted in ``unmatched``, logged at most once a minute). On SQLite (one
writer) the two tasks take turns through a lock instead of spinning on the database's busy
timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from campaign.errors import StoreError, StoreRefusedError
from campaign.receiver.settings import ReceiverSettings, ReceiverStats
from campaign.store import repository
from campaign.store.events import NewEvent

log = logging.getLogger(__name__)

UNMATCHED_LOG_S = 60.0  # events given up are logged at most this often (the count is exact)


class Unavailable(Exception):
    """The event was not stored (database down, locked, full, or the receiver stopping)."""


class Unstorable(Exception):
    """The database refuses this event's values; sending it again cannot succeed."""


@dataclass(slots=True)
class _Item:
    event: NewEvent
    future: asyncio.Future[None]


def describe_error(exc: BaseException) -> str:
    """A one-line description of a database error, without the SQL or its parameters
    (they hold callback bodies)."""
    if isinstance(exc, StoreError) and exc.__cause__ is not None:
        exc = exc.__cause__  # the store's edge keeps the database's error as the cause
    orig = getattr(exc, "orig", None) or exc
    first_line = str(orig).strip().splitlines()[0] if str(orig).strip() else ""
    return f"{type(orig).__name__}: {first_line}"[:300]


class Committer:
    """The group committer and the applier of one receiver.

    Construct anywhere; :meth:`start` inside the running loop; :meth:`close` drains the queue
    (every queued event is committed or failed, none is left waiting) and applies once more.
    """

    def __init__(
        self, store: repository.Store, settings: ReceiverSettings, stats: ReceiverStats
    ) -> None:
        self._store = store
        self._settings = settings
        self._stats = stats
        self._queue: list[_Item] = []
        self._closing = False
        self._apply_again = True  # at start: events stored before a restart may be waiting
        self._unapplied = False  # commits since the last apply
        self._outage_failures: int | None = None  # failed commits in the current outage
        self._unmatched_unlogged = 0
        self._unmatched_log_at = 0.0  # time.monotonic() from which the next may be logged
        self._wake: asyncio.Event | None = None
        self._apply_wanted: asyncio.Event | None = None
        self._stopping: asyncio.Event | None = None
        self._write_lock: AbstractAsyncContextManager[Any] = contextlib.nullcontext()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Start the committer and applier tasks on the running loop."""
        self._wake = asyncio.Event()
        self._apply_wanted = asyncio.Event()
        self._apply_wanted.set()
        self._stopping = asyncio.Event()
        if self._store.dialect == "sqlite":
            self._write_lock = asyncio.Lock()
        self._tasks = [
            asyncio.create_task(self._run_commits(), name="receiver-committer"),
            asyncio.create_task(self._run_applies(), name="receiver-applier"),
        ]

    async def submit(self, event: NewEvent) -> None:
        """Queue ``event`` for the next group commit and return once it is stored.

        Raises :class:`Unavailable` or :class:`Unstorable` when it was not stored.
        """
        if self._closing or self._wake is None:
            raise Unavailable("the receiver is stopping")
        if len(self._queue) >= self._settings.max_pending:
            raise Unavailable("too many events waiting for the database")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(_Item(event, future))
        self._stats.pending += 1
        self._wake.set()
        await future

    async def close(self) -> None:
        """Commit what is queued, stop both tasks, then apply once more (best effort)."""
        self._closing = True
        if self._wake is None or self._apply_wanted is None or self._stopping is None:
            return
        self._wake.set()
        commits, applies = self._tasks
        await commits
        self._stopping.set()
        self._apply_wanted.set()
        await applies
        if self._unapplied:
            # One more slice; a larger backlog stays stored and waits for the next applier.
            await self._apply()

    # --- committing ---------------------------------------------------------------------------

    async def _run_commits(self) -> None:
        assert self._wake is not None
        try:
            while True:
                if not self._queue:
                    if self._closing:
                        return
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                size = self._settings.max_batch
                batch = self._queue[:size]
                del self._queue[:size]
                await self._commit(batch)
        finally:
            # Only on a bug or a cancelled loop: nobody may be left waiting forever.
            left, self._queue = self._queue, []
            self._finish(left, Unavailable("the receiver stopped"))

    async def _commit(self, batch: list[_Item]) -> None:
        stats = self._stats
        started = time.perf_counter()
        try:
            async with self._write_lock:
                added = await self._store.events.insert([item.event for item in batch])
        except StoreRefusedError as exc:
            if len(batch) > 1:
                half = len(batch) // 2
                await self._commit(batch[:half])
                await self._commit(batch[half:])
                return
            log.error(
                "the database refused a callback (message %s): %s",
                batch[0].event.event.message_id,
                describe_error(exc),
                extra={"action": "receiver.unstorable"},
            )
            self._finish(batch, Unstorable(describe_error(exc)))
        except Exception as exc:  # supervision point: any database failure is a 503, not a crash
            stats.commit_failures += 1
            stats.store_ok = False
            if self._outage_failures is None:
                self._outage_failures = 0
                log.warning(
                    "cannot store callbacks, answering 503: %s",
                    describe_error(exc),
                    extra={"action": "receiver.store_failed"},
                )
            self._outage_failures += 1
            self._finish(batch, Unavailable(describe_error(exc)))
        else:
            stats.commits += 1
            stats.stored += added
            stats.duplicates += len(batch) - added
            stats.largest_commit = max(stats.largest_commit, len(batch))
            stats.commit_seconds.observe(time.perf_counter() - started)
            stats.commit_size.observe(len(batch))
            stats.store_ok = True
            if self._outage_failures is not None:
                log.info(
                    "storing callbacks again after %d failed commits",
                    self._outage_failures,
                    extra={"action": "receiver.store_recovered"},
                )
                self._outage_failures = None
            self._finish(batch, None)
            self._unapplied = True
            assert self._apply_wanted is not None
            self._apply_wanted.set()

    def _finish(self, batch: list[_Item], error: Exception | None) -> None:
        self._stats.pending -= len(batch)
        for item in batch:
            if item.future.done():  # its request was cancelled; the event is stored anyway
                continue
            if error is None:
                item.future.set_result(None)
            else:
                item.future.set_exception(type(error)(*error.args))

    # --- applying -----------------------------------------------------------------------------

    async def _run_applies(self) -> None:
        wanted, stopping = self._apply_wanted, self._stopping
        assert wanted is not None
        assert stopping is not None
        backlog = False
        while True:
            if not backlog:
                timeout = self._settings.apply_retry_s if self._apply_again else None
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await wanted.wait()
            if stopping.is_set():
                return
            wanted.clear()
            backlog = await self._apply()
            if not backlog:
                # Let commits pile up for a moment: one apply then covers all of them.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._settings.apply_interval_s):
                        await stopping.wait()

    async def _apply(self) -> bool:
        """Apply one slice of waiting events; True when more could be applied right away.

        Slices are small (``apply_batch``) so that a commit never waits long for the lock:
        with a backlog the applier and the committer take turns.
        """
        stats = self._stats
        self._unapplied = False
        now = datetime.fromtimestamp(self._settings.clock(), UTC)
        try:
            async with self._write_lock:
                result = await self._store.events.apply(
                    now,
                    limit=self._settings.apply_batch,
                    window=timedelta(seconds=self._settings.match_window_s),
                )
        except Exception as exc:  # supervision point: applying is retried later, never fatal
            stats.apply_failures += 1
            self._apply_again = True
            log.warning(
                "applying events failed, will retry: %s",
                describe_error(exc),
                extra={"action": "receiver.apply_failed"},
            )
            return False
        stats.applied += result.applied
        stats.waiting = result.waiting
        self._apply_again = result.waiting > 0
        if result.applied:
            log.debug(
                "applied %d events (%d recipients changed, %d waiting)",
                result.applied,
                result.changed,
                result.waiting,
                extra={"action": "receiver.apply"},
            )
        if result.unmatched:
            stats.unmatched += result.unmatched
            self._log_unmatched(result.unmatched)
        return (result.applied > 0 or result.unmatched > 0) and result.waiting > 0

    def _log_unmatched(self, count: int) -> None:
        self._unmatched_unlogged += count
        moment = time.monotonic()
        if moment < self._unmatched_log_at:
            return
        log.warning(
            "%d delivery events matched no recipient within %g h and are no longer tried"
            " (kept in the event table; %d so far): message ids this database never sent?",
            self._unmatched_unlogged,
            self._settings.match_window_s / 3600,
            self._stats.unmatched,
            extra={"action": "receiver.unmatched"},
        )
        self._unmatched_unlogged = 0
        self._unmatched_log_at = moment + UNMATCHED_LOG_S
