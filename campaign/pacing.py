"""The rate limit held where Sinch counts it: a sliding log of the moments requests are written.

Sinch counts requests per project in any sliding second, by arrival. A bucket that grants
ahead of the write cannot promise that: requests granted evenly may be written bunched (a loop
stall, a collection, a slow token), and then arrive bunched. :class:`SlidingWindow` counts what
was really written, plus what was granted and is not written yet, over the last
``1 + guard`` seconds, and grants only while that count is under the limit. Any
``1 + guard`` seconds of writes then hold at most ``limit`` requests, whatever the scheduling;
the guard covers what happens between our write and Sinch's count of it (the network's
jitter). A grant is written (:meth:`Grant.written`, from the HTTP client's trace of the headers
sent) or released unwritten (:meth:`Grant.release`: the request never left).
"""

from __future__ import annotations

import asyncio
import collections
import math
import time
from collections.abc import Callable

# Seconds added to Sinch's one-second window: the arrival jitter that the log must absorb. Each
# millisecond costs 0.1% of the rate; too short a guard lets a run go over (docs/benchmarks.md).
GUARD = 0.008


class Grant:
    """One request's place in the window: written once, or released unwritten."""

    __slots__ = ("_window",)

    def __init__(self, window: SlidingWindow | None) -> None:
        self._window = window

    def written(self) -> None:
        """The request's headers were written now (later calls do nothing)."""
        window, self._window = self._window, None
        if window is not None:
            window._written()

    def release(self) -> None:
        """The request was never written (or already was): its place is free."""
        window, self._window = self._window, None
        if window is not None:
            window._released()


class SlidingWindow:
    """At most ``limit`` requests written in any ``period + guard`` seconds."""

    def __init__(
        self,
        limit: float,
        *,
        period: float = 1.0,
        guard: float = GUARD,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.span = period + guard
        self._clock = clock
        self._writes: collections.deque[float] = collections.deque()
        self._pending = 0  # granted, not written or released yet
        self._turn = asyncio.Lock()  # grants in the order they were asked for
        self._changed = asyncio.Event()
        self.limit = limit

    @property
    def limit(self) -> int:
        return self._limit

    @limit.setter
    def limit(self, value: float) -> None:
        """Change the limit in place (a worker's share, as workers come and go).

        A lower limit keeps its part of what was written, spread as it was (every other write
        when it halves): this worker goes on at its new share at once, never more than the
        higher limit in any window; a worker that joins now adds at most its own share to
        what the others still count. Keeping every write would hold this worker back for
        half a second, the joining one unable to use it; keeping none would add a burst."""
        new = max(1, math.floor(value))
        old = getattr(self, "_limit", new)
        if new < old and self._writes:
            part = new / old
            self._writes = collections.deque(
                moment
                for index, moment in enumerate(self._writes)
                if math.floor((index + 1) * part) > math.floor(index * part)
            )
        self._limit = new
        self._changed.set()

    def fill(self) -> None:
        """Count ``limit`` writes spread evenly over the last span, as if this worker had been
        writing at its limit all along.

        For a worker that joins others: each of them, lowering its share, keeps only its part
        of what it wrote (:attr:`limit`), though Sinch still counts all of it. An empty log
        would let the newcomer burst into the part that the others dropped, before it leaves
        the window; filled, its places free only as fast as that part leaves, so that in any
        window all of them together write at most the rate."""
        now = self._clock()
        step = self.span / self._limit
        self._writes = collections.deque(
            now - self.span + step * (index + 1) for index in range(self._limit)
        )
        self._changed.set()

    async def acquire(self) -> Grant:
        """Wait for a place in the window."""
        async with self._turn:
            while True:
                now = self._clock()
                while self._writes and self._writes[0] <= now - self.span:
                    self._writes.popleft()
                if len(self._writes) + self._pending < self._limit:
                    self._pending += 1
                    return Grant(self)
                self._changed.clear()
                # The oldest write leaves the window then; a written or released grant, or a
                # new limit, may change the count sooner.
                wait = self._writes[0] + self.span - now if self._writes else None
                try:
                    async with asyncio.timeout(wait):
                        await self._changed.wait()
                except TimeoutError:
                    pass

    def _written(self) -> None:
        self._pending -= 1
        self._writes.append(self._clock())
        self._changed.set()  # a waiter now knows when this place frees

    def _released(self) -> None:
        self._pending -= 1
        self._changed.set()


def unlimited() -> Grant:
    """A grant of no window (no limit)."""
    return Grant(None)
