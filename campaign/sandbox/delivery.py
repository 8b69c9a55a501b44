"""What happens to a message after Sinch accepted it: the callbacks it produces, as data.

:func:`plan` decides the sequence (submit, queued, delivered, read; failures and channel
switches from the failure rules) and when each event happens relative to the moment the
message left the app's MT queue (:mod:`campaign.sandbox.outbound`); :func:`failure` is the
one report of a message that never left it (expired, or refused with its batch);
:func:`callback_body` builds the JSON Sinch would POST for one event. All are pure: the
random generator and the current time are passed in.
"""

from __future__ import annotations

import dataclasses
import enum
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson

from campaign.sandbox import channels, responses
from campaign.sandbox.native import transcode
from campaign.sandbox.records import Hop, SentMessage
from campaign.sandbox.settings import FailureRule, SandboxSettings


class Trigger(enum.StrEnum):
    """The webhook triggers the sandbox emits."""

    MESSAGE_SUBMIT = "MESSAGE_SUBMIT"
    MESSAGE_DELIVERY = "MESSAGE_DELIVERY"


class DeliveryStatus(enum.StrEnum):
    """``message_delivery_report.status`` values (QUEUED is never sent as a callback)."""

    QUEUED_ON_CHANNEL = "QUEUED_ON_CHANNEL"
    DELIVERED = "DELIVERED"
    READ = "READ"
    FAILED = "FAILED"
    SWITCHING_CHANNEL = "SWITCHING_CHANNEL"


# Why a message fails without reaching a channel. Its ttl ran out while it waited in the app's
# MT queue: MESSAGE_EXPIRED (Sinch's reason code for a message whose ttl ran out), reported
# when its turn comes. A scheduled batch fell due while the queue had no room for all of it:
# RATE_LIMITED, for each of its recipients, when it fell due.
EXPIRED = FailureRule(
    pattern=".",
    code="MESSAGE_EXPIRED",
    description="The message's ttl ran out while it waited in the app's outbound queue",
)
QUEUE_FULL = FailureRule(
    pattern=".",
    code="RATE_LIMITED",
    description="The app's outbound queue was full when the scheduled batch fell due",
)

# WhatsApp's 24-hour customer care window was closed and the message was not a template.
OUTSIDE_WINDOW = FailureRule(
    pattern=".",
    code="OUTSIDE_ALLOWED_SENDING_WINDOW",
    channel="WHATSAPP",
    description="The recipient has no open 24-hour customer care window on WhatsApp:"
    " only a template_message may be sent outside it",
)


def channel_failure(
    message: SentMessage, hop: Hop, settings: SandboxSettings
) -> FailureRule | None:
    """Why ``message`` fails on ``hop``: a failure rule, else the channel's own rules (a
    free-form WhatsApp message outside the 24-hour window); None: it is delivered there."""
    identity = hop.identity or message.contact_id
    rule = settings.failure_for(hop.channel, identity)
    if rule is not None:
        return rule
    if (
        hop.channel == "WHATSAPP"
        and not settings.window_open(identity)
        and not whatsapp_template(message.message)
    ):
        return OUTSIDE_WINDOW
    return None


def whatsapp_template(message: Mapping[str, Any]) -> bool:
    """Whether WhatsApp receives a template: the window rule judges what the channel gets, so
    an ``explicit_channel_message`` or ``explicit_channel_omni_message`` for WhatsApp decides
    over the message's own content."""
    try:
        native = orjson.loads(transcode(message, "WHATSAPP"))
    except orjson.JSONDecodeError:  # an explicit text that is not a message object
        return False
    return isinstance(native, dict) and native.get("type") == "template"


@dataclass(frozen=True)
class Event:
    """One callback-worthy event, sent ``offset_s`` seconds after the message left the app's
    MT queue (``queued_s`` after it was accepted).

    ``happened_s`` is when the event happened on the channel (the callback's ``event_time``);
    it equals ``offset_s`` unless reordering sends it at another moment.
    """

    offset_s: float
    trigger: Trigger
    hop: Hop
    status: DeliveryStatus | None = None
    reason: FailureRule | None = None
    happened_s: float | None = None


