"""Individual sends: claim -> rate limit -> send -> record; stop, drain, resume.

- Rows are claimed (PENDING -> IN_FLIGHT, one transaction) in small chunks sized to what the
  limiter admits in the next quarter second, the next chunk while the last is paced out, so
  few rows wait IN_FLIGHT before leaving.
- Two separate knobs: the rate (held by a sliding log of the moments requests are written,
  :mod:`campaign.pacing`, with a small aiolimiter bucket spreading them evenly) and a bound on
  requests in flight.
- Outcomes are recorded in batched transactions by one recorder task.
- A 429 pauses every sender, not only the one that got it.
- On stop: no new claims, claimed-but-unsent rows are released, in-flight requests get a
  bounded time to finish, then everything is recorded (shielded from cancellation).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import gc
import logging
import math
import random
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiolimiter import AsyncLimiter
from sqlalchemy.exc import SQLAlchemyError

from campaign import errors, pacing, planning, quiet, rendering, retry, windows
from campaign.models import DispatchStats
from campaign.sinch.client import SinchClient
from campaign.sinch.responses import field_violations
from campaign.store import repository as repo

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DispatchSettings:
    rate: float | None = 800.0  # requests per second; None = no limit (benchmarks)
    # Seconds added to Sinch's one-second window for arrival jitter (campaign.pacing).
    rate_guard: float = pacing.GUARD
    max_in_flight: int = 200
    retry: retry.RetryPolicy = field(default_factory=retry.RetryPolicy)
    flush_interval: float = 0.2
    flush_size: int = 2000
    drain_timeout: float = 30.0
    # With quiet hours: when nothing is due for longer than this, the run ends and says when
    # the next window opens (cron runs it again then) instead of waiting.
    idle_limit: float = 60.0


def make_limiter(rate: float, guard: float = 0.0) -> AsyncLimiter:
    """The pacer: a leaky bucket that spreads requests evenly at just under ``rate`` per
    ``1 + guard`` seconds, the most that the sliding window (:mod:`campaign.pacing`) lets
    through, so that the window, which holds the limit, rarely has to make a request wait.

    ``AsyncLimiter(rate, 1)`` would let a full second's worth through at once: the window
    would then send in bursts, each request of a burst a guard's width from going over. A
    bucket of a few requests catches up after the loop's short stalls (a claim, a flush) and
    no more.
    """
    budget = rate / (1.0 + guard)
    bucket = max(1, min(4, math.floor(budget / 25)))
    leak = budget - 1 if budget > 2 * bucket else budget / 2
    return AsyncLimiter(bucket, bucket / leak)


def quiet_gc() -> None:
    """Keep garbage-collection pauses out of the send loop.

    A full collection walks every live object: after loading a campaign that takes tens of
    milliseconds, long enough for sends granted before the pause to reach Sinch bunched with
    later ones, past the rate limit. Freezing what exists now takes it out of every future
    collection, and a larger young generation makes collections rarer.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


# At most this much text of request entries kept for chunks that a load beside the dispatcher
# formed, claimed or not (about two and a half slices): when sending falls behind, the next
# chunks are read back from the database instead. It must hold more than a slice's entries, or
# chunks are read back even when sending keeps up; sending that keeps up holds a slice or two
# whatever the bound, which only limits what a stalled sending holds (docs/benchmarks.md).
FORMED_ENTRIES_BYTES = 32 << 20


def _entries_from_load(chunk: repo.Chunk) -> bool:
    """Whether the chunk's entries were written by the load (not read back from the store)."""
    return chunk.members is not None and chunk.members.ids is None


