"""Batch sends: up to ``batch_size`` recipients per Batch API request.

The same machinery as individual sends (:class:`campaign.dispatcher.Dispatcher`: limiter,
in-flight bound, recorder, stop and drain); what differs is what is claimed and sent:

- a chunk of rows is claimed at once and recorded as a batch (SENDING);
- each recipient's message is rendered locally first, to check it (a message over the
  channel's limits is REJECTED and left out); Sinch substitutes the parameters itself;
- accepted: every recipient QUEUED with the ``batch_id``;
- a 400 caused by some recipients: those FAILED with Sinch's message, the rest sent again
  (bisected when Sinch does not say which recipient);
- a lost answer: the batch is looked up by its ``batch_metadata`` before anything is re-sent.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import random
import re
from collections.abc import Sequence
from datetime import timedelta

import orjson

from campaign import errors, pacing, planning, retry
from campaign.dispatcher import Dispatcher, campaign_refusal, failure_code
from campaign.sinch.client import BatchAccepted, BatchInfo
from campaign.sinch.responses import field_violations
from campaign.store import repository as repo
from campaign.tracking import parse_time

logger = logging.getLogger(__name__)

_INDEX = re.compile(r"^recipient_and_params\[(\d+)\]")
_LOOKUP_ATTEMPTS = 8


class BatchDispatcher(Dispatcher):
    """Sends a campaign's PENDING recipients through the Batch API."""

    batch_size: int = 1000

    # Formed chunks claimed at once (one transaction): 40 ms of requests at 800/s. More would
    # hold more request entries in memory at once while a load runs beside the sending.
    claim_ahead: int = 32

    async def _produce(self) -> bool:
        claimed: collections.deque[repo.Chunk] = collections.deque()
        finished = await self._send_claimed(claimed)
        # Claimed, never sent (a stop, the deadline): given back, the formed ones at once.
        # (After an error they stay claimed: the next run looks them up, and sends those that
        # Sinch does not have.)
        formed = [chunk.number for chunk in claimed if chunk.formed]
        if formed:
            await self._store.unclaim_chunks(self._campaign.id, formed, self._clock(), self._worker)
        for chunk in claimed:
            if not chunk.formed:
                await self._give_back(chunk.number, chunk.claims, chunk.formed)
            if self._loading is not None:
                self._loading.done(chunk)
        return finished

    async def _send_claimed(self, claimed: collections.deque[repo.Chunk]) -> bool:
        while not self._stop.is_set():
            self._check_recorder()
            if self._closed():
                return True
            if not claimed:
                await self._keep_quiet()
                claimed.extend(await self._claim())
                if not claimed:
                    if await self._nothing_to_claim():
                        return True
                    continue
                # Once per claim: this worker has not been declared dead meanwhile.
                if not await self._may_send():
                    return False
            chunk = claimed.popleft()
            # Formed chunks never meet quiet hours: a run with them breaks them up first.
            if not chunk.formed:
                claims = await self._sendable(chunk.claims)
                if not claims:
                    await self._store.set_batch(
                        self._campaign.id, chunk.number, "RELEASED", self._clock()
                    )
                    continue
                chunk = repo.Chunk(chunk.number, chunk.tag, claims)
            grant = await self._pace()
            if grant is None:
                claimed.appendleft(chunk)
                return False
            self._start(self._send_chunk(chunk, grant))
        return False

    async def _claim(self) -> list[repo.Chunk]:
        """The next chunks: those formed at ingest while any is left, else due rows (retries,
        and the rows of campaigns loaded without chunks) claimed as a new one."""
        now = self._clock()
        ahead = max(1, min(self.claim_ahead, self._settings.max_in_flight))
        loading = self._loading
        formed = await self._store.claim_formed_chunks(
            self._campaign.id,
            now,
            self._worker,
            ahead,
            channel=self._channel,
            campaign_key=self._campaign.key,
            known=loading.formed if loading is not None else None,
        )
        if loading is not None:
            loading.claimed(formed)
        if formed:
            return formed
        chunk = await self._store.claim_chunk(
            self._campaign.id, self._campaign.key, self.batch_size, now, self._worker
        )
        return [] if chunk is None else [chunk]

    async def _give_back(self, number: int, claims: list[repo.Claim], formed: bool) -> None:
        """Claimed, never sent: a formed chunk is PENDING again as it is; other claimed rows
        go back to PENDING one by one."""
        if formed:
            await self._store.unclaim_chunk(self._campaign.id, number, self._clock(), self._worker)
        else:
            await self._record(number, "RELEASED", [repo.Release(c.id) for c in claims])

    def _batch_body(
        self, tag: str, claims: list[repo.Claim], members: repo.Members | None = None
    ) -> dict[str, object]:
        """The request for ``claims``, or for a formed chunk's ``members`` (their entries
        written by the database)."""
        if members is not None:
            entries = orjson.Fragment(members.entries)
            zones: list[str | None] = []  # formed chunks never meet quiet hours
        else:
            key = self._campaign.key
            entries = planning.batch_entries(
                self._channel,
                (
                    (claim.identity, claim.parameters, planning.recipient_key(key, claim.position))
                    for claim in claims
                ),
            )
            zones = list({claim.time_zone for claim in claims})
        return planning.batch_body(
            message=self._template.message,
            entries=entries,
            campaign_key=self._campaign.key,
            tag=tag,
            send=self._send_options(zones),
        )

    async def _send_chunk(self, chunk: repo.Chunk, grant: pacing.Grant) -> None:
        try:
            await self._send_part(grant, chunk.number, chunk.tag, chunk.claims, chunk.members)
        finally:
            if self._loading is not None:
                self._loading.done(chunk)
            self._finished_one()

    async def settle_lost_chunks(self, lease: float) -> tuple[int, int]:
        """Chunks that a stopped run, or a worker whose lease ran out, left IN_FLIGHT: look
        each batch up by its tag. Found: its recipients are QUEUED with the batch id; not
        found: Sinch never took it, so they go back to PENDING. Unknowable (the lookup fails):
        left for a later look. Returns (queued, released)."""
        queued = released = 0
        lost = await self._store.in_flight_chunks(self._campaign.id, self._clock(), lease)
        for number, tag, ids, formed in lost:
            found = await self._look_up(tag)
            if found is None:
                continue
            # Recorded for whichever worker held the rows (it is gone): no worker guard.
            if found:
                await self._store.record([self._accepted(number, found[0])], self._clock())
                queued += len(ids)
            elif formed:
                await self._store.unclaim_chunk(self._campaign.id, number, self._clock())
                released += len(ids)
            else:
                await self._store.record([repo.Release(i) for i in ids], self._clock())
                await self._store.set_batch(self._campaign.id, number, "RELEASED", self._clock())
                released += len(ids)
        return queued, released

    async def _send_part(
        self,
        grant: pacing.Grant,
        number: int,
        tag: str,
        claims: list[repo.Claim],
        members: repo.Members | None = None,
    ) -> None:
        """Send ``claims`` (or a formed chunk's ``members``) as one batch tagged ``tag``; split
        it when some recipients are bad."""
        self.stats.requests += 1
        try:
            try:
                body = self._batch_body(tag, claims, members)
                accepted = await self._client.send_batch(body, written=grant.written)
            finally:
                grant.release()  # if it never left
        except errors.SinchError as exc:
            if members is not None:  # the recipients one by one, now that they are needed
                claims = await self._store.claims_of(self._campaign.id, number, members)
            found = await self._after_batch_error(number, tag, claims, members is not None, exc)
            if found is None:
                return
            accepted = found
        self.stats.sent += members.size if members is not None else len(claims)
        self._outcomes.append(self._accepted(number, accepted, follows=members is not None))

    async def _after_batch_error(
        self,
        number: int,
        tag: str,
        claims: list[repo.Claim],
        formed: bool,
        exc: errors.SinchError,
    ) -> BatchAccepted | None:
        """What a failed send of ``claims`` leads to; the batch that Sinch holds after all
        (a lost answer), if any. ``formed``: a chunk formed at ingest, whose recipients follow
        it (given back as it is when not sent)."""
        if isinstance(exc, errors.SinchAmbiguousError):
            found = await self._look_up(tag)
            if found is None:
                await self._record(
                    number, "IN_DOUBT", [repo.InDoubt(c.id, str(exc)) for c in claims]
                )
                return None
            if not found:  # Sinch never got it: send it again
                at = self._clock()
                await self._record(
                    number, "RETRY", [repo.Retry(c.id, at, "LOST", exc.message) for c in claims]
                )
                return None
            return found[0]
        if isinstance(exc, errors.SinchAuthError):  # no recipient's fault: the run stops
            await self._give_back(number, claims, formed)
            self._refuse(exc)
        elif isinstance(exc, errors.SinchPermanentError):
            await self._after_refusal(number, claims, formed, exc)
        elif isinstance(exc, errors.SinchRetryableError):
            await self._after_retryable(number, claims, exc)
        else:
            raise exc
        return None

    async def _after_retryable(
        self, number: int, claims: list[repo.Claim], exc: errors.SinchRetryableError
    ) -> None:
        attempts = max(c.attempts for c in claims)
        decision = retry.decide(self._settings.retry, attempts, exc, random.random())
        if isinstance(exc, errors.SinchRateLimitedError):
            self.stats.rate_limited += 1
            self._pause(decision.delay)
        if decision.outcome is retry.Outcome.RETRY:
            self.stats.retried += len(claims)
            at = self._clock() + timedelta(seconds=decision.delay)
            code = failure_code(exc)
            retries = [repo.Retry(c.id, at, code, exc.message) for c in claims]
            await self._record(number, "RETRY", retries)
        else:
            self.stats.failed += len(claims)
            failures = [repo.Failed(c.id, failure_code(exc), exc.message) for c in claims]
            await self._record(number, "FAILED", failures)

    def _accepted(
        self, number: int, accepted: BatchAccepted, follows: bool = False
    ) -> repo.ChunkSent:
        """The chunk's recipients QUEUED with the batch id (one statement when recorded);
        ``follows``: a formed chunk sent whole."""
        send_after = parse_time(accepted.send_after)
        scheduled = send_after is not None and send_after > self._clock()
        return repo.ChunkSent(
            self._campaign.id,
            number,
            accepted.batch_id,
            "SCHEDULED" if scheduled else "ACCEPTED",
            send_after,
            follows,
        )

    async def _after_refusal(
        self, number: int, claims: list[repo.Claim], formed: bool, exc: errors.SinchError
    ) -> None:
        """A 400 names the bad recipients (or not): fail those, send the others again. A 400
        that names a field of the campaign stops the run instead."""
        if (refused := campaign_refusal(exc)) is not None:
            await self._give_back(number, claims, formed)
            self._refuse_campaign(refused)
            return
        if exc.status != 400 or len(claims) == 1:
            self.stats.failed += len(claims)
            code = failure_code(exc)
            outcomes = [repo.Failed(c.id, code, _reason(exc, i)) for i, c in enumerate(claims)]
            await self._record(number, "FAILED", outcomes)
            return
        bad = {int(m.group(1)) for f, _ in field_violations(exc) if (m := _INDEX.match(f))}
        bad &= set(range(len(claims)))
        # First: a formed chunk's recipients become ordinary rows, which outcomes then find.
        await self._store.set_batch(self._campaign.id, number, "SPLIT", self._clock())
        if bad:
            self.stats.failed += len(bad)
            self._outcomes.extend(
                repo.Failed(claims[i].id, failure_code(exc), _reason(exc, i)) for i in sorted(bad)
            )
            parts = [[c for i, c in enumerate(claims) if i not in bad]]
        else:  # Sinch did not say who: bisect until the bad ones are alone
            half = len(claims) // 2
            parts = [claims[:half], claims[half:]]
        for part in (p for p in parts if p):
            grant = await self._pace(start=False)
            if grant is None:
                self._outcomes.extend(repo.Release(c.id) for c in part)
                continue
            part_number, part_tag = await self._store.new_chunk(
                self._campaign.id,
                self._campaign.key,
                [c.id for c in part],
                self._clock(),
                self._worker,
            )
            await self._send_part(grant, part_number, part_tag, part)

    async def _look_up(self, tag: str) -> list[BatchAccepted] | None:
        """The batch Sinch holds under ``tag`` ([] if none), or None if we cannot tell."""

        async def find() -> list[BatchInfo]:
            # It counts against the project's rate like a send, and waits out a 429 pause.
            grant = await self._grant()
            try:
                return await self._client.find_batches("chunk", tag, written=grant.written)
            finally:
                grant.release()

        policy = dataclasses.replace(self._settings.retry, max_attempts=_LOOKUP_ATTEMPTS)
        try:
            found = await retry.call(find, policy, retry_on=retry.repeatable)
        except errors.SinchError:
            return None
        return [BatchAccepted(b.batch_id, b.send_after) for b in found]

    async def _record(
        self,
        number: int,
        status: str,
        outcomes: Sequence[repo.Outcome],
        batch_id: str | None = None,
    ) -> None:
        # The chunk first: a formed chunk's recipients become ordinary IN_FLIGHT rows there,
        # which the outcomes (written by the recorder, maybe at once) must find.
        await self._store.set_batch(
            self._campaign.id, number, status, self._clock(), batch_id=batch_id
        )
        self._outcomes.extend(outcomes)


def _reason(exc: errors.SinchError, index: int) -> str:
    """Sinch's description for recipient ``index`` of the batch, else its message."""
    prefix = f"recipient_and_params[{index}]"
    for field, description in field_violations(exc):
        if field.startswith(prefix):
            return f"{exc.message}: {field[len(prefix) :].lstrip('.')} {description}".strip()
    return exc.message


__all__ = ["BatchDispatcher"]
