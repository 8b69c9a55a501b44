"""Individual mode: one ``messages:send`` request per recipient, rendered here."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import orjson

from campaign import errors, pacing, rendering
from campaign.sending import outcomes
from campaign.sending.context import Context
from campaign.sending.outcomes import Kind
from campaign.sinch import wire
from campaign.store import repository as repo


class IndividualSender:
    """Turns claimed rows into ``messages:send`` requests and their answers into outcomes."""

    claims_ahead = True
    per_request = 1

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def messages(self, claim: repo.Claim) -> int:
        return 1

    async def claim(self, size: int) -> list[repo.Claim]:
        ctx = self._ctx
        return await ctx.store.recipients.claim(ctx.campaign.id, size, ctx.clock(), ctx.worker)

    async def sendable(self, claims: list[repo.Claim]) -> list[repo.Claim]:
        """``claims`` without those whose quiet hours have begun: those go back to PENDING
        until their window opens, written at once."""
        keep, later = self._ctx.timing.split(claims)
        if later:
            await self._ctx.store.recipients.record(later, self._ctx.clock(), self._ctx.worker)
        return keep

    async def before_send(self, claims: Sequence[repo.Claim], index: int) -> bool:
        return await self._ctx.writeahead.announce(claims, index)

    async def give_back(self, claims: Sequence[repo.Claim]) -> None:
        """Claimed, never sent: back to PENDING for the next run."""
        self._ctx.recorder.extend(repo.Release(c.id) for c in claims)

    async def settle(self, lease: float) -> tuple[int, int]:
        """Nothing to look up: a lost request's recipient is settled by its key's callback."""
        return 0, 0

    def body(self, claim: repo.Claim) -> dict[str, Any]:
        ctx = self._ctx
        params = orjson.loads(claim.parameters)
        return wire.individual_body(
            channel=claim.channel,
            identity=claim.identity,
            identities=claim.identities,
            message=ctx.template.render(params),
            key=wire.recipient_key(ctx.campaign.key, claim.position),
            send=ctx.timing.send_options([claim.time_zone]),
        )

    async def send(self, claim: repo.Claim, grant: pacing.Grant) -> None:
        ctx = self._ctx
        started = False
        outcome: repo.Outcome | None = None
        try:
            try:
                body = self.body(claim)
            except rendering.RenderError as exc:
                outcome = repo.Failed(claim.id, "RENDER_ERROR", str(exc))
                return
            started = True
            ctx.stats.requests += 1
            try:
                accepted = await ctx.client.send_message(body, written=grant.written)
            except errors.SinchError as exc:
                outcome = self._after_error(claim, exc)
            else:
                key = wire.recipient_key(ctx.campaign.key, claim.position)
                outcome = repo.Sent(claim.id, accepted.message_id, key=key)
                ctx.stats.sent += 1
                ctx.accepted()
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
                ctx.recorder.add(outcome)

    def _after_error(self, claim: repo.Claim, exc: errors.SinchError) -> repo.Outcome:
        ctx = self._ctx
        verdict = ctx.judge(exc, claim.attempts)
        ctx.tally(verdict)
        ctx.halt.after(verdict, exc)
        if verdict.kind in (Kind.CREDENTIALS, Kind.CAMPAIGN):
            return repo.Release(claim.id)  # refused: it did not go out for this recipient
        if verdict.kind is Kind.QUEUE_FULL:  # due again at once: the gate holds it for room
            return repo.Deferred(claim.id, ctx.clock())
        if verdict.kind is Kind.RETRY:
            at = ctx.clock() + timedelta(seconds=verdict.delay)
            return repo.Retry(claim.id, at, verdict.code, exc.message)
        if verdict.kind is Kind.IN_DOUBT:
            return repo.InDoubt(claim.id, str(exc))
        return repo.Failed(claim.id, verdict.code, outcomes.recipient_reason(exc))