class Loading:
    """A load that runs beside the dispatcher (batch mode: each stored slice's chunks may be
    sent at once): while it runs, having nothing to claim means waiting for the next slice,
    not being done."""

    def __init__(self, keep_bytes: int = FORMED_ENTRIES_BYTES) -> None:
        self.over = False
        self._stored = asyncio.Event()
        # The request entries of chunks formed by this load, not claimed yet, by number.
        self.formed: dict[int, planning.ChunkEntries] = {}
        self._keep_bytes = keep_bytes
        self._kept = 0  # text of entries here, or claimed from here and not sent yet

    def stored(self, formed: Mapping[int, planning.ChunkEntries] | None = None) -> None:
        """A slice was committed: its rows may be claimed, and its chunks' request entries
        (``formed``) need not be read back, as long as there is room to keep them."""
        for number, entries in (formed or {}).items():
            if self._kept + len(entries[1]) > self._keep_bytes:
                break
            self.formed[number] = entries
            self._kept += len(entries[1])
        self._stored.set()

    def room(self) -> int:
        """How much more text of entries would be kept."""
        return self._keep_bytes - self._kept

    def claimed(self, chunks: Sequence[repo.Chunk]) -> None:
        """Chunks were claimed: those with entries from here hold them until :meth:`done`;
        the entries of any other chunk up to the last claimed (another worker took it, or it
        was read back) are let go (claims take the first chunks first)."""
        last = max((chunk.number for chunk in chunks), default=None)
        if last is None:
            return
        held = {chunk.number for chunk in chunks if _entries_from_load(chunk)}
        for number in [n for n in self.formed if n <= last]:
            _, text = self.formed.pop(number)
            if number not in held:
                self._kept -= len(text)

    def done(self, chunk: repo.Chunk) -> None:
        """A claimed chunk was sent (or given back): its entries make room for others."""
        if _entries_from_load(chunk):
            assert chunk.members is not None
            self._kept -= len(chunk.members.entries)

    def end(self) -> None:
        """The load is over (done, failed or stopped): nothing more will come."""
        self.over = True
        self._stored.set()

    async def next_slice(self) -> None:
        """Wait until a slice is stored or the load ends (or half a second: retries that fall
        due meanwhile are not kept waiting for long)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.5):
                await self._stored.wait()
        self._stored.clear()


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
        worker_id: int | None = None,
        window: windows.Window | None = None,
        quiet_hours: quiet.Plan | None = None,
        loading: Loading | None = None,
    ) -> None:
        self._store = store
        self._loading = loading
        self._after_load = False  # a claim began after the load was over
        self._client = client
        self._campaign = campaign
        self._channel = channel
        self._template = template
        self._send_fields = dict(send_fields)
        self._window = window or windows.Window()
        self._gate = quiet.Gate(quiet_hours) if quiet_hours is not None else None
        self._zones_look_at: datetime | None = None  # when to defer closed zones again
        # Set when the run ends with only recipients that are not due for a while (quiet
        # hours): when the first of them becomes due.
        self.deferred_until: datetime | None = None
        self._settings = settings
        self._stop = stop
        self.stats = stats or DispatchStats()
        self._clock = clock
        # With a worker id, this is one of several workers (campaign.membership): claims are
        # its own, a write ahead precedes each request, and the rate is its share.
        self._worker = worker_id
        self._announced = 0  # the write-ahead mark: claims up to this id may have been sent
        self._announcing: asyncio.Future[None] | None = None  # the next mark, being written
        self._rate: float | None = None
        self._limiter: AsyncLimiter | None = None
        self._log: pacing.SlidingWindow | None = None
        self.set_rate(settings.rate)
        self._room = asyncio.Event()  # set whenever a send finishes
        self._done = asyncio.Event()  # set when the run ends: the recorder's last flush
        self._flush_lock = asyncio.Lock()
        self._recorder: asyncio.Task[None] | None = None
        self._crashed: BaseException | None = None
        self._outcomes: list[repo.Outcome | repo.ChunkSent] = []
        self._flushed = asyncio.Event()
        self._paused_until = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self._refused: errors.SinchAuthError | None = None
        self._campaign_refused: errors.CampaignRefusedError | None = None

    async def run(self) -> bool:
        """Send until nothing is left (True) or a stop was asked (False).

        When the database fails while sending (locked, full, gone), the run stops: requests
        under way finish, their outcomes are written if the database comes back within the
        drain timeout, and :class:`~campaign.errors.RunInterruptedError` (exit 3) says so. The
        same when Sinch refuses the credentials mid-run: refused rows go back to PENDING.
        """
        try:
            finished = await self._run()
        except SQLAlchemyError as exc:
            if not self.stats.requests:
                raise  # nothing was sent: the caller reports it like any database problem
            reason = str(getattr(exc, "orig", None) or type(exc).__name__)
            raise errors.RunInterruptedError(
                f"the database failed while sending ({reason}); stopped, run the same "
                "command again to resume"
            ) from exc
        if self._refused is not None:
            raise errors.RunInterruptedError(
                f"Sinch refused the credentials while sending ({self._refused.message}); "
                "what was not sent is kept for the next run: fix them and run the same "
                "command again"
            )
        if self._campaign_refused is not None:
            raise self._campaign_refused
        return finished

    async def _run(self) -> bool:
        quiet_gc()
        self._recorder = asyncio.create_task(self._record_forever())
        try:
            finished = await self._produce()
        finally:
            # Whatever stopped the sending, requests under way get their time to finish.
            await self._drain()
            # The recorder is told to stop, never cancelled: a write cut short would lose
            # outcomes of requests that Sinch has already answered. Its error, if it failed,
            # is already on its way (the producer raised it); the last flush retries.
            self._done.set()
            if self._announcing is not None:
                await asyncio.gather(self._announcing, return_exceptions=True)
            await asyncio.gather(asyncio.shield(self._recorder), return_exceptions=True)
            await asyncio.shield(self._final_flush())
        return finished

    # --- producing ----------------------------------------------------------------------------

    def _send_options(self, zones: list[str | None] | None = None) -> dict[str, Any]:
        """The campaign's send fields, the ``ttl`` capped by the deadline and, with quiet
        hours, by the first of ``zones`` whose window closes."""
        now = self._clock()
        closes = None
        if self._gate is not None and zones:
            closes = min(self._gate.closes(zone, now) for zone in zones)
        return self._window.capped_send(self._send_fields, now, closes)

    async def _keep_quiet(self) -> None:
        """Quiet hours: whenever a window opens or closes (and every minute), defer the
        PENDING rows of every zone whose window is closed until it opens, so that claims pass
        them by."""
        if self._gate is None:
            return
        now = self._clock()
        if self._zones_look_at is not None and now < self._zones_look_at:
            return
        held = {}
        for key in await self._store.pending_zones(self._campaign.id):
            until = self._gate.held_until(key, now)
            if until is not None:
                held[key] = until
        await self._store.defer(self._campaign.id, held)
        look_at = now + timedelta(seconds=60)
        self._zones_look_at = min(look_at, self._gate.until or look_at)

    async def _sendable(self, claims: list[repo.Claim]) -> list[repo.Claim]:
        """``claims`` without those whose quiet hours have begun (a retry that became due in
        the night, a claim at the boundary): those go back to PENDING until their window
        opens, written at once (a batch must not carry them)."""
        if self._gate is None:
            return claims
        now = self._clock()
        later = []
        keep = []
        for claim in claims:
            until = self._gate.held_until(claim.time_zone, now)
            if until is None:
                keep.append(claim)
            else:
                later.append(repo.Deferred(claim.id, until))
        if later:
            await self._store.record(later, now, self._worker)
        return keep

    def _closed(self) -> bool:
        """The deadline has passed: send nothing more (what is left is CANCELLED)."""
        return self._window.phase(self._clock()) is windows.Phase.CLOSED

    def set_rate(self, rate: float | None) -> None:
        """Send at ``rate`` from now on (this worker's share, as workers come and go)."""
        if rate == self._rate:
            return
        self._rate = rate
        guard = self._settings.rate_guard
        self._limiter = make_limiter(rate, guard) if rate else None
        if not rate:
            self._log = None
        elif self._log is None:
            self._log = pacing.SlidingWindow(rate, guard=guard)
        else:  # in place: its part of what was written in the last second still counts
            self._log.limit = rate

    def _claim_size(self) -> int:
        """How many rows to claim at once: what the limiter admits in the next quarter of a
        second (claimed rows wait little before they leave, and the loop's stall of each claim
        comes seldom), or the in-flight bound when there is no limit."""
        if self._rate is None:
            return self._settings.max_in_flight
        return max(1, min(self._settings.max_in_flight, math.ceil(self._rate * 0.25)))

    async def _produce(self) -> bool:
        """Claim chunks and pace them out: the limiter is taken here, one row at a time, so the
        in-flight bound counts only requests really under way. The next claim is taken while
        the last one is paced out: a claim holds the loop and the database for milliseconds,
        in which nothing would be granted and the rate's window would go partly unused."""
        ahead: asyncio.Future[list[repo.Claim]] | None = None
        try:
            while not self._stop.is_set():
                self._check_recorder()
                if self._closed():
                    return True
                # Quiet hours are looked at when the rows are about to leave, not when claimed.
                claims = await self._sendable(await (ahead or self._next_claims()))
                ahead = None
                if not claims:
                    if await self._nothing_to_claim():
                        return True
                    continue
                ahead = asyncio.ensure_future(self._next_claims())
                for index, claim in enumerate(claims):
                    grant = await self._pace()
                    if grant is None or not await self._announce(claims, index):
                        # Claimed, never sent: back to PENDING for the next run.
                        if grant is not None:
                            grant.release()
                        self._outcomes.extend(repo.Release(c.id) for c in claims[index:])
                        return False
                    if self._closed():
                        grant.release()
                        self._outcomes.extend(repo.Release(c.id) for c in claims[index:])
                        return True
                    self._start(self._send(claim, grant))
            return False
        finally:
            if ahead is not None:  # claimed, never sent
                self._outcomes.extend(repo.Release(c.id) for c in await ahead)

    async def _next_claims(self) -> list[repo.Claim]:
        """Claim the next rows due (those of zones in quiet hours deferred first)."""
        await self._keep_quiet()
        return await self._store.claim(
            self._campaign.id, self._claim_size(), self._clock(), self._worker
        )

    # --- shared steps of every mode -----------------------------------------------------------

    async def _announce(self, claims: list[repo.Claim], index: int) -> bool:
        """Write ahead before ``claims[index]`` leaves. A mark covers what the limiter lets
        through in the next 25 ms, and the next one is written in the background once half of
        that is used, so requests rarely wait for it: a worker that dies leaves at most about
        40 ms of requests IN_DOUBT that it had not sent yet. False: a stop came meanwhile (or
        this worker was declared dead, which stops it): send nothing more."""
        if self._worker is None:
            return True
        ahead = max(2, math.ceil((self._rate or 2000.0) * 0.025))
        while claims[index].id > self._announced and not self._stop.is_set():
            if self._announcing is None or self._announcing.done():
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

    async def _mark(self, claims: list[repo.Claim], start: int, ahead: int) -> None:
        through = claims[min(start + ahead, len(claims)) - 1].id
        if await self._may_send(through):  # if not, it has set the stop
            self._announced = max(self._announced, through)

    async def _may_send(self, through: int | None = None) -> bool:
        """Write ahead before a request leaves (see campaign.store.workers). False when this
        worker was declared dead: it stops, and what it holds is settled by the others."""
        if self._worker is None:
            return True
        if await self._store.may_send(self._worker, through):
            return True
        self._stop.set()
        return False

    def _check_recorder(self) -> None:
        """Stop sending when the recorder or a send task failed: raise its error."""
        if self._crashed is not None:
            raise self._crashed
        if self._recorder is not None and self._recorder.done():
            self._recorder.result()
            raise RuntimeError("the outcome recorder stopped unexpectedly")

    async def _nothing_to_claim(self) -> bool:
        """Nothing is due now: True when the campaign is done, False after waiting a while
        (for sends under way to finish, or for the next retry to become due)."""
        self._check_recorder()
        if self._tasks:
            await self._wait_for_room()
            return False
        if self._loading is not None and not self._after_load:
            # The claim that found nothing may have begun before the last slice was stored:
            # once the load is over, one more claim looks.
            self._after_load = self._loading.over
            if not self._after_load:
                await self._loading.next_slice()
            return False
        await self._flush()
        self._check_recorder()
        due = await self._store.next_retry_at(self._campaign.id)
        if due is None:
            if self._worker is None or not await self._store.held_elsewhere(
                self._campaign.id, self._worker
            ):
                return True
            # Other workers hold rows: live ones will record them, dead ones' are settled
            # when their lease runs out, and may come back to send.
            await self._sleep(1.0)
            return False
        wait = (due - self._clock()).total_seconds()
        if self._gate is not None and wait > self._settings.idle_limit:
            self.deferred_until = due
            return True
        await self._sleep(wait)
        return False

    async def _pace(self, *, start: bool = True) -> pacing.Grant | None:
        """When ``start``, wait for room under the in-flight bound; then for the rate limit
        (and any 429 pause). The request's place in the rate window, or None when a stop came
        meanwhile: send nothing more."""
        while start and self.stats.in_flight >= self._settings.max_in_flight:
            await self._wait_for_room()
        grant = await self._grant()
        if self._stop.is_set():
            grant.release()
            return None
        return grant

    async def _grant(self) -> pacing.Grant:
        """A place in the rate window, after the pacer and any 429 pause."""
        await self._wait_if_paused()
        if self._limiter is None or self._log is None:
            return pacing.unlimited()
        await self._limiter.acquire()
        grant = await self._log.acquire()
        await self._wait_if_paused()  # a 429 may have come while this one waited its turn
        return grant

    def _start(self, send: Coroutine[Any, Any, None]) -> None:
        """Run ``send`` as a tracked in-flight task (it calls :meth:`_finished_one`)."""
        self.stats.in_flight += 1
        task = asyncio.create_task(send)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None and self._crashed is None:
            # An unexpected error (a bug, the database gone): its rows stay IN_FLIGHT, and the
            # run must stop and say so rather than finish as if all went well.
            self._crashed = task.exception()

    def _finished_one(self) -> None:
        self.stats.in_flight -= 1
        self._room.set()

    def _pause(self, delay: float) -> None:
        """Every sender waits ``delay`` seconds (Sinch said 429)."""
        self._paused_until = max(self._paused_until, time.monotonic() + delay)

    async def _wait_for_room(self) -> None:
        """Wait until a send finishes (or a short while, to look again for due retries)."""
        self._room.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._room.wait(), timeout=0.5)

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
            send=self._send_options([claim.time_zone]),
        )

    async def _send(self, claim: repo.Claim, grant: pacing.Grant) -> None:
        started = False
        outcome: repo.Outcome | None = None
        try:
            try:
                body = self._body(claim)
            except rendering.RenderError as exc:
                outcome = repo.Failed(claim.id, "RENDER_ERROR", str(exc))
                return
            started = True
            self.stats.requests += 1
            try:
                accepted = await self._client.send_message(body, written=grant.written)
            except errors.SinchAuthError as exc:
                outcome = repo.Release(claim.id)  # refused: it did not go out
                self._refuse(exc)
            except errors.SinchPermanentError as exc:
                if (refused := campaign_refusal(exc)) is None:
                    outcome = self._after_error(claim, exc)
                else:
                    outcome = repo.Release(claim.id)
                    self._refuse_campaign(refused)
            except errors.SinchError as exc:
                outcome = self._after_error(claim, exc)
            else:
                key = planning.recipient_key(self._campaign.key, claim.position)
                outcome = repo.Sent(claim.id, accepted.message_id, key=key)
                self.stats.sent += 1
        except asyncio.CancelledError:
            outcome = (
                repo.InDoubt(claim.id, "the run stopped while the request was under way")
                if started
                else repo.Release(claim.id)
            )
            raise
        finally:
            grant.release()  # if it never left
            if outcome is not None:
                self._outcomes.append(outcome)
            self._finished_one()

    def _refuse(self, exc: errors.SinchAuthError) -> None:
        """Sinch refused the credentials (a key revoked mid-run): that is no recipient's
        fault, so nobody fails for it; sending stops and the rest waits for the next run."""
        if self._refused is None:
            self._refused = exc
            self._stop.set()

    def _refuse_campaign(self, error: errors.CampaignRefusedError) -> None:
        """Sinch refused what every request of the campaign carries: sending stops, and what
        was not sent waits for a corrected campaign."""
        if self._campaign_refused is None:
            self._campaign_refused = error
            self._stop.set()

    def _after_error(self, claim: repo.Claim, exc: errors.SinchError) -> repo.Outcome:
        decision = retry.decide(self._settings.retry, claim.attempts, exc, random.random())
        if isinstance(exc, errors.SinchRateLimitedError):
            self.stats.rate_limited += 1
            self._pause(decision.delay)
        if decision.outcome is retry.Outcome.RETRY:
            self.stats.retried += 1
            at = self._clock() + timedelta(seconds=decision.delay)
            return repo.Retry(claim.id, at, failure_code(exc), exc.message)
        if decision.outcome is retry.Outcome.IN_DOUBT:
            self.stats.in_doubt += 1
            return repo.InDoubt(claim.id, str(exc))
        self.stats.failed += 1
        return repo.Failed(claim.id, failure_code(exc), exc.message)

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
        """Write the outcomes gathered so far. Serialised: when it returns, every outcome
        gathered before the call is committed (the "anything left?" check relies on it)."""
        async with self._flush_lock:
            if not self._outcomes:
                return
            outcomes, self._outcomes = self._outcomes, []
            try:
                await self._store.record(outcomes, self._clock(), self._worker)
            except BaseException:
                self._outcomes[:0] = outcomes  # not written: kept for the next flush
                raise
            sent = [o for o in outcomes if isinstance(o, repo.Sent | repo.ChunkSent)]
            if sent:
                await self._apply_waiting_events(sent)

    async def _final_flush(self) -> None:
        """The last write of outcomes, retried while the database is unavailable (a lock held
        elsewhere, a full disk) for up to the drain timeout: they are answers Sinch has given,
        and a row left IN_FLIGHT would become IN_DOUBT."""
        deadline = time.monotonic() + self._settings.drain_timeout
        while True:
            try:
                await self._flush()
            except SQLAlchemyError:
                if time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(0.5)
            else:
                return

    async def _apply_waiting_events(self, sent: list[repo.Sent | repo.ChunkSent]) -> None:
        """Callbacks that arrived before their sends were recorded can be applied now.

        A supervision point: the receiver (maybe another process) applies events too, and a
        conflict there must never stop the sending; what is not applied now waits for later.
        """
        try:
            await self._store.events.apply_for(
                message_ids=[
                    s.message_id for s in sent if isinstance(s, repo.Sent) and s.message_id
                ],
                keys=[s.key for s in sent if isinstance(s, repo.Sent) and s.key],
                batch_ids=[s.batch_id for s in sent if isinstance(s, repo.ChunkSent)],
                now=self._clock(),
            )
        except SQLAlchemyError as exc:
            logger.warning(
                "could not apply waiting delivery events: %s",
                type(exc).__name__,
                extra={"action": "apply_events_failed"},
            )

    async def _record_forever(self) -> None:
        while not self._done.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._done.wait(), timeout=self._settings.flush_interval)
            await self._flush()


