"""The delivery simulator: POSTs signed callbacks for accepted messages, with retries.

One :class:`~campaign.sandbox.timers.DueQueue` holds every callback not yet due (first tries
and retries alike); one pump moves due callbacks into a small bounded queue; a fixed pool of
sender coroutines drains it through the app's single :class:`aiohttp.ClientSession`. No task
is spawned per message, so a benchmark with a million messages stays cheap.

Where a message's events go, as at Sinch: to its request's own ``callback_url`` when it gave
one (signed with the app's secret for overridden URLs), else to every registered webhook of
its app whose triggers include the event's (each signed with its own secret), and to the
settings' ``callback_url``, which acts as a webhook registered beforehand for
``settings.triggers`` (signed with ``webhook_secret``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp

from campaign import jsonutil
from campaign.sandbox import delivery, inbound, responses, webhooks
from campaign.sandbox.records import SentMessage
from campaign.sandbox.settings import TRIGGERS, FailureRule, SandboxSettings
from campaign.sandbox.state import SandboxState
from campaign.sandbox.timers import DueQueue
from campaign.sinch import signature

log = logging.getLogger(__name__)

# What signs a callback (resolved when it is sent, so a changed secret applies at once): the
# settings' webhook secret, the app's secret for overridden URLs, or a registered webhook's id.
BY_SETTINGS = "settings"
BY_OVERRIDE = "override"


@dataclass(frozen=True)
class Target:
    """Where a message's callbacks go, which triggers it receives, and what signs them."""

    url: str
    triggers: frozenset[str]
    signer: str


@dataclass
class CallbackJob:
    """One callback to POST: its event, target, and how many attempts it has had."""

    url: str
    message: SentMessage
    event: delivery.Event
    duplicate: bool = False
    attempt: int = 0
    body: bytes | None = None
    payload: dict[str, Any] | None = None
    twin: CallbackJob | None = None
    signer: str = BY_SETTINGS
    # An inbound reply (campaign.sandbox.inbound): its text, channel and identity; None: the
    # job is ``event``'s delivery callback.
    reply: tuple[str, str, str] | None = None


