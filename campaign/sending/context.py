"""What the send loop and the sender of each mode share for one campaign's sending."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from campaign import errors, pacing, rendering, retry
from campaign.models import DispatchStats
from campaign.sending import outcomes
from campaign.sending.feed import LoadFeed
from campaign.sending.outcomes import Kind, RefusalStreak, Verdict
from campaign.sending.pacer import Pacer
from campaign.sending.queue import QueueGate
from campaign.sending.recorder import Recorder
from campaign.sending.timing import Timing
from campaign.sending.writeahead import WriteAhead
from campaign.sinch.client import SinchClient
from campaign.store import repository as repo


@dataclass(frozen=True)
class SendSettings:
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
    batch_size: int = 1000  # recipients per Batch API request (batch mode)
    # Keep the app's MT queue below this share of its limit (campaign.sending.queue); None:
    # do not read it.
    queue_share: float | None = 0.8


class Halt:
    """Why sending stops before it is done: a stop asked (a signal, a worker declared dead),
    or Sinch refusing what no recipient is to blame for."""

    def __init__(self, stop: asyncio.Event) -> None:
        self.stop = stop
        # Identical refusals of the message in a row, over every sender of this process.
        self.streak = RefusalStreak()
        self._credentials: errors.SinchAuthError | None = None
        self._campaign: errors.CampaignRefusedError | None = None

    @property
    def asked(self) -> bool:
        return self.stop.is_set()

    def refuse_credentials(self, exc: errors.SinchAuthError) -> None:
        """Sinch refused the credentials (a key revoked mid-run): that is no recipient's
        fault, so nobody fails for it; sending stops and the rest waits for the next run."""
        if self._credentials is None:
            self._credentials = exc
            self.stop.set()

    def refuse_campaign(self, error: errors.CampaignRefusedError) -> None:
        """Sinch refused what every request of the campaign carries: sending stops, and what
        was not sent waits for a corrected campaign."""
        if self._campaign is None:
            self._campaign = error
            self.stop.set()

    def after(self, verdict: Verdict, exc: errors.SinchError) -> None:
        """Stop when ``verdict`` (of ``exc``) stops the run."""
        if verdict.kind is Kind.CREDENTIALS:
            assert isinstance(exc, errors.SinchAuthError)
            self.refuse_credentials(exc)
        elif verdict.kind is Kind.CAMPAIGN:
            assert verdict.refusal is not None
            self.refuse_campaign(verdict.refusal)

    def raise_refusal(self) -> None:
        """The run's error when Sinch's refusal stopped it."""
        if self._credentials is not None:
            raise errors.RunInterruptedError(
                f"Sinch refused the credentials while sending ({self._credentials.message}); "
                "what was not sent is kept for the next run: fix them and run the same "
                "command again"
            )
        if self._campaign is not None:
            raise self._campaign


@dataclass
class Context:
    """One campaign's sending: what is sent, where it is recorded, and the shared parts."""

    store: repo.Store
    client: SinchClient
    campaign: repo.CampaignRow
    channel: str
    template: rendering.MessageTemplate
    settings: SendSettings
    clock: Callable[[], datetime]
    worker: int | None
    timing: Timing
    pacer: Pacer
    recorder: Recorder
    halt: Halt
    writeahead: WriteAhead
    stats: DispatchStats
    gate: QueueGate
    feed: LoadFeed | None = None

    def judge(self, exc: errors.SinchError, attempts: int, recipients: int = 1) -> Verdict:
        """What ``exc`` means for a request of ``recipients`` recipients, the same in every
        mode: its classification, then the streak of identical refusals of the message
        (which may stop the run in its place)."""
        sinch = self.client.config
        verdict = outcomes.classify(
            exc,
            attempts,
            self.settings.retry,
            random.random(),
            recipients=recipients,
            app=outcomes.App(sinch.app_id, sinch.region),
            queue_full=self.gate.read_full(),
        )
        return self.halt.streak.feed(verdict, exc, recipients)

    def accepted(self) -> None:
        """Sinch accepted a request: no streak of refusals, no queue found full, goes on."""
        self.halt.streak.accepted()
        self.gate.accepted()

    def tally(self, verdict: Verdict, recipients: int = 1) -> None:
        """Count ``verdict`` for ``recipients`` recipients; pause every sender on the request
        rate's 429, hold every send until the queue has room on the queue's."""
        stats = self.stats
        if verdict.rate_limited:
            stats.rate_limited += 1
            self.pacer.pause(verdict.delay)
        if verdict.kind is Kind.QUEUE_FULL:
            stats.queue_full += 1
            self.gate.refused()
        elif verdict.kind is Kind.RETRY:
            stats.retried += recipients
        elif verdict.kind is Kind.IN_DOUBT:
            stats.in_doubt += recipients
        elif verdict.kind is Kind.FAIL:
            stats.failed += recipients
