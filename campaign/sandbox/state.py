"""The sandbox's memory: settings in force, tokens, messages, batches, counters.

One :class:`SandboxState` per app. It holds plain data only (nothing bound to an event loop),
so tests may read it directly through ``SandboxServer.state``.
"""

from __future__ import annotations

import dataclasses
import math
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from campaign.sandbox import delivery, outbound, ratelimit, records
from campaign.sandbox.settings import FailureRule, SandboxSettings

TokenCheck = Literal["valid", "expired", "unknown"]


@dataclass
class Stats:
    """Counters since start (or the last reset)."""

    requests: int = 0
    accepted_messages: int = 0
    batches: int = 0
    rate_limited: int = 0
    queue_full: int = 0  # refused because the app's MT queue was full (429, no Retry-After)
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
        # Each app's MT queue (created on first use).
        self.queues: dict[str, outbound.OutboundQueue] = {}
        self.app_reads: dict[str, int] = {}  # GET apps/{app_id}, per app
        self.deleted_apps: set[str] = set()  # by ``delete_app_after_reads``
        # The webhooks registered through the API, by id, in the order created (JSON objects
        # as Sinch answers them; :mod:`campaign.sandbox.webhooks` owns their shape).
        self.webhooks: dict[str, dict[str, Any]] = {}
        # Set by the delivery simulator while it runs: called once per accepted message, with
        # when it leaves the queue (monotonic) and the failure it meets there, if any.
        self.on_accept: Callable[[records.SentMessage, float, FailureRule | None], None] | None = (
            None
        )
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

    def apps(self) -> list[str]:
        """The apps the project has: those of the settings, less any deleted since."""
        return [a for a in self._settings.app_ids if a not in self.deleted_apps]

    def has_app(self, app_id: str) -> bool:
        return app_id in self._settings.app_ids and app_id not in self.deleted_apps

    def read_app(self, app_id: str) -> None:
        """``app_id`` was read: deleted now if ``delete_app_after_reads`` says so."""
        reads = self.app_reads[app_id] = self.app_reads.get(app_id, 0) + 1
        after = self._settings.delete_app_after_reads
        if after and reads >= after:
            self.deleted_apps.add(app_id)

    def queue(self, app_id: str) -> outbound.OutboundQueue:
        """The MT queue of ``app_id``."""
        queue = self.queues.get(app_id)
        if queue is None:
            queue = self.queues[app_id] = outbound.OutboundQueue()
        return queue

    def has_room(self, app_id: str, count: int = 1) -> bool:
        """Whether ``count`` more messages fit in the MT queue of ``app_id`` now; counts a
        ``queue_full`` refusal when they do not."""
        if self.queue(app_id).size(time.monotonic()) + count <= self._settings.queue_limit:
            return True
        self.stats.queue_full += 1
        return False

    def record(self, message: records.SentMessage) -> None:
        """Remember an accepted message, queue it, and start its delivery simulation (the
        caller has checked :meth:`has_room`)."""
        now = time.monotonic()
        leaves, _ = self.queue(message.app_id).admit(1, now, self._settings.outbound_rate)
        self._accepted(message, now, leaves)

    def release(self, batch: records.Batch) -> bool:
        """Send a batch's messages into its app's MT queue now and mark it PROCESSED.

        When they do not all fit, none is sent: the batch records why, and each recipient
        built gets a FAILED report (RATE_LIMITED) now; False.
        """
        wall, now = datetime.now(UTC), time.monotonic()
        pending, batch.pending = batch.pending, []
        batch.status = records.BatchStatus.PROCESSED
        unbuilt, batch.unbuilt = batch.unbuilt, 0
        if not self.has_room(batch.app_id, len(pending) + unbuilt):
            batch.refused = "the app's outbound queue was full"
            for message in pending:
                message.accepted_time = wall
                if self.on_accept is not None:
                    self.on_accept(message, now, delivery.QUEUE_FULL)
            return False
        queue = self.queue(batch.app_id)
        first, interval = queue.admit(len(pending) + unbuilt, now, self._settings.outbound_rate)
        for i, message in enumerate(pending):
            message.accepted_time = wall
            self._accepted(message, now, first + i * interval)
        self.stats.accepted_messages += unbuilt
        if unbuilt and batch.ttl_s is not None:
            # Those that wait longer than the ttl: from the first index that does, to the end.
            late = max(0, math.floor((now + batch.ttl_s - first) / interval) + 1)
            for i in range(late, unbuilt):
                queue.expire_at(first + i * interval)
        return True

    def _accepted(self, message: records.SentMessage, now: float, leaves: float) -> None:
        """Remember ``message``, queued at ``now`` to leave at ``leaves``, and hand it to the
        delivery simulator; a ttl that runs out before then makes it expire at its turn."""
        if self._settings.record_history:
            self.messages.append(message)
        self.stats.accepted_messages += 1
        message.queued_s = leaves - now
        ttl = message.ttl_s
        failure: FailureRule | None = None
        if ttl is not None and message.queued_s > ttl:
            self.queue(message.app_id).expire_at(leaves)
            failure = delivery.EXPIRED
        if self.on_accept is not None:
            self.on_accept(message, leaves, failure)

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
            **self._queue_json(),
        }

    def _queue_json(self) -> dict[str, int]:
        """The MT queues (every app's together): size now, limit, rate, ttl expiries so far."""
        now = time.monotonic()
        queues = self.queues.values()
        return {
            "queue_size": sum(q.size(now) for q in queues),
            "queue_limit": self._settings.queue_limit,
            "outbound_rate": self._settings.outbound_rate,
            "expired_in_queue": sum(q.expired(now) for q in queues),
        }

    def reset(self) -> None:
        """Forget messages, batches, callbacks, counters, rate windows, MT queues, registered
        webhooks, and reads and deletions of the apps.

        Settings and issued tokens are kept, so clients holding a token carry on.
        """
        self.messages.clear()
        self.batches.clear()
        self.callback_log.clear()
        self.arrivals.clear()
        self.stats = Stats()
        self.peak = ratelimit.PeakMeter()
        self.limiters.clear()
        self.queues.clear()
        self.app_reads.clear()
        self.deleted_apps.clear()
        self.webhooks.clear()
        self.epoch = self.started = time.monotonic()
        self.fault_rng, self.callback_rng = _rngs(self._settings.seed)


def _rngs(seed: int | None) -> tuple[random.Random, random.Random]:
    """Independent generators for faults and for callbacks, so one does not shift the other."""
    if seed is None:
        return random.Random(), random.Random()
    return random.Random(f"faults-{seed}"), random.Random(f"callbacks-{seed}")
