"""Batch mode: up to ``batch_size`` recipients per Batch API request.

- a chunk of rows is claimed at once and recorded as a batch (SENDING);
- each recipient's message is rendered locally first, to check it (a message over the
  channel's limits is REJECTED and left out); Sinch substitutes the parameters itself;
- accepted: every recipient QUEUED with the ``batch_id``;
- a 400 caused by some recipients: those FAILED with Sinch's message, the rest sent again
  (bisected when Sinch does not say which recipient);
- a lost answer: the batch is looked up by its ``batch_metadata`` before anything is re-sent.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import timedelta

import orjson

from campaign import errors, pacing, retry
from campaign.sending import outcomes
from campaign.sending.context import Context
from campaign.sending.outcomes import Kind
from campaign.sinch import wire
from campaign.sinch.client import BatchAccepted, BatchInfo
from campaign.store import repository as repo
from campaign.tracking import parse_time

_LOOKUP_ATTEMPTS = 8

# Formed chunks claimed at once (one transaction): 40 ms of requests at 800/s. More would hold
# more request entries in memory at once while a load runs beside the sending.
CLAIM_AHEAD = 32


class BatchSender:
    """Turns claimed chunks into Batch API requests and their answers into outcomes."""

    # A claim of formed chunks reads thousands of recipients' entries: taken while the last
    # chunks are paced out, it competes with their sending for the process, and it holds
    # more entries in memory. One claim at a time holds the rate as well at 1,000 per request.
    claims_ahead = False

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self.per_request = ctx.settings.batch_size

    def messages(self, chunk: repo.Chunk) -> int:
        return chunk.size

    async def claim(self, size: int) -> list[repo.Chunk]:
        """The next chunks: those formed at ingest while any is left, else due rows (retries,
        and the rows of campaigns loaded without chunks) claimed as a new one."""
        ctx = self._ctx
        now = ctx.clock()
        feed = ctx.feed
        formed = await ctx.store.chunks.claim_formed(
            ctx.campaign.id,
            now,
            ctx.worker,
            max(1, min(CLAIM_AHEAD, size)),
            channel=ctx.channel,
            campaign_key=ctx.campaign.key,
            known=feed.formed if feed is not None else None,
        )
        if feed is not None:
            feed.claimed(formed)
        if formed:
            return formed
        chunk = await ctx.store.chunks.claim(
            ctx.campaign.id, ctx.campaign.key, ctx.settings.batch_size, now, ctx.worker
        )
        return [] if chunk is None else [chunk]

    async def sendable(self, chunks: list[repo.Chunk]) -> list[repo.Chunk]:
        """``chunks`` without the recipients whose quiet hours have begun (deferred until
        their window opens); a chunk left empty is released. Formed chunks never meet quiet
        hours: a run with them breaks them up first."""
        ctx = self._ctx
        kept = []
        for chunk in chunks:
            if chunk.formed:
                kept.append(chunk)
                continue
            claims, later = ctx.timing.split(chunk.claims)
            if later:
                await ctx.store.recipients.record(later, ctx.clock(), ctx.worker)
            if claims:
                kept.append(repo.Chunk(chunk.number, chunk.tag, claims))
            else:
                await ctx.store.chunks.update(
                    ctx.campaign.id, chunk.number, "RELEASED", ctx.clock()
                )
        return kept

    async def before_send(self, chunks: Sequence[repo.Chunk], index: int) -> bool:
        # Once per claim: this worker has not been declared dead meanwhile.
        return index > 0 or await self._ctx.writeahead.may_send()

    async def give_back(self, chunks: Sequence[repo.Chunk]) -> None:
        """Claimed, never sent (a stop, the deadline): given back, the formed ones in one
        statement. (After an error they stay claimed: the next run looks them up, and sends
        those that Sinch does not have.)"""
        ctx = self._ctx
        formed = [chunk.number for chunk in chunks if chunk.formed]
        if formed:
            await ctx.store.chunks.unclaim_many(ctx.campaign.id, formed, ctx.clock(), ctx.worker)
        for chunk in chunks:
            if not chunk.formed:
                await self._give_back(chunk.number, chunk.claims, formed=False)
            if ctx.feed is not None:
                ctx.feed.done(chunk)

    async def send(self, chunk: repo.Chunk, grant: pacing.Grant) -> None:
        try:
            await self._send_part(grant, chunk.number, chunk.tag, chunk.claims, chunk.members)
        finally:
            if self._ctx.feed is not None:
                self._ctx.feed.done(chunk)

    async def settle(self, lease: float) -> tuple[int, int]:
        """Chunks that a stopped run, or a worker whose lease ran out, left IN_FLIGHT: look
        each batch up by its tag. Found: its recipients are QUEUED with the batch id; not
        found: Sinch never took it, so they go back to PENDING. Unknowable (the lookup fails):
        left for a later look. Returns (queued, released)."""
        ctx = self._ctx
        store, campaign_id = ctx.store, ctx.campaign.id
        queued = released = 0
        for number, tag, ids, formed in await store.chunks.in_flight(
            campaign_id, ctx.clock(), lease
        ):
            found = await self._look_up(tag)
            if found is None:
                continue
            # Recorded for whichever worker held the rows (it is gone): no worker guard.
            if found:
                await store.recipients.record([self._accepted(number, found[0])], ctx.clock())
                queued += len(ids)
            elif formed:
                await store.chunks.unclaim(campaign_id, number, ctx.clock())
                released += len(ids)
            else:
                await store.recipients.record([repo.Release(i) for i in ids], ctx.clock())
                await store.chunks.update(campaign_id, number, "RELEASED", ctx.clock())
                released += len(ids)
        return queued, released

    def body(
        self, tag: str, claims: list[repo.Claim], members: repo.Members | None = None
    ) -> dict[str, object]:
        """The request for ``claims``, or for a formed chunk's ``members`` (their entries
        written by the database)."""
        ctx = self._ctx
        if members is not None:
            entries = orjson.Fragment(members.entries)
            zones: list[str | None] = []  # formed chunks never meet quiet hours
        else:
            key = ctx.campaign.key
            entries = wire.batch_entries(
                (
                    claim.channel,
                    claim.identity,
                    claim.identities,
                    claim.parameters,
                    wire.recipient_key(key, claim.position),
                )
                for claim in claims
            )
            zones = list({claim.time_zone for claim in claims})
        return wire.batch_body(
            message=ctx.template.message,
            entries=entries,
            campaign_key=ctx.campaign.key,
            tag=tag,
            send=ctx.timing.send_options(zones),
        )

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
        ctx = self._ctx
        ctx.stats.requests += 1
        try:
            try:
                body = self.body(tag, claims, members)
                accepted = await ctx.client.send_batch(body, written=grant.written)
            finally:
                grant.release()  # if it never left
        except errors.SinchError as exc:
            if members is not None:  # the recipients one by one, now that they are needed
                claims = await ctx.store.chunks.claims_of(ctx.campaign.id, number, members)
            found = await self._after_error(number, tag, claims, members is not None, exc)
            if found is None:
                return
            accepted = found
        ctx.stats.sent += members.size if members is not None else len(claims)
        ctx.accepted()
        ctx.recorder.add(self._accepted(number, accepted, follows=members is not None))

    async def _after_error(
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
        ctx = self._ctx
        attempts = max(c.attempts for c in claims)
        verdict = ctx.judge(exc, attempts, len(claims))
        if verdict.kind is Kind.IN_DOUBT:
            return await self._settle_lost(number, tag, claims, exc)
        ctx.tally(verdict, len(claims))
        ctx.halt.after(verdict, exc)
        if verdict.kind in (Kind.CREDENTIALS, Kind.CAMPAIGN):  # nobody's fault: given back
            await self._give_back(number, claims, formed)
        elif verdict.kind is Kind.QUEUE_FULL:
            await self._hold_back(number, claims, formed)
        elif verdict.kind is Kind.SPLIT:
            await self._split(number, claims, exc)
        elif verdict.kind is Kind.RETRY:
            at = ctx.clock() + timedelta(seconds=verdict.delay)
            retries = [repo.Retry(c.id, at, verdict.code, exc.message) for c in claims]
            await self._record(number, "RETRY", retries)
        else:
            failures = [
                repo.Failed(c.id, verdict.code, outcomes.recipient_reason(exc, i))
                for i, c in enumerate(claims)
            ]
            await self._record(number, "FAILED", failures)
        return None

    async def _settle_lost(
        self, number: int, tag: str, claims: list[repo.Claim], exc: errors.SinchError
    ) -> BatchAccepted | None:
        """The answer was lost: the batch Sinch holds, if it has it; else sent again, or
        IN_DOUBT when Sinch cannot tell."""
        found = await self._look_up(tag)
        if found:
            return found[0]
        if found is None:
            self._ctx.stats.in_doubt += len(claims)
            await self._record(number, "IN_DOUBT", [repo.InDoubt(c.id, str(exc)) for c in claims])
        else:  # Sinch never got it: send it again
            at = self._ctx.clock()
            retries = [repo.Retry(c.id, at, "LOST", exc.message) for c in claims]
            await self._record(number, "RETRY", retries)
        return None

    async def _split(self, number: int, claims: list[repo.Claim], exc: errors.SinchError) -> None:
        """A 400 names the bad recipients (or not): fail those, send the others again."""
        ctx = self._ctx
        bad = outcomes.named_recipients(exc, len(claims))
        # First: a formed chunk's recipients become ordinary rows, which outcomes then find.
        await ctx.store.chunks.update(ctx.campaign.id, number, "SPLIT", ctx.clock())
        if bad:
            ctx.stats.failed += len(bad)
            code = outcomes.failure_code(exc)
            ctx.recorder.extend(
                repo.Failed(claims[i].id, code, outcomes.recipient_reason(exc, i))
                for i in sorted(bad)
            )
            parts = [[c for i, c in enumerate(claims) if i not in bad]]
        else:  # Sinch did not say who: bisect until the bad ones are alone
            half = len(claims) // 2
            parts = [claims[:half], claims[half:]]
        for part in (p for p in parts if p):
            grant = await ctx.pacer.grant()
            if ctx.halt.asked:
                grant.release()
                ctx.recorder.extend(repo.Release(c.id) for c in part)
                continue
            part_number, part_tag = await ctx.store.chunks.new(
                ctx.campaign.id, ctx.campaign.key, [c.id for c in part], ctx.clock(), ctx.worker
            )
            await self._send_part(grant, part_number, part_tag, part)

    async def _give_back(self, number: int, claims: list[repo.Claim], formed: bool) -> None:
        """Claimed, never sent: a formed chunk is PENDING again as it is; other claimed rows
        go back to PENDING one by one."""
        ctx = self._ctx
        if formed:
            await ctx.store.chunks.unclaim(ctx.campaign.id, number, ctx.clock(), ctx.worker)
        else:
            await self._record(number, "RELEASED", [repo.Release(c.id) for c in claims])

    async def _hold_back(self, number: int, claims: list[repo.Claim], formed: bool) -> None:
        """Refused because the app's queue is full: due again at once, attempt not counted
        (the gate holds the next send until the queue has room). A formed chunk as it is."""
        ctx = self._ctx
        if formed:
            await ctx.store.chunks.unclaim(ctx.campaign.id, number, ctx.clock(), ctx.worker)
        else:
            now = ctx.clock()
            await self._record(number, "RELEASED", [repo.Deferred(c.id, now) for c in claims])

    async def _look_up(self, tag: str) -> list[BatchAccepted] | None:
        """The batch Sinch holds under ``tag`` ([] if none), or None if we cannot tell."""
        ctx = self._ctx

        async def find() -> list[BatchInfo]:
            # It counts against the project's rate like a send, and waits out a 429 pause.
            grant = await ctx.pacer.grant()
            try:
                return await ctx.client.find_batches("chunk", tag, written=grant.written)
            finally:
                grant.release()

        policy = dataclasses.replace(ctx.settings.retry, max_attempts=_LOOKUP_ATTEMPTS)
        try:
            found = await retry.call(find, policy, retry_on=retry.repeatable)
        except errors.SinchError:
            return None
        return [BatchAccepted(b.batch_id, b.send_after) for b in found]

    def _accepted(
        self, number: int, accepted: BatchAccepted, follows: bool = False
    ) -> repo.ChunkSent:
        """The chunk's recipients QUEUED with the batch id (one statement when recorded);
        ``follows``: a formed chunk sent whole."""
        ctx = self._ctx
        send_after = parse_time(accepted.send_after)
        scheduled = send_after is not None and send_after > ctx.clock()
        return repo.ChunkSent(
            ctx.campaign.id,
            number,
            accepted.batch_id,
            "SCHEDULED" if scheduled else "ACCEPTED",
            send_after,
            follows,
        )

    async def _record(self, number: int, status: str, results: Sequence[repo.Outcome]) -> None:
        # The chunk first: a formed chunk's recipients become ordinary IN_FLIGHT rows there,
        # which the outcomes (written by the recorder, maybe at once) must find.
        ctx = self._ctx
        await ctx.store.chunks.update(ctx.campaign.id, number, status, ctx.clock())
        ctx.recorder.extend(results)
