"""Pacing by the app's MT queue: what Sinch accepted waits there, and leaves towards the
channels at the app's outbound rate (20-25 messages/s unless raised), whatever the request
rate. A queue that fills refuses every send (429), so the run keeps it below ``queue_share`` of
its limit (the mark). Reading the queue takes a request, and a batch run can submit thousands of
messages between two readings, so the gate keeps a model of it instead: the last reading, plus
what it let in since, less what drained at the outbound rate (never below empty). A send waits
until its messages fit under the mark; the model is put right at each reading (every second
when the queue is past half the mark, every five below), counting what was let in while the
reading was under way (it may not have arrived when Sinch counted). Each worker takes its part
of the room and of the drain.

:func:`waiting` is the model (pure); :class:`QueueGate` holds sends to it beside the request
pacer; :class:`QueueWatch` reads the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from campaign import errors
from campaign.models import AppQueue
from campaign.sending.pacer import Pacer
from campaign.sinch.client import AppInfo, SinchClient

logger = logging.getLogger(__name__)

# Seconds between readings: often when the queue is past half its mark, seldom below (each
# reading is a request). Between readings the gate counts what it let in and what drained.
NEAR_EVERY_S = 1.0
FAR_EVERY_S = 5.0
# A queue read at 95% of its limit or more is full: a 429 without Retry-After is then its.
FULL_AT = 0.95
# Refused for a full queue with no reading to go by (queue_share off, or an app whose queue
# Sinch does not show): wait this long, doubling with each refusal in a row, up to the cap.
BLIND_WAIT_S = 1.0
BLIND_WAIT_MAX_S = 30.0


@dataclass(frozen=True)
class Reading:
    """The app's queue as Sinch last said: messages waiting, its limit, its drain rate."""

    size: int
    limit: int
    outbound: int

    @classmethod
    def of(cls, app: AppInfo) -> Reading | None:
        if app.queue_size is None or not app.queue_limit or not app.outbound_rate:
            return None
        return cls(app.queue_size, app.queue_limit, app.outbound_rate)


def waiting(size: float, outbound: float, elapsed: float) -> float:
    """Messages still queued ``elapsed`` seconds after ``size`` were, draining at
    ``outbound`` per second (an empty queue drains nothing: no credit for later)."""
    return max(0.0, size - outbound * elapsed)


