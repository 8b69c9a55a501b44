"""Individual sends: claim -> rate limit -> send -> record; stop, drain, resume.

- Rows are claimed (PENDING -> IN_FLIGHT, one transaction) in small chunks sized to what the
  limiter admits in the next tenth of a second, so few rows wait IN_FLIGHT before leaving.
- Two separate knobs: the rate (a small aiolimiter bucket whose burst plus rate never exceeds
  the configured requests per second in any sliding second) and a bound on requests in flight.
- Outcomes are recorded in batched transactions by one recorder task.
- A 429 pauses every sender, not only the one that got it.
- On stop: no new claims, claimed-but-unsent rows are released, in-flight requests get a
  bounded time to finish, then everything is recorded (shielded from cancellation).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiolimiter import AsyncLimiter

from campaign import errors, planning, rendering, retry
from campaign.sinch.client import SinchClient
from campaign.store import repository as repo

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DispatchSettings:
    rate: float | None = 800.0  # requests per second; None = no limit (benchmarks)
    max_in_flight: int = 200
    retry: retry.RetryPolicy = field(default_factory=retry.RetryPolicy)
    flush_interval: float = 0.2
    flush_size: int = 2000
    drain_timeout: float = 30.0


@dataclass
class DispatchStats:
    """Live counters, read by the progress display."""

    started: float = field(default_factory=time.monotonic)
    sent: int = 0  # requests answered 200
    failed: int = 0
    in_doubt: int = 0
    retried: int = 0
    rate_limited: int = 0
    in_flight: int = 0
    requests: int = 0


def make_limiter(rate: float) -> AsyncLimiter:
    """A leaky bucket that keeps every sliding one-second window at or under ``rate``.

    ``AsyncLimiter(rate, 1)`` would let a full second's worth through at once and then keep
    going: up to twice the rate in the first second. A bucket of ``b`` leaking at ``rate - b``
    per second admits at most ``b + (rate - b) = rate`` in any second.
    """
    bucket = max(1, min(4, math.floor(rate / 25)))
    leak = rate - bucket if rate > 2 * bucket else rate / 2
    return AsyncLimiter(bucket, bucket / leak)


class Dispatcher:
    """Sends one campaign's PENDING recipients with ``messages:send`` until none is left."""

    def __init__(
        self,
        *,
        store: repo.Store,
        client: SinchClient,
        campaign: repo.CampaignRow,
        channel: str,
        template: rendering.MessageTemplate,
        send_fields: Mapping[str, Any],
        settings: DispatchSettings,
        stop: asyncio.Event,
        stats: DispatchStats | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._client = client
        self._campaign = campaign
        self._channel = channel
        self._template = template
        self._send_fields = dict(send_fields)
        self._settings = settings
        self._stop = stop
        self.stats = stats or DispatchStats()
        self._clock = clock
        self._limiter = make_limiter(settings.rate) if settings.rate else None
        self._slots = asyncio.Semaphore(settings.max_in_flight)
        self._outcomes: list[repo.Outcome] = []
        self._flushed = asyncio.Event()
        self._paused_until = 0.0
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> bool:
        """Send until nothing is left (True) or a stop was asked (False)."""
        recorder = asyncio.create_task(self._record_forever())
        try:
            finished = await self._produce()
            await self._drain()
        finally:
            recorder.cancel()
            await asyncio.gather(recorder, return_exceptions=True)
            await asyncio.shield(self._flush())
        return finished

    # --- producing ----------------------------------------------------------------------------

    def _claim_size(self) -> int:
        free = self._settings.max_in_flight - self.stats.in_flight
        if self._settings.rate is None:
            return free
        return max(1, min(free, math.ceil(self._settings.rate * 0.1)))

    async def _produce(self) -> bool:
        while not self._stop.is_set():
            size = self._claim_size()
            if size <= 0:
                await self._wait_for_room()
                continue
            claims = await self._store.claim(self._campaign.id, size, self._clock())
            if claims:
                for claim in claims:
                    await self._slots.acquire()
                    self.stats.in_flight += 1
                    task = asyncio.create_task(self._send(claim))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                continue
            if self._tasks:
                await self._wait_for_room()
                continue
            await self._flush()
            due = await self._store.next_retry_at(self._campaign.id)
            if due is None:
                return True
            await self._sleep((due - self._clock()).total_seconds())
        return False

    async def _wait_for_room(self) -> None:
        """Wait until a send finishes (or a short while, to look for due retries)."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=0.5, return_when=asyncio.FIRST_COMPLETED)

    async def _sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=min(seconds, 5.0))

    # --- sending ------------------------------------------------------------------------------

    def _body(self, claim: repo.Claim) -> dict[str, Any]:
        params = orjson.loads(claim.parameters)
        return planning.individual_body(
            channel=self._channel,
            identity=claim.identity,
            message=self._template.render(params),
            key=planning.recipient_key(self._campaign.key, claim.position),
            send=self._send_fields,
        )

    async def _send(self, claim: repo.Claim) -> None:
        started = False
        outcome: repo.Outcome | None = None
        try:
            try:
                body = self._body(claim)
            except rendering.RenderError as exc:
                outcome = repo.Failed(claim.id, "RENDER_ERROR", str(exc))
                return
            await self._wait_if_paused()
            if self._limiter is not None:
                await self._limiter.acquire()
            if self._stop.is_set():
                outcome = repo.Release(claim.id)
                return
            started = True
            self.stats.requests += 1
            try:
                accepted = await self._client.send_message(body)
            except errors.SinchError as exc:
                outcome = self._after_error(claim, exc)
            else:
                outcome = repo.Sent(claim.id, accepted.message_id)
                self.stats.sent += 1
        except asyncio.CancelledError:
            outcome = (
                repo.InDoubt(claim.id, "the run stopped while the request was under way")
                if started
                else repo.Release(claim.id)
            )
            raise
        finally:
            if outcome is not None:
                self._outcomes.append(outcome)
            self.stats.in_flight -= 1
            self._slots.release()

    def _after_error(self, claim: repo.Claim, exc: errors.SinchError) -> repo.Outcome:
        decision = retry.decide(self._settings.retry, claim.attempts, exc, random.random())
        if isinstance(exc, errors.SinchRateLimitedError):
            self.stats.rate_limited += 1
            self._paused_until = max(self._paused_until, time.monotonic() + decision.delay)
        if decision.outcome is retry.Outcome.RETRY:
            self.stats.retried += 1
            at = self._clock() + timedelta(seconds=decision.delay)
            return repo.Retry(claim.id, at, _code(exc), exc.message)
        if decision.outcome is retry.Outcome.IN_DOUBT:
            self.stats.in_doubt += 1
            return repo.InDoubt(claim.id, str(exc))
        self.stats.failed += 1
        return repo.Failed(claim.id, _code(exc), exc.message)

    async def _wait_if_paused(self) -> None:
        # A loop, not an event: another 429 may push the deadline out while we sleep.
        while (delay := self._paused_until - time.monotonic()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(delay)

    # --- stopping and recording ---------------------------------------------------------------

    async def _drain(self) -> None:
        if not self._tasks:
            return
        _, pending = await asyncio.wait(self._tasks, timeout=self._settings.drain_timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _flush(self) -> None:
        if not self._outcomes:
            return
        outcomes, self._outcomes = self._outcomes, []
        await self._store.record(outcomes, self._clock())

    async def _record_forever(self) -> None:
        interval = self._settings.flush_interval
        while True:
            await asyncio.sleep(interval)
            await self._flush()


def _code(exc: errors.SinchError) -> str:
    if exc.code:
        return exc.code
    return f"HTTP_{exc.status}" if exc.status is not None else type(exc).__name__
