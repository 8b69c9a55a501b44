"""Delivery tracking, pure: callbacks -> events, and the status machine that applies them.

A recipient's status only moves forward::

    QUEUED / IN_DOUBT  <  QUEUED_ON_CHANNEL = SWITCHING_CHANNEL  <  DELIVERED  <  READ
                                                   FAILED: final

A late or duplicate event never moves a recipient back. FAILED is final, except that a
delivery on another channel, reported as happening after the failure (the channel fallback of
``channel_priority_order``), still counts. Between the two middle statuses the newer event
(by ``event_time``) wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from campaign.models import Status
from campaign.sinch import wire

DELIVERY = "MESSAGE_DELIVERY"
SUBMIT = "MESSAGE_SUBMIT"

# The payload key of a callback names its trigger (sinch-api.md, "Envelope").
_TRIGGERS = {
    "message_delivery_report": DELIVERY,
    "message_submit_notification": SUBMIT,
    "message": "MESSAGE_INBOUND",
    "event": "EVENT_INBOUND",
    "event_delivery_report": "EVENT_DELIVERY",
    "conversation_start_notification": "CONVERSATION_START",
    "conversation_stop_notification": "CONVERSATION_STOP",
    "conversation_delete_notification": "CONVERSATION_DELETE",
    "contact_create_notification": "CONTACT_CREATE",
    "contact_delete_notification": "CONTACT_DELETE",
    "contact_merge_notification": "CONTACT_MERGE",
    "contact_update_notification": "CONTACT_UPDATE",
    "duplicated_identities": "CONTACT_IDENTITIES_DUPLICATION",
    "capability_notification": "CAPABILITY",
    "opt_in_notification": "OPT_IN",
    "opt_out_notification": "OPT_OUT",
    "channel_event_notification": "CHANNEL_EVENT",
    "unsupported_callback": "UNSUPPORTED",
    "smart_conversation_notification": "SMART_CONVERSATIONS",
    "message_redaction": "MESSAGE_INBOUND_SMART_CONVERSATION_REDACTION",
    "batch_status_update": "BATCH_STATUS_UPDATE",
}

DELIVERY_STATUSES = frozenset(
    {
        Status.QUEUED_ON_CHANNEL,
        Status.DELIVERED,
        Status.READ,
        Status.FAILED,
        Status.SWITCHING_CHANNEL,
    }
)

# Statuses that a callback may move a recipient out of: it was sent, or may have been.
TRACKABLE = frozenset({Status.QUEUED, Status.IN_DOUBT, *DELIVERY_STATUSES})

_RANK = {
    Status.QUEUED: 0,
    Status.IN_DOUBT: 0,
    Status.QUEUED_ON_CHANNEL: 1,
    Status.SWITCHING_CHANNEL: 1,
    Status.DELIVERED: 2,
    Status.READ: 3,
    Status.FAILED: 4,
}

FINAL = frozenset({Status.READ, Status.FAILED})


class CallbackError(ValueError):
    """The body is not a Sinch callback (not JSON, not an object, no payload key)."""


@dataclass(frozen=True)
class Event:
    """What we keep of one callback, besides its raw body."""

    trigger: str
    message_id: str | None
    status: Status | None  # for MESSAGE_DELIVERY
    channel: str | None
    event_time: datetime | None
    key: str | None  # the recipient key we sent (correlation_id / message_metadata / metadata)
    batch_id: str | None
    reason_code: str | None
    reason_description: str | None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def parse_time(value: Any) -> datetime | None:
    """An ISO-8601 time from a callback, as aware UTC; None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: year 1 or 9999 shifted out of range
        return None


def _key_and_batch(
    envelope: dict[str, Any], payload: dict[str, Any]
) -> tuple[str | None, str | None]:
    """Our recipient key, from wherever the send put it, and the batch id for batch messages.

    Individual sends carry the key in ``correlation_id`` and ``message_metadata``. Batch
    messages carry ``metadata``: a JSON object (as a string) with ``_batch_id`` and our key
    under ``recipient``.
    """
    batch_id = None
    candidates: list[Any] = [envelope.get("correlation_id"), envelope.get("message_metadata")]
    metadata = payload.get("metadata")
    if isinstance(metadata, str) and metadata.startswith("{"):
        try:
            decoded = orjson.loads(metadata)
        except orjson.JSONDecodeError:
            decoded = None
        if isinstance(decoded, dict):
            batch_id = _text(decoded.get("_batch_id"))
            candidates.insert(0, decoded.get("recipient"))
    else:
        candidates.append(metadata)
    for candidate in candidates:
        if isinstance(candidate, str) and wire.parse_recipient_key(candidate):
            return candidate, batch_id
    return None, batch_id


