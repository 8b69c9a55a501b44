"""Pure domain types shared by every layer: channels, statuses, message content keys, the
counters of a run."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple


class Channel(StrEnum):
    WHATSAPP = "WHATSAPP"
    RCS = "RCS"
    SMS = "SMS"
    MESSENGER = "MESSENGER"
    VIBERBM = "VIBERBM"
    MMS = "MMS"
    INSTAGRAM = "INSTAGRAM"
    TELEGRAM = "TELEGRAM"
    KAKAOTALK = "KAKAOTALK"
    KAKAOTALKCHAT = "KAKAOTALKCHAT"
    LINE = "LINE"
    WECHAT = "WECHAT"
    APPLEBC = "APPLEBC"
    # Not a Sinch channel: recipients named by their Sinch contact ID (``contact_id_column``),
    # sent as ``recipient.contact_id``; Sinch picks the channel (``channel_priority_order``).
    CONTACT_ID = "CONTACT_ID"


# The channels of Sinch's ConversationChannel enum: what a campaign file may name.
SINCH_CHANNELS: tuple[Channel, ...] = tuple(c for c in Channel if c is not Channel.CONTACT_ID)


# Channels whose identity is a phone number, normalised to E.164.
PHONE_CHANNELS: frozenset[Channel] = frozenset(
    {Channel.SMS, Channel.MMS, Channel.WHATSAPP, Channel.RCS, Channel.VIBERBM, Channel.KAKAOTALK}
)

# The nine content keys of an AppMessage; a message has exactly one.
CONTENT_KEYS: tuple[str, ...] = (
    "text_message",
    "media_message",
    "template_message",
    "card_message",
    "choice_message",
    "carousel_message",
    "location_message",
    "list_message",
    "contact_info_message",
)


class Status(StrEnum):
    """A recipient's status. See README, "How delivery tracking works"."""

    PENDING = "PENDING"
    IN_FLIGHT = "IN_FLIGHT"
    QUEUED = "QUEUED"
    QUEUED_ON_CHANNEL = "QUEUED_ON_CHANNEL"
    DELIVERED = "DELIVERED"
    READ = "READ"
    SWITCHING_CHANNEL = "SWITCHING_CHANNEL"
    FAILED = "FAILED"
    REJECTED = "REJECTED"
    DUPLICATE = "DUPLICATE"
    IN_DOUBT = "IN_DOUBT"
    CANCELLED = "CANCELLED"
    SUPPRESSED = "SUPPRESSED"  # on the suppression list (opted out): never sent


# Never sent, and never will be.
UNSENDABLE: frozenset[Status] = frozenset({Status.REJECTED, Status.DUPLICATE, Status.SUPPRESSED})


# A campaign's state (beside the store's LOADING, READY, DONE, CANCELLED) while it is not due
# yet: recorded by a run before its send_after, so that `campaign status` can say when it is
# due. Nothing of it is loaded: the run that finds it due takes the campaign file and the
# recipients file as they are then, and the campaign begins LOADING.
SCHEDULED = "SCHEDULED"


class AppQueue(NamedTuple):
    """The app's MT queue as Sinch said: messages waiting, its limit, its drain rate (per s)."""

    size: int
    limit: int
    outbound: int


@dataclass
class DispatchStats:
    """Live counters of a run's sending: written by the send loop, read by the progress
    display and the summary."""

    started: float = field(default_factory=time.monotonic)
    sent: int = 0  # requests answered 200
    failed: int = 0
    in_doubt: int = 0
    retried: int = 0
    rate_limited: int = 0
    queue_full: int = 0  # requests refused because the app's queue was full (sent again)
    in_flight: int = 0
    requests: int = 0


# The EventDestinationTrigger values of the Sinch SDKs: what a webhook may subscribe to.
WEBHOOK_TRIGGERS: tuple[str, ...] = (
    "MESSAGE_DELIVERY",
    "EVENT_DELIVERY",
    "MESSAGE_INBOUND",
    "EVENT_INBOUND",
    "CONVERSATION_START",
    "CONVERSATION_STOP",
    "CONTACT_CREATE",
    "CONTACT_DELETE",
    "CONTACT_MERGE",
    "CONTACT_UPDATE",
    "UNSUPPORTED",
    "OPT_IN",
    "OPT_OUT",
    "CAPABILITY",
    "CONVERSATION_DELETE",
    "CONTACT_IDENTITIES_DUPLICATION",
    "CHANNEL_EVENT",
    "SMART_CONVERSATION",
    "SMART_CONVERSATIONS",
    "MESSAGE_INBOUND_SMART_CONVERSATION_REDACTION",
    "RECORD_NOTIFICATION",
    "MESSAGE_SUBMIT",
)
