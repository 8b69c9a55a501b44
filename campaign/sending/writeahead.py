"""Write ahead before a request leaves, when this process is one of several workers
(see :mod:`campaign.store.workers`): a worker that dies leaves IN_DOUBT only what it may have
sent, and a worker declared dead sends nothing more."""

from __future__ import annotations

import asyncio
import bisect
import math
import operator
from collections.abc import Callable, Sequence

from campaign.store import repository as repo

_id = operator.attrgetter("id")

# Each mark covers this much more of the requests to come (at the run's rate).
MARK_S = 0.025
# The next mark is written in the background once what is covered lasts no longer than this:
# a mark waits for the store's write lock behind a claim or a recorder flush, 10 to 25 ms on
# a busy 2-core machine, and the requests must not wait for it (docs/benchmarks.md).
LEAD_S = 0.05


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
        self._upcoming: Sequence[repo.Claim] = []  # the next claim, when it was taken ahead

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
        """Write ahead before ``claims[index]`` leaves. Each mark covers what the limiter lets
        through in 25 ms more (:data:`MARK_S`), and the next one is written in the background
        while what is covered still lasts 50 ms (:data:`LEAD_S`), so requests do not wait for
        it: a worker that dies leaves at most about 75 ms of requests IN_DOUBT that it had not
        sent yet. False: a stop came meanwhile (or this worker was declared dead, which stops
        it): send nothing more."""
        if self._worker is None:
            return True
        rate = self._rate() or 2000.0
        ahead = max(2, math.ceil(rate * MARK_S))
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
        if self._announcing is None:
            self._announce_next(claims, index, rate, ahead)
        return True

    def _announce_next(
        self, claims: Sequence[repo.Claim], index: int, rate: float, ahead: int
    ) -> None:
        """Start the next mark in the background when what is covered, from ``claims[index]``
        on and into the next claim, lasts less than :data:`LEAD_S`."""
        end = bisect.bisect_right(claims, self._announced, lo=index, key=_id)
        rows, start, covered = claims, end, end - index
        if end == len(claims):  # this claim is covered to its end: on into the next
            rows = self._upcoming
            start = bisect.bisect_right(rows, self._announced, key=_id)
            covered += start
        if covered <= max(1, math.ceil(rate * LEAD_S)) and start < len(rows):
            self._announcing = asyncio.ensure_future(self._mark(rows, start, ahead))

    def follow(self, claimed: asyncio.Future[list[repo.Claim]]) -> None:
        """The next claim, taken while this one is paced out (a done callback): once this one
        is covered to its end, the marks go on into it, so that its first request does not
        wait for a mark either."""
        if not claimed.cancelled() and claimed.exception() is None:
            self._upcoming = claimed.result()

    def followed(self) -> None:
        """The claim that :meth:`follow` gave is now the one paced out (or was given back)."""
        self._upcoming = []

    async def settle(self) -> None:
        """Wait for a mark being written (the run is ending)."""
        if self._announcing is not None:
            await asyncio.gather(self._announcing, return_exceptions=True)

    async def _mark(self, claims: Sequence[repo.Claim], start: int, ahead: int) -> None:
        through = claims[min(start + ahead, len(claims)) - 1].id
        if await self.may_send(through):  # if not, it has set the stop
            self._announced = max(self._announced, through)
