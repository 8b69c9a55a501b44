"""Sliding one-second windows: Sinch's per-project limit, the peak meter, and 429 storms.

Each window is a deque of monotonic timestamps; a request pops the ones older than a second
and appends its own, so the cost is O(1) amortised whatever the rate.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

WINDOW_S = 1.0


class SlidingWindowLimiter:
    """At most ``limit`` admitted requests in any sliding one-second window."""

    def __init__(self) -> None:
        self._admitted: deque[float] = deque()

    def admit(self, now: float, limit: int) -> bool:
        """Count the request at ``now`` and say whether it is within ``limit`` (0: no limit)."""
        if limit <= 0:
            return True
        admitted = self._admitted
        horizon = now - WINDOW_S
        while admitted and admitted[0] <= horizon:
            admitted.popleft()
        if len(admitted) >= limit:
            return False
        admitted.append(now)
        return True

    def retry_after(self, now: float, limit: int) -> int:
        """Whole seconds (at least 1) until the window has room again."""
        admitted = self._admitted
        if limit <= 0 or len(admitted) < limit:
            return 1
        # Room appears when the oldest request that keeps the window full leaves it.
        oldest = admitted[len(admitted) - limit]
        return max(1, math.ceil(oldest + WINDOW_S - now))


class PeakMeter:
    """The largest number of events seen in any sliding one-second window."""

    def __init__(self) -> None:
        self._seen: deque[float] = deque()
        self.peak = 0

    def record(self, now: float) -> None:
        """Count one event at ``now``."""
        seen = self._seen
        horizon = now - WINDOW_S
        while seen and seen[0] <= horizon:
            seen.popleft()
        seen.append(now)
        if len(seen) > self.peak:
            self.peak = len(seen)


def storm_remaining(now: float, epoch: float, every_s: float, duration_s: float) -> float:
    """Seconds left in the current 429 storm at ``now``, 0.0 outside a storm.

    The first storm starts ``every_s`` after ``epoch``, the next ``every_s`` later, and so
    on; each lasts ``duration_s``.
    """
    elapsed = now - epoch
    if every_s <= 0 or duration_s <= 0 or elapsed < every_s:
        return 0.0
    phase = elapsed % every_s
    return duration_s - phase if phase < duration_s else 0.0


@dataclass(frozen=True)
class Arrival:
    """One API request as the sandbox saw it: when it arrived and when it was answered
    (seconds since the sandbox started or was reset), the status, and for a 429 its
    ``Retry-After`` and whether a storm caused it. ``status`` 0: the connection was dropped."""

    method: str
    path: str
    arrived: float
    answered: float
    status: int
    retry_after: int | None = None
    storm: bool = False

    def to_json(self) -> dict[str, object]:
        return {
            "method": self.method,
            "path": self.path,
            "arrived": round(self.arrived, 6),
            "answered": round(self.answered, 6),
            "status": self.status,
            "retry_after": self.retry_after,
            "storm": self.storm,
        }


def early_requests(arrivals: Iterable[Arrival], tolerance: float) -> list[tuple[Arrival, Arrival]]:
    """Requests that arrived while an earlier 429's ``Retry-After`` was running:
    ``(the 429, the early request)`` pairs.

    The clock starts when the 429 was answered. A request arriving within ``tolerance`` of that
    may have left before the client read the answer, so it does not count.
    """
    ordered = sorted(arrivals, key=lambda a: a.arrived)
    limits = sorted(
        (a for a in ordered if a.status == 429 and a.retry_after), key=lambda a: a.answered
    )
    early: list[tuple[Arrival, Arrival]] = []
    active: Arrival | None = None  # the 429 whose wait ends last among those answered so far
    index = 0
    for request in ordered:
        while index < len(limits) and limits[index].answered + tolerance < request.arrived:
            candidate = limits[index]
            assert candidate.retry_after is not None
            if active is None or _until(candidate) > _until(active):
                active = candidate
            index += 1
        if active is not None and request.arrived < _until(active):
            early.append((active, request))
    return early


def _until(limited: Arrival) -> float:
    assert limited.retry_after is not None
    return limited.answered + limited.retry_after
