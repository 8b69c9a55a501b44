"""The sandbox's memory: settings in force, tokens, messages, batches, counters.

One :class:`SandboxState` per app. It holds plain data only (nothing bound to an event loop),
so tests may read it directly through ``SandboxServer.state``.
"""

from __future__ import annotations

import dataclasses
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from campaign.sandbox import ratelimit, records
from campaign.sandbox.settings import SandboxSettings

TokenCheck = Literal["valid", "expired", "unknown"]


@dataclass
class Stats:
    """Counters since start (or the last reset)."""

    requests: int = 0
    accepted_messages: int = 0
    batches: int = 0
    rate_limited: int = 0
    errors_injected: int = 0
    dropped: int = 0
    tokens_issued: int = 0
    auth_failures: int = 0
    invalid_requests: int = 0
    callbacks_sent: int = 0
    callbacks_failed: int = 0
    callback_attempts_failed: int = 0


class TokenStore:
    """Issued bearer tokens and when they expire (monotonic clock)."""

    def __init__(self) -> None:
        self._expiry: dict[str, float] = {}

    def issue(self, lifetime: int, now: float) -> str:
        """A new random token valid for ``lifetime`` seconds."""
        token = secrets.token_urlsafe(32)
        self._expiry[token] = now + lifetime
        return token

    def check(self, token: str, now: float) -> TokenCheck:
        """Whether ``token`` is one of ours and still valid."""
        expiry = self._expiry.get(token)
        if expiry is None:
            return "unknown"
        return "valid" if now < expiry else "expired"

    def issued(self) -> list[str]:
        """Every token issued so far (for tests that check a token never shows anywhere)."""
        return list(self._expiry)

    def expire_all(self) -> int:
        """Make every token expired now; returns how many there were."""
        for token in self._expiry:
            self._expiry[token] = float("-inf")
        return len(self._expiry)

    def __len__(self) -> int:
        return len(self._expiry)


class SandboxState:
    """Everything one running sandbox knows. Settings are read anew on every request."""

    def __init__(self, settings: SandboxSettings) -> None:
        self.initial_settings = settings
        self._settings = settings
        self.tokens = TokenStore()
        self.messages: list[records.SentMessage] = []
        self.batches: dict[str, records.Batch] = {}
        self.callback_log: list[dict[str, Any]] = []
        # Every API request's arrival and answer (with record_history), for Retry-After checks.
        self.arrivals: list[ratelimit.Arrival] = []
        self.stats = Stats()
        self.peak = ratelimit.PeakMeter()
        self.limiters: dict[str, ratelimit.SlidingWindowLimiter] = {}
        self.epoch = self.started = time.monotonic()
        self.fault_rng, self.callback_rng = _rngs(settings.seed)
        # Set by the delivery simulator while it runs: called once per accepted message.
        self.on_accept: Callable[[records.SentMessage], None] | None = None
        # Set by the delivery simulator: how many callbacks are waiting or in flight.
        self.pending_callbacks: Callable[[], int] = lambda: 0

    @property
    def settings(self) -> SandboxSettings:
        """The settings in force."""
        return self._settings

    @settings.setter
    def settings(self, new: SandboxSettings) -> None:
        old, self._settings = self._settings, new
        if new.seed != old.seed:
            self.fault_rng, self.callback_rng = _rngs(new.seed)
        if (new.storm_every_s, new.storm_duration_s) != (old.storm_every_s, old.storm_duration_s):
            self.epoch = time.monotonic()

    def limiter(self, project_id: str) -> ratelimit.SlidingWindowLimiter:
        """The rate window of ``project_id``."""
        limiter = self.limiters.get(project_id)
        if limiter is None:
            limiter = self.limiters[project_id] = ratelimit.SlidingWindowLimiter()
        return limiter

    def clock(self) -> float:
        """Seconds since the sandbox started (or was last reset), as arrivals are timed."""
        return time.monotonic() - self.started

    def record(self, message: records.SentMessage) -> None:
        """Remember an accepted message and start its delivery simulation."""
        if self._settings.record_history:
            self.messages.append(message)
        self.stats.accepted_messages += 1
        if self.on_accept is not None:
            self.on_accept(message)

    def release(self, batch: records.Batch) -> None:
        """Send a batch's prepared messages now and mark it PROCESSED."""
        now = datetime.now(UTC)
        pending, batch.pending = batch.pending, []
        batch.status = records.BatchStatus.PROCESSED
        self.stats.accepted_messages += batch.unbuilt
        batch.unbuilt = 0
        for message in pending:
            message.accepted_time = now
            self.record(message)

    def stats_json(self) -> dict[str, Any]:
        """The counters of ``GET /_sandbox/stats``."""
        return {
            **dataclasses.asdict(self.stats),
            "max_window": self.peak.peak,
            "callbacks_pending": self.pending_callbacks(),
            "messages": len(self.messages),
            "scheduled_batches": sum(
                1 for b in self.batches.values() if b.status is records.BatchStatus.SCHEDULED
            ),
            "tokens": len(self.tokens),
        }

    def reset(self) -> None:
        """Forget messages, batches, callbacks, counters and rate windows.

        Settings and issued tokens are kept, so clients holding a token carry on.
        """
        self.messages.clear()
        self.batches.clear()
        self.callback_log.clear()
        self.arrivals.clear()
        self.stats = Stats()
        self.peak = ratelimit.PeakMeter()
        self.limiters.clear()
        self.epoch = self.started = time.monotonic()
        self.fault_rng, self.callback_rng = _rngs(self._settings.seed)


def _rngs(seed: int | None) -> tuple[random.Random, random.Random]:
    """Independent generators for faults and for callbacks, so one does not shift the other."""
    if seed is None:
        return random.Random(), random.Random()
    return random.Random(f"faults-{seed}"), random.Random(f"callbacks-{seed}")
