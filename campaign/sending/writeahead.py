"""Write ahead before a request leaves, when this process is one of several workers
(see :mod:`campaign.store.workers`): a worker that dies leaves IN_DOUBT only what it may have
sent, and a worker declared dead sends nothing more."""

from __future__ import annotations

import asyncio
import bisect
import math
from collections.abc import Callable, Sequence

from campaign.store import repository as repo


class WriteAhead:
    def __init__(
        self,
        store: repo.Store,
        worker: int | None,
        stop: asyncio.Event,
        rate: Callable[[], float | None],
    ) -> None:
        self._store = store
        self._worker = worker
        self._stop = stop
        self._rate = rate
        self._announced = 0  # the mark: claims up to this id may have been sent
        self._announcing: asyncio.Future[None] | None = None  # the next mark, being written

    async def may_send(self, through: int | None = None) -> bool:
        """Write ahead through row ``through`` (or only check that this worker is alive).
        False when this worker was declared dead: it stops, and what it holds is settled by
        the others."""
        if self._worker is None:
            return True
        if await self._store.workers.may_send(self._worker, through):
            return True
        self._stop.set()
        return False

    async def announce(self, claims: Sequence[repo.Claim], index: int) -> bool:
        """Write ahead before ``claims[index]`` leaves. A mark covers what the limiter lets
        through in the next 25 ms, and the next one is written in the background once half of
        that is used, so requests rarely wait for it: a worker that dies leaves at most about
        40 ms of requests IN_DOUBT that it had not sent yet. False: a stop came meanwhile (or
        this worker was declared dead, which stops it): send nothing more."""
        if self._worker is None:
            return True
        ahead = max(2, math.ceil((self._rate() or 2000.0) * 0.025))
        while claims[index].id > self._announced and not self._stop.is_set():
            if self._announcing is None or self._announcing.done():
                if self._announcing is not None and not self._announcing.cancelled():
                    # A background mark that failed is retrieved here (else its task would be
                    # reported as an exception never retrieved); this mark's write decides.
                    self._announcing.exception()
                self._announcing = asyncio.ensure_future(self._mark(claims, index, ahead))
            await asyncio.shield(self._announcing)
        if self._stop.is_set():
            return False
        if self._announcing is not None and self._announcing.done():
            # A background mark that failed stops the run, as a failed record does, once a
            # request needs a new mark (its write raises in the loop above), not before: what
            # the last mark written covers leaves first. The next run must take those as
            # IN_DOUBT (they may have left), so they had better have left.
            self._announcing.exception()
            self._announcing = None
        covered = bisect.bisect_right([c.id for c in claims], self._announced) - index
        if covered <= ahead // 2 and self._announcing is None and index + covered < len(claims):
            self._announcing = asyncio.ensure_future(self._mark(claims, index + covered, ahead))
        return True

    async def settle(self) -> None:
        """Wait for a mark being written (the run is ending)."""
        if self._announcing is not None:
            await asyncio.gather(self._announcing, return_exceptions=True)

    async def _mark(self, claims: Sequence[repo.Claim], start: int, ahead: int) -> None:
        through = claims[min(start + ahead, len(claims)) - 1].id
        if await self.may_send(through):  # if not, it has set the stop
            self._announced = max(self._announced, through)
