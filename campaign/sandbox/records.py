"""What the sandbox remembers: accepted messages and batches, built from valid requests.

Builders take requests that :mod:`campaign.sandbox.validation` has passed, so they index
without checking. The ``to_json`` methods give the shapes of the inspection endpoints.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import ulid

from campaign import jsonutil
from campaign.sandbox import responses

DEFAULT_CHANNEL = "SMS"


class BatchStatus(enum.StrEnum):
    """The states of a batch, as ``GET /messages/{batch_id}`` reports them."""

    READY = "READY"
    SCHEDULED = "SCHEDULED"
    PROCESSED = "PROCESSED"
    CANCELLED = "CANCELLED"


@dataclass(frozen=True)
class Hop:
    """One channel a message may go out on, with the identity (as sent) it uses there."""

    channel: str
    identity: str


@dataclass
class SentMessage:
    """A message the sandbox accepted, as Sinch would hold it (rendered, routed)."""

    message_id: str
    project_id: str
    app_id: str
    recipient: dict[str, Any]
    message: dict[str, Any]
    route: tuple[Hop, ...]
    accepted_time: datetime
    contact_id: str = ""
    batch_id: str | None = None
    correlation_id: str = ""
    message_metadata: str = ""
    conversation_metadata: dict[str, Any] | None = None
    callback_url: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    # Seconds it waited in the app's MT queue: its callbacks are timed from when it left.
    queued_s: float = 0.0

    @property
    def ttl_s(self) -> int | None:
        """Its ``ttl`` in seconds (validated ``"600s"``), or None: it never expires."""
        return ttl_seconds(self.options)

    def to_json(self) -> dict[str, Any]:
        """The inspection form (``GET /_sandbox/messages``)."""
        first = self.route[0]
        return {
            "message_id": self.message_id,
            "app_id": self.app_id,
            "project_id": self.project_id,
            "channel": first.channel,
            "identity": first.identity,
            "recipient": self.recipient,
            "message": self.message,
            "accepted_time": responses.iso_millis(self.accepted_time),
            "batch_id": self.batch_id,
            "correlation_id": self.correlation_id,
            "message_metadata": self.message_metadata,
            "conversation_metadata": self.conversation_metadata,
            "callback_url": self.callback_url,
            "channels": [hop.channel for hop in self.route],
            **self.options,
        }


@dataclass
class Batch:
    """A Batch API request: its status and, until released, its prepared messages."""

    batch_id: str
    project_id: str
    app_id: str
    metadata: dict[str, Any]
    status: BatchStatus
    created_time: datetime
    send_after: datetime | None = None
    send_after_text: str | None = None
    pending: list[SentMessage] = field(default_factory=list)
    size: int = 0
    unbuilt: int = 0  # accepted messages not built (no history, no callbacks): only counted
    ttl_s: int | None = None  # the request's ttl, for the messages not built
    # Why its messages were not sent when it fell due (its status has no such value at Sinch).
    refused: str | None = None

    def status_json(self) -> dict[str, Any]:
        """The Batch API status object (``GET /messages/{batch_id}``)."""
        out: dict[str, Any] = {
            "batch_id": self.batch_id,
            "meta_data": self.metadata,
            "status": self.status.value,
        }
        if self.send_after_text is not None:
            out["send_after"] = self.send_after_text
        return out

    def to_json(self) -> dict[str, Any]:
        """The inspection form (``GET /_sandbox/batches``)."""
        return {
            **self.status_json(),
            "project_id": self.project_id,
            "app_id": self.app_id,
            "recipients": self.size,
            "created_time": responses.iso_millis(self.created_time),
            "refused": self.refused,
        }


def new_id() -> str:
    """A fresh 26-character ULID, as Sinch's message and batch ids are."""
    return str(ulid.ULID())


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]


def new_ids(count: int) -> list[str]:
    """``count`` fresh ULIDs at once (a batch's messages): one ULID's time and randomness, the
    last four characters counting up, as a monotonic ULID generator does within a millisecond.
    At most 32**4 (a batch holds 1000)."""
    if count > 32**4:
        raise ValueError("at most 1,048,576 ids at once")
    base = new_id()[:-4]
    return [base + _PAIRS[i >> 10] + _PAIRS[i & 1023] for i in range(count)]