def parse_callback(body: bytes | str) -> Event:
    """The :class:`Event` in a callback body. Raises :class:`CallbackError` for anything else.

    Unknown triggers and unknown statuses are not errors: they are kept as they come.
    """
    try:
        envelope = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise CallbackError(f"not JSON: {exc}") from None
    if not isinstance(envelope, dict):
        raise CallbackError("not a JSON object")
    found = [key for key in envelope if key in _TRIGGERS and isinstance(envelope[key], dict)]
    if not found:
        raise CallbackError("no known payload key")
    payload: dict[str, Any] = envelope[found[0]]
    trigger = _TRIGGERS[found[0]]
    identity = payload.get("channel_identity")
    channel = _text(identity.get("channel")) if isinstance(identity, dict) else None
    status: Status | None = None
    reason_code = reason_description = None
    if trigger == DELIVERY:
        try:
            status = Status(str(payload.get("status")))
        except ValueError:
            status = None
        if status is not None and status not in DELIVERY_STATUSES:
            status = None
        reason = payload.get("reason")
        if isinstance(reason, dict):
            reason_code = _text(reason.get("code"))
            reason_description = _text(reason.get("description"))
    key, batch_id = _key_and_batch(envelope, payload)
    return Event(
        trigger=trigger,
        message_id=_text(payload.get("message_id")),
        status=status,
        channel=channel,
        event_time=parse_time(envelope.get("event_time"))
        or parse_time(envelope.get("accepted_time")),
        key=key,
        batch_id=batch_id,
        reason_code=reason_code,
        reason_description=reason_description,
    )


@dataclass(frozen=True)
class Tracked:
    """A recipient as the status machine sees it."""

    status: Status
    status_at: datetime | None  # the event time of the current status
    channel: str | None  # the channel of the current status


@dataclass(frozen=True)
class Change:
    status: Status
    status_at: datetime | None
    channel: str | None
    error_code: str | None
    error_description: str | None


def advance(current: Tracked, event: Event) -> Change | None:
    """The recipient's new state after ``event``, or None when it changes nothing."""
    if current.status not in TRACKABLE:
        return None
    if event.trigger == SUBMIT:
        # It went out: an IN_DOUBT send is settled as sent; the channel is recorded.
        if current.status is Status.IN_DOUBT:
            return Change(Status.QUEUED, event.event_time, event.channel, None, None)
        if current.channel is None and event.channel is not None:
            return Change(current.status, current.status_at, event.channel, None, None)
        return None
    new = event.status
    if event.trigger != DELIVERY or new is None:
        return None
    if current.status is Status.FAILED:
        if not _fallback_delivery(current, event):
            return None
    elif _RANK[new] < _RANK[current.status]:
        return None
    elif _RANK[new] == _RANK[current.status]:
        if new is current.status and event.channel == current.channel:
            return None  # a duplicate
        if not _newer(event.event_time, current.status_at):
            return None
    failing = new in (Status.FAILED, Status.SWITCHING_CHANNEL)
    return Change(
        status=new,
        status_at=event.event_time,
        channel=event.channel or current.channel,
        error_code=event.reason_code if failing else None,
        error_description=event.reason_description if failing else None,
    )


def _newer(event_time: datetime | None, current: datetime | None) -> bool:
    return event_time is not None and (current is None or event_time > current)


def _fallback_delivery(current: Tracked, event: Event) -> bool:
    """A delivery on another channel, later than the failure: the fallback worked after all."""
    return (
        event.status in (Status.QUEUED_ON_CHANNEL, Status.DELIVERED, Status.READ)
        and event.channel is not None
        and event.channel != current.channel
        and _newer(event.event_time, current.status_at)
    )
