"""The rate a campaign sends at: a sliding log that holds the limit where Sinch counts it
(:mod:`campaign.pacing`), a small leaky bucket that spreads requests evenly under it, and the
pause that a 429 imposes on every sender."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable

from aiolimiter import AsyncLimiter

from campaign import pacing

# How far under the window's budget the pacer leaks, so that the window rarely has to hold a
# request back: one request a second at 800/s, the same part of any worker's share.
SPREAD_MARGIN = 0.00125

# The most requests the pacer lets through at once: what it catches up after a stall of the
# loop (7.5 ms at 800/s). On a 2-core machine shared with other busy processes the sender is
# preempted for 5 to 10 ms several times a second, and a bucket of 4 lost 1% of the rate
# there; a larger one is still held by the window (docs/benchmarks.md).
BUCKET = 6


def make_limiter(rate: float, guard: float = 0.0) -> AsyncLimiter:
    """The pacer: a leaky bucket that spreads requests evenly at just under ``rate`` per
    ``1 + guard`` seconds, the most that the sliding window (:mod:`campaign.pacing`) lets
    through, so that the window, which holds the limit, rarely has to make a request wait.

    ``AsyncLimiter(rate, 1)`` would let a full second's worth through at once: the window
    would then send in bursts, each request of a burst a guard's width from going over. A
    bucket of :data:`BUCKET` requests catches up after the loop's short stalls and no more.
    """
    budget = rate / (1.0 + guard)
    bucket = max(1, min(BUCKET, math.floor(budget / 25)))
    leak = budget * (1 - SPREAD_MARGIN) if budget > 2 * bucket else budget / 2
    return AsyncLimiter(bucket, bucket / leak)


class Pacer:
    """Places in the rate window, one per request, at this worker's share of the rate."""

    def __init__(self, rate: float | None, guard: float = pacing.GUARD) -> None:
        self._guard = guard
        self.rate: float | None = None
        self._limiter: AsyncLimiter | None = None
        self._log: pacing.SlidingWindow | None = None
        self._paused_until = 0.0
        self._joining: Callable[[], Awaitable[None]] | None = None
        self._join_turn = asyncio.Lock()
        self.set_rate(rate)

    def set_rate(self, rate: float | None) -> None:
        """Send at ``rate`` from now on (this worker's share, as workers come and go)."""
        if rate == self.rate:
            return
        self.rate = rate
        self._limiter = make_limiter(rate, self._guard) if rate else None
        if not rate:
            self._log = None
        elif self._log is None:
            self._log = pacing.SlidingWindow(rate, guard=self._guard)
        else:  # in place: its part of what was written in the last second still counts
            self._log.limit = rate

    def join(self, counted: Callable[[], Awaitable[None]]) -> None:
        """This worker starts beside others that send. No place is granted before ``counted``
        returns (the others count this one: they send at their lower share), and from then on
        as if it had been writing at its share all along
        (:meth:`campaign.pacing.SlidingWindow.fill`). Waiting here, at the first request
        rather than before the run's setup, the setup overlaps the wait."""
        self._joining = counted

    def admits(self, seconds: float) -> int | None:
        """How many requests the rate admits in ``seconds`` (None: no limit)."""
        return None if self.rate is None else max(1, math.ceil(self.rate * seconds))

    async def grant(self) -> pacing.Grant:
        """A place in the rate window, after the bucket and any 429 pause."""
        await self._wait_if_paused()
        if self._joining is not None:
            await self._joined()
        if self._limiter is None or self._log is None:
            return pacing.unlimited()
        await self._limiter.acquire()
        grant = await self._log.acquire()
        await self._wait_if_paused()  # a 429 may have come while this one waited its turn
        return grant

    async def _joined(self) -> None:
        async with self._join_turn:  # one waits; the others find it done
            if self._joining is None:
                return
            await self._joining()
            self._joining = None
            if self._log is not None:
                self._log.fill()

    def pause(self, delay: float) -> None:
        """Every sender waits ``delay`` seconds (Sinch said 429)."""
        self._paused_until = max(self._paused_until, time.monotonic() + delay)

    async def _wait_if_paused(self) -> None:
        # A loop, not an event: another 429 may push the deadline out while we sleep.
        while (delay := self._paused_until - time.monotonic()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(delay)
