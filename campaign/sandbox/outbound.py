"""The app's MT (outbound) queue: what Sinch accepted and has not yet passed to the channel.

Sinch holds each app's accepted messages in a queue of 500,000 and drains it towards the
channels at the app's ``rate_limits.outbound`` (20-25 messages/s by default), whatever the
request rate. The sandbox models it with a virtual clock instead of a task: a message admitted
at ``now`` leaves at ``max(now, last_leave) + 1/rate``, first in first out, and nothing needs
to run for it to leave. Admissions that follow one another without a gap are kept as one run
(first leave, count, interval), so a queue of 500,000 messages costs a few tuples, and a queue
that keeps up costs one run at a time.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass


@dataclass
class _Run:
    """``count`` messages leaving ``interval`` seconds apart, the first at ``first``."""

    first: float
    count: int
    interval: float

    @property
    def last(self) -> float:
        return self.first + (self.count - 1) * self.interval

    def left_by(self, now: float) -> int:
        """How many of this run have left at ``now`` (a message leaves at its leave time)."""
        if now < self.first:
            return 0
        return min(self.count, math.floor((now - self.first) / self.interval) + 1)


class OutboundQueue:
    """One app's MT queue on the monotonic clock (plain data: nothing bound to a loop)."""

    def __init__(self) -> None:
        self._runs: deque[_Run] = deque()
        self._total = 0  # messages in ``_runs``, left or not
        self._last_leave = -math.inf
        # When each message whose ttl ran out in the queue gets its turn (in order, as turns
        # are), and how many of them have had it: they count as expired from then on.
        self._expiring: deque[float] = deque()
        self._expired = 0

    def expire_at(self, turn: float) -> None:
        """A message whose ttl runs out before its turn at ``turn`` expires then."""
        self._expiring.append(turn)

    def expired(self, now: float) -> int:
        """Messages whose ttl ran out in the queue and whose turn has come by ``now``."""
        while self._expiring and self._expiring[0] <= now:
            self._expiring.popleft()
            self._expired += 1
        return self._expired

    def size(self, now: float) -> int:
        """Messages admitted and not yet left at ``now``."""
        runs = self._runs
        while runs and runs[0].last <= now:
            self._total -= runs.popleft().count
        if not runs:
            return 0
        return self._total - runs[0].left_by(now)

    def admit(self, count: int, now: float, rate: float) -> tuple[float, float]:
        """Queue ``count`` messages at ``now``: ``(first leave time, interval)``; message ``i``
        of them leaves at ``first + i * interval``. The caller has checked the room."""
        interval = 1.0 / rate
        if count <= 0:
            return now + interval, interval
        self.size(now)  # forget the runs that have left, so the deque stays short
        first = max(now, self._last_leave) + interval
        tail = self._runs[-1] if self._runs else None
        if tail is not None and self._last_leave >= now and tail.interval == interval:
            # Straight after the tail, at the same pace: one longer run.
            tail.count += count
        else:
            self._runs.append(_Run(first, count, interval))
        self._total += count
        self._last_leave = first + (count - 1) * interval
        return first, interval

    def clear(self) -> None:
        """Forget every queued message."""
        self._runs.clear()
        self._total = 0
        self._last_leave = -math.inf
        self._expiring.clear()
        self._expired = 0