class QueueGate:
    """Holds each send until the app's queue has room for its messages under the mark, as
    the model says: the last reading, plus what was let in since, less what drained (no
    reading: open). Each worker models its ``part`` of the queue, the mark and the drain."""

    def __init__(self, stop: asyncio.Event, clock: Callable[[], float] = time.monotonic) -> None:
        self._stop = stop
        self._clock = clock
        self._reading: Reading | None = None
        self._mark = 0.0  # this worker's part of the mark
        self._drain = 0.0  # and of the drain, per second
        self._size = 0.0  # its part of the queue, as the model has it at ``_at``
        self._at = 0.0
        self._full = 0.0  # its part of the queue's limit
        self._part = 1.0
        self.longest = 0.0  # the longest wait in the queue of a message let in, by the model
        self._closed_until = 0.0  # refused as full with no reading: closed until then
        self._refusals = 0  # refusals as full in a row
        self.admitted = 0  # messages let in, ever
        self.wake = asyncio.Event()  # set when the queue must be read at once

    def update(self, reading: Reading, share: float, part: float, since: int = 0) -> None:
        """Start the model again from ``reading``, plus ``since`` messages let in after it
        was asked for (counted twice when they had arrived: the safe side)."""
        self._reading = reading
        self._mark = part * share * reading.limit
        self._drain = part * reading.outbound
        self._full = part * reading.limit
        self._part = part
        self._size, self._at = part * reading.size + since, self._clock()

    def queue(self) -> AppQueue | None:
        """The whole queue now, by this worker's model of its part (None: no reading)."""
        reading = self._reading
        if reading is None:
            return None
        return AppQueue(round(self._now_size() / self._part), reading.limit, reading.outbound)

    def refused(self) -> None:
        """Sinch refused a send because the queue is full: the model has it full (or, with no
        reading, the gate closes for a while, longer each time in a row) until a reading,
        asked for at once, says otherwise."""
        self.wake.set()
        if self._reading is not None:
            self._size = max(self._now_size(), self._full)
            self._refusals += 1
        elif self._clock() >= self._closed_until:  # else sent before it closed: no news
            wait = min(BLIND_WAIT_MAX_S, BLIND_WAIT_S * 2**self._refusals)
            self._closed_until = self._clock() + wait
            self._refusals += 1

    def accepted(self) -> None:
        """Sinch accepted a send: the queue had room."""
        self._refusals = 0

    def read_full(self) -> bool:
        """Whether the queue was full when last read (or refused a send since)."""
        reading = self._reading
        return self._refusals > 0 or (
            reading is not None and reading.size >= FULL_AT * reading.limit
        )

    def near(self) -> bool:
        """Whether the queue is past half its mark, by the model (read it often then)."""
        return self._reading is not None and self._now_size() >= self._mark / 2

    def wait(self) -> float:
        """Seconds a message let in now waits in the queue before it leaves for the channel,
        by the model (0: no reading)."""
        if self._reading is None or not self._drain:
            return 0.0
        return self._now_size() / self._drain

    def rate(self) -> float | None:
        """Messages per second this worker may submit in the long run (None: open)."""
        return None if self._reading is None else self._drain

    def _now_size(self) -> float:
        now = self._clock()
        self._size, self._at = waiting(self._size, self._drain, now - self._at), now
        return self._size

    async def admit(self, messages: int) -> None:
        """Wait until ``messages`` fit under the mark (or a stop). A request larger than
        this worker's part of the mark waits for the queue to be empty of its part."""
        while not self._stop.is_set():
            if (closed := self._closed_until - self._clock()) > 0:
                await self._pause(closed)
                continue
            if self._reading is None:
                return
            size = self._now_size()
            need = min(float(messages), self._mark)
            if size + need <= self._mark:
                self._size += messages
                self.admitted += messages
                self.longest = max(self.longest, self._size / self._drain)
                return
            await self._pause(min((size + need - self._mark) / self._drain, 1.0))

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=max(seconds, 0.001))


class QueueWatch:
    """Reads the app's queue (each reading a request, paced as the sends are) and sets the
    gate's rate from it."""

    def __init__(
        self,
        client: SinchClient,
        pacer: Pacer,
        gate: QueueGate,
        *,
        share: float,
        full_rate: float | None,
    ) -> None:
        self._client = client
        self._pacer = pacer
        self._gate = gate
        self._share = share
        self._full_rate = full_rate  # the campaign's request rate, of which ours is a part

    def seed(self, app: AppInfo) -> None:
        """Start from a reading taken already (the preflight's)."""
        reading = Reading.of(app)
        if reading is not None:
            self._gate.update(reading, self._share, self._part())

    async def run(self) -> None:
        """Read, update, sleep; until cancelled. A failed reading leaves the gate counting
        from the last one."""
        while True:
            with contextlib.suppress(TimeoutError):  # a refusal for a full queue: read now
                every = NEAR_EVERY_S if self._gate.near() else FAR_EVERY_S
                await asyncio.wait_for(self._gate.wake.wait(), timeout=every)
            self._gate.wake.clear()
            before = self._gate.admitted
            reading = await self._read()
            if reading is not None:
                since = self._gate.admitted - before
                self._gate.update(reading, self._share, self._part(), since)

    def _part(self) -> float:
        """This worker's part of the campaign's sending (its share of the request rate)."""
        rate = self._pacer.rate
        if not rate or not self._full_rate:
            return 1.0
        return min(1.0, rate / self._full_rate)

    async def _read(self) -> Reading | None:
        grant = await self._pacer.grant()
        try:
            app = await self._client.app(written=grant.written)
        except errors.SinchError as exc:
            if isinstance(exc, errors.SinchRateLimitedError):
                # The project's rate counts this read too: every sender waits the 429 out.
                self._pacer.pause(exc.retry_after if exc.retry_after is not None else 1.0)
            logger.warning(
                "could not read the app's queue: %s", exc, extra={"action": "queue_unread"}
            )
            return None
        finally:
            grant.release()
        return Reading.of(app)