# Fields of a request that may differ by recipient (a recipient's text may not fit, its
# identity may be refused): a 400 naming any other field names the campaign's.
_PER_RECIPIENT = ("recipient", "message")


def campaign_refusal(exc: errors.SinchError) -> errors.CampaignRefusedError | None:
    """The run's error when Sinch refused a request for a field that every request of the
    campaign carries (``channel_properties``, ``send_after``...): nobody fails for it. None
    when the refusal may be the recipient's."""
    if exc.status != 400:
        return None
    wide = [(f, d) for f, d in field_violations(exc) if not f.startswith(_PER_RECIPIENT)]
    if not wide:
        return None
    named = "; ".join(f"{field} {description}".strip() for field, description in wide)
    return errors.CampaignRefusedError(
        f"Sinch refused the campaign's requests (HTTP 400 {exc.code or 'INVALID_ARGUMENT'}: "
        f"{named}); nobody was marked failed for it: correct the campaign and run the same "
        "command again"
    )


def failure_code(exc: errors.SinchError) -> str:
    """The code a recipient's failure or retry records: Sinch's, else the HTTP status (a
    bodiless 5xx), else the kind of error (no answer). One classification for every mode."""
    if exc.code:
        return exc.code
    return f"HTTP_{exc.status}" if exc.status is not None else type(exc).__name__
