"""A queue of items that become available at a given time.

Delivery callbacks, their retries and scheduled batches all wait here instead of in one
sleeping task each, so a million pending callbacks cost a million heap entries, not a million
tasks.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class DueQueue(Generic[T]):
    """A heap of ``(due, item)`` read by one consumer with :meth:`get`.

    ``clock`` gives the time that ``due`` values are on (``time.monotonic`` or ``time.time``).
    Create it inside the running loop (it owns an :class:`asyncio.Event`).
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._heap: list[tuple[float, int, T]] = []
        self._order = itertools.count()
        self._changed = asyncio.Event()

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, due: float, item: T) -> None:
        """Make ``item`` available at time ``due`` (on the queue's clock)."""
        heapq.heappush(self._heap, (due, next(self._order), item))
        if self._heap[0][2] is item:
            self._changed.set()

    def clear(self) -> None:
        """Forget every pending item."""
        self._heap.clear()
        self._changed.set()

    async def get(self) -> T:
        """The next item, once its time has come."""
        while True:
            self._changed.clear()
            timeout: float | None = None
            if self._heap:
                timeout = self._heap[0][0] - self._clock()
                if timeout <= 0:
                    return heapq.heappop(self._heap)[2]
            try:
                async with asyncio.timeout(timeout):
                    await self._changed.wait()
            except TimeoutError:
                pass