def plan(message: SentMessage, settings: SandboxSettings, rng: random.Random) -> list[Event]:
    """The events of ``message``, in the order they happen unless ``settings.reorder``, timed
    from when it left the app's MT queue.

    MESSAGE_SUBMIT comes first, on the first channel. Then on each channel of the route:
    QUEUED_ON_CHANNEL, and DELIVERED (+ READ on channels that report it); or, when a failure
    rule matches, SWITCHING_CHANNEL to the next channel or FAILED on the last one. Each delay
    counts from the previous event and gets a uniform jitter, so jitter alone never reorders.
    """

    def later(delay: float, jitter: float) -> float:
        return delay + (rng.uniform(0.0, jitter) if jitter > 0 else 0.0)

    events: list[Event] = []
    if Trigger.MESSAGE_SUBMIT in settings.triggers:
        events.append(Event(0.0, Trigger.MESSAGE_SUBMIT, message.route[0]))
    if Trigger.MESSAGE_DELIVERY in settings.triggers:
        t = 0.0
        delivery = Trigger.MESSAGE_DELIVERY
        for index, hop in enumerate(message.route):
            rule = channel_failure(message, hop, settings)
            t += later(settings.queued_delay_s, settings.queued_jitter_s)
            events.append(Event(t, delivery, hop, DeliveryStatus.QUEUED_ON_CHANNEL))
            t += later(settings.delivered_delay_s, settings.delivered_jitter_s)
            if rule is not None:
                last = index == len(message.route) - 1
                status = DeliveryStatus.FAILED if last else DeliveryStatus.SWITCHING_CHANNEL
                events.append(Event(t, delivery, hop, status, rule))
                continue
            events.append(Event(t, delivery, hop, DeliveryStatus.DELIVERED))
            if hop.channel in channels.READ_CHANNELS:
                t += later(settings.read_delay_s, settings.read_jitter_s)
                events.append(Event(t, delivery, hop, DeliveryStatus.READ))
            break
    if settings.reorder and len(events) > 1:
        offsets = [event.offset_s for event in events]
        rng.shuffle(offsets)
        # Sent in another order, but each still says when it happened, as Sinch's would.
        events = [
            dataclasses.replace(e, offset_s=o, happened_s=e.offset_s)
            for e, o in zip(events, offsets, strict=True)
        ]
    return events


def failure(
    message: SentMessage, settings: SandboxSettings, rule: FailureRule, happened_s: float = 0.0
) -> list[Event]:
    """The one FAILED report of a message that never reached a channel (no MESSAGE_SUBMIT:
    nothing was submitted), sent when its turn comes; it happened ``happened_s`` from then."""
    if Trigger.MESSAGE_DELIVERY not in settings.triggers:
        return []
    hop = message.route[0]
    status = DeliveryStatus.FAILED
    return [Event(0.0, Trigger.MESSAGE_DELIVERY, hop, status, rule, happened_s=happened_s)]


def callback_body(message: SentMessage, event: Event, now: datetime) -> dict[str, Any]:
    """The JSON object Sinch POSTs for ``event`` of ``message`` at ``now``."""
    hop = event.hop
    identity = {
        "channel": hop.channel,
        "identity": channels.callback_identity(hop.channel, hop.identity),
        "app_id": "",
    }
    stamp = responses.iso_millis(now)
    left = message.accepted_time + timedelta(seconds=message.queued_s)
    happened = (
        responses.iso_millis(left + timedelta(seconds=event.happened_s))
        if event.happened_s is not None
        else stamp
    )
    body: dict[str, Any] = {
        "app_id": message.app_id,
        "project_id": message.project_id,
        "accepted_time": stamp,
        "event_time": happened,
        "message_metadata": message.message_metadata,
        "correlation_id": message.correlation_id,
    }
    if event.trigger is Trigger.MESSAGE_SUBMIT:
        body["message_submit_notification"] = {
            "message_id": message.message_id,
            "conversation_id": "",
            "contact_id": message.contact_id,
            "channel_identity": identity,
            "submitted_message": message.message,
            "metadata": message.message_metadata,
            "processing_mode": "DISPATCH",
        }
        return body
    report: dict[str, Any] = {
        "message_id": message.message_id,
        "conversation_id": "",
        "status": event.status,
        "channel_identity": identity,
        "contact_id": message.contact_id,
        "metadata": message.message_metadata,
        "processing_mode": "DISPATCH",
    }
    if event.reason is not None:
        report["reason"] = reason_json(event.reason)
    body["message_delivery_report"] = report
    return body


def reason_json(rule: FailureRule) -> dict[str, str]:
    """The ``reason`` object of a FAILED or SWITCHING_CHANNEL report."""
    description = rule.description or (
        f"The underlying channel reported: {rule.code.replace('_', ' ').lower()}"
    )
    return {"code": rule.code, "description": description, "sub_code": "UNSPECIFIED_SUB_CODE"}