def route_of(recipient: Mapping[str, Any], priority: list[str] | None) -> tuple[Hop, ...]:
    """The channels a message to ``recipient`` is tried on, in order.

    ``channel_priority_order`` wins over the order of the channel identities; channels it lists
    without an identity are skipped. A ``contact_id`` recipient has no identity here: its
    route is the priority list (or SMS) with empty identities.
    """
    identities = recipient.get("identified_by", {}).get("channel_identities")
    if not identities:
        return tuple(Hop(channel, "") for channel in (priority or [DEFAULT_CHANNEL]))
    by_channel: dict[str, str] = {}
    for item in identities:
        by_channel.setdefault(item["channel"], item["identity"])
    order = [channel for channel in (priority or []) if channel in by_channel]
    order += [channel for channel in by_channel if channel not in order]
    return tuple(Hop(channel, by_channel[channel]) for channel in order)


_OPTION_KEYS = (
    "channel_properties",
    "ttl",
    "processing_strategy",
    "queue",
    "message_content_type",
)


def ttl_seconds(body: Mapping[str, Any]) -> int | None:
    """The ``ttl`` of a validated request or options (``"600s"``) in seconds, or None."""
    ttl = body.get("ttl")
    return int(ttl.removesuffix("s")) if isinstance(ttl, str) else None


def from_send(body: Mapping[str, Any], project_id: str, now: datetime) -> SentMessage:
    """The message a valid ``messages:send`` body asks for."""
    recipient = body["recipient"]
    return SentMessage(
        message_id=new_id(),
        project_id=project_id,
        app_id=body["app_id"],
        recipient=recipient,
        message=body["message"],
        route=route_of(recipient, body.get("channel_priority_order")),
        accepted_time=now,
        contact_id=recipient.get("contact_id", ""),
        correlation_id=body.get("correlation_id", ""),
        message_metadata=body.get("message_metadata", ""),
        conversation_metadata=body.get("conversation_metadata"),
        callback_url=body.get("callback_url"),
        options={key: body[key] for key in _OPTION_KEYS if key in body},
    )


def from_batch_item(
    body: Mapping[str, Any],
    item: Mapping[str, Any],
    message: dict[str, Any],
    batch_id: str,
    project_id: str,
    now: datetime,
    *,
    message_id: str | None = None,
) -> SentMessage:
    """The message for one ``recipient_and_params`` entry, ``message`` already rendered.

    Metadata is the request's merged with the recipient's (the recipient wins) plus the
    reserved ``_batch_id``; message metadata travels as compact JSON text, as in callbacks.
    """
    recipient = item["recipient"]
    metadata = merged(body.get("message_metadata"), item.get("message_metadata"), batch_id)
    conversation = merged(
        body.get("conversation_metadata"), item.get("conversation_metadata"), batch_id
    )
    return SentMessage(
        message_id=message_id or new_id(),
        project_id=project_id,
        app_id=body["app_id"],
        recipient=recipient,
        message=message,
        route=route_of(recipient, body.get("channel_priority_order")),
        accepted_time=now,
        contact_id=recipient.get("contact_id", ""),
        batch_id=batch_id,
        correlation_id=body.get("correlation_id", ""),
        message_metadata=jsonutil.dumps(metadata),
        conversation_metadata=conversation,
        callback_url=body.get("callback_url"),
        options={key: body[key] for key in _OPTION_KEYS if key in body},
    )


def merged(
    request_level: Mapping[str, Any] | None,
    recipient_level: Mapping[str, Any] | None,
    batch_id: str,
) -> dict[str, Any]:
    """``request_level`` updated by ``recipient_level``, then ``_batch_id`` (always last)."""
    out = {**(request_level or {}), **(recipient_level or {})}
    out.pop("_batch_id", None)
    out["_batch_id"] = batch_id
    return out