class CallbackDispatcher:
    """Schedules, signs, sends and retries the callbacks of a :class:`SandboxState`.

    Create it inside the running loop; :meth:`run` until cancelled.
    """

    def __init__(self, state: SandboxState, session: aiohttp.ClientSession) -> None:
        self._state = state
        self._session = session
        self._due: DueQueue[CallbackJob] = DueQueue(time.monotonic)
        workers = state.settings.callback_concurrency
        self._ready: asyncio.Queue[CallbackJob] = asyncio.Queue(maxsize=2 * workers)
        self._workers = workers
        self._in_flight = 0

    @property
    def pending(self) -> int:
        """Callbacks waiting for their time, queued for a sender, or being sent."""
        return len(self._due) + self._ready.qsize() + self._in_flight

    def schedule(
        self, message: SentMessage, start: float, failure: FailureRule | None = None
    ) -> None:
        """Plan the callbacks of a freshly accepted ``message`` from ``start`` (monotonic), when
        it leaves the app's MT queue; with ``failure``, only that FAILED report, at ``start``.
        No-op without a target."""
        targets = self.targets(message)
        if not targets:
            return
        settings = self._planning(targets)
        rng = self._state.callback_rng
        duplicates = settings.duplicate_callback_rate
        if failure is None:
            events = delivery.plan(message, settings, rng)
        else:
            events = delivery.failure(message, settings, failure, _happened(message, failure))
        self._schedule_reply(message, start, events, targets)
        for event in events:
            for target in targets:
                if event.trigger not in target.triggers:
                    continue
                job = CallbackJob(target.url, message, event, signer=target.signer)
                self._due.push(start + event.offset_s, job)
                if duplicates and rng.random() < duplicates:
                    # A redelivery of the same event: same body, sent a little later.
                    later = event.offset_s + rng.uniform(0.0, max(settings.queued_delay_s, 0.01))
                    twin = CallbackJob(
                        target.url, message, event, duplicate=True, twin=job, signer=target.signer
                    )
                    self._due.push(start + later, twin)

    def _schedule_reply(
        self,
        message: SentMessage,
        start: float,
        events: list[delivery.Event],
        targets: list[Target],
    ) -> None:
        """An inbound reply after ``message``'s delivery, when its identity replies."""
        settings = self._state.settings
        delivered = [e for e in events if e.status is not None and e.status.value == "DELIVERED"]
        if not delivered:
            return
        last = delivered[-1]
        channel, identity = last.hop.channel, last.hop.identity
        if not inbound.replies(settings, channel, identity):
            return
        at = start + last.offset_s + settings.inbound_delay_s
        for target in targets:
            if target.signer in (BY_SETTINGS, BY_OVERRIDE) or "MESSAGE_INBOUND" in target.triggers:
                reply = (settings.inbound_text, channel, identity)
                job = CallbackJob(target.url, message, last, signer=target.signer, reply=reply)
                self._due.push(at, job)

    def targets(self, message: SentMessage) -> list[Target]:
        """Where the callbacks of ``message`` go: its own ``callback_url`` alone (Sinch sends
        that message's events there instead), else the settings' URL and the app's webhooks."""
        settings = self._state.settings
        every = frozenset(settings.triggers)
        if message.callback_url:
            return [Target(message.callback_url, every, BY_OVERRIDE)]
        targets = (
            [Target(settings.callback_url, every, BY_SETTINGS)] if settings.callback_url else []
        )
        for hook in webhooks.subscribers(self._state, message.app_id):
            targets.append(Target(hook["target"], frozenset(hook["triggers"]), hook["id"]))
        return targets

    def _planning(self, targets: list[Target]) -> SandboxSettings:
        """The settings to plan events with: those whose triggers some target wants (a webhook
        may want MESSAGE_SUBMIT while ``settings.triggers`` leaves it out)."""
        settings = self._state.settings
        wanted = frozenset().union(*(t.triggers for t in targets)) & frozenset(TRIGGERS)
        if wanted == frozenset(settings.triggers):
            return settings
        return dataclasses.replace(settings, triggers=tuple(t for t in TRIGGERS if t in wanted))

    def clear(self) -> None:
        """Drop every callback not yet being sent (``POST /_sandbox/reset``)."""
        self._due.clear()
        while not self._ready.empty():
            self._ready.get_nowait()

    async def run(self) -> None:
        """Pump due callbacks to the senders until cancelled."""
        async with asyncio.TaskGroup() as group:
            for _ in range(self._workers):
                group.create_task(self._sender())
            while True:
                job = await self._due.get()
                await self._ready.put(job)

    async def _sender(self) -> None:
        while True:
            job = await self._ready.get()
            self._in_flight += 1
            try:
                await self._attempt(job)
            except asyncio.CancelledError:
                raise
            except Exception:  # supervision point: one bad callback must not stop a sender
                log.exception("sandbox callback failed", extra={"action": "callback"})
            finally:
                self._in_flight -= 1

    async def _attempt(self, job: CallbackJob) -> None:
        state = self._state
        settings = state.settings
        if job.signer not in (BY_SETTINGS, BY_OVERRIDE) and job.signer not in state.webhooks:
            return  # its webhook was deleted meanwhile: Sinch no longer calls it
        if job.body is None and job.twin is not None and job.twin.body is not None:
            job.payload, job.body = job.twin.payload, job.twin.body
        if job.body is None and job.reply is not None:
            text, channel, identity = job.reply
            now = datetime.now(UTC)
            job.payload = inbound.reply_body(job.message, channel, identity, text, now)
            job.body = jsonutil.dumpb(job.payload)
        if job.body is None:
            job.payload = delivery.callback_body(job.message, job.event, datetime.now(UTC))
            job.body = jsonutil.dumpb(job.payload)
        job.attempt += 1
        headers = {"Content-Type": "application/json"}
        secret = self._secret(job)
        if secret:
            headers.update(signature.sign(secret, job.body, timestamp=int(time.time())))
        status: int | None = None
        error: str | None = None
        try:
            timeout = aiohttp.ClientTimeout(total=settings.callback_timeout_s)
            async with self._session.post(
                job.url, data=job.body, headers=headers, timeout=timeout
            ) as response:
                status = response.status
                await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        ok = status is not None and 200 <= status < 300
        self._log(job, status, error)
        if ok:
            state.stats.callbacks_sent += 1
            return
        state.stats.callback_attempts_failed += 1
        if job.attempt >= settings.callback_max_attempts:
            state.stats.callbacks_failed += 1
            return
        delay = settings.callback_retry_base_s * settings.callback_retry_factor ** (job.attempt - 1)
        self._due.push(time.monotonic() + delay, job)

    def _secret(self, job: CallbackJob) -> str | None:
        """The secret that signs ``job`` now (None: sent unsigned)."""
        settings = self._state.settings
        if job.signer == BY_SETTINGS:
            return settings.webhook_secret
        if job.signer == BY_OVERRIDE:
            return settings.secret_for_overridden_urls()
        hook = self._state.webhooks.get(job.signer)
        return (hook.get("secret") or None) if hook is not None else None

    def _log(self, job: CallbackJob, status: int | None, error: str | None) -> None:
        if not self._state.settings.record_history:
            return
        event = job.event
        self._state.callback_log.append(
            {
                "url": job.url,
                "trigger": "MESSAGE_INBOUND" if job.reply else event.trigger.value,
                "status": event.status.value if event.status else None,
                "channel": event.hop.channel,
                "message_id": job.message.message_id,
                "attempt": job.attempt,
                "duplicate": job.duplicate,
                "response_status": status,
                "error": error,
                "sent_at": responses.iso_millis(datetime.now(UTC)),
                "body": job.payload,
            }
        )


def _happened(message: SentMessage, failure: FailureRule) -> float:
    """When ``failure`` happened, from the message's turn: an expired message expired when its
    ttl ran out (``event_time``), before its turn; anything else, at its turn."""
    ttl = message.ttl_s
    if failure is delivery.EXPIRED and ttl is not None:
        return ttl - message.queued_s
    return 0.0
