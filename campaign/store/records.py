"""Plain records the store reads and writes: campaign rows, claims and send outcomes.

Rows become these dataclasses at the store's boundary; nothing SQL leaks out. Each outcome
kind says what it writes to a recipient (:data:`OUTCOME_VALUES`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam

from campaign.models import Status
from campaign.store.tables import recipients

C = recipients.c


@dataclass(frozen=True)
class CampaignRow:
    id: int
    name: str
    key: str
    mode: str
    channel: str
    definition: str
    source: str
    state: str
    total_rows: int
    created_at: datetime
    updated_at: datetime
    source_digest: str | None = None  # None: created before digests were kept
    paused_at: datetime | None = None  # None: not paused (`campaign pause`)
    target: str | None = None  # where its messages go; None: not recorded (an older campaign)
    # The app's MT queue as last read (None: not read), and the longest a message of the last
    # run was expected to wait in it, in seconds.
    app_queue_size: int | None = None
    app_queue_limit: int | None = None
    app_outbound: int | None = None
    app_read_at: datetime | None = None
    queue_wait: float | None = None


@dataclass(frozen=True)
class IngestCounts:
    """What a slice's rows are once stored (whoever stored them), and how many sendable rows
    this ingest stored itself (a resumed load's slice may have been stored already)."""

    pending: int
    rejected: int
    duplicate: int
    stored: int = field(default=0, compare=False)
    # Batch mode: the number of the slice's first chunk when its chunks were formed exactly
    # as staged (every row stored by this ingest), else None.
    first_chunk: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Claim:
    """A recipient claimed for sending (now IN_FLIGHT)."""

    id: int
    position: int
    identity: str
    parameters: str
    attempts: int
    time_zone: str | None = None  # the zone key, with quiet hours
    channel: str = ""  # the channel of ``identity``
    identities: str | None = None  # every identity, as channel_identities JSON, if several


@dataclass(frozen=True)
class Sent:
    id: int
    message_id: str | None  # None for batch messages: their ids come with the callbacks
    batch_id: str | None = None
    key: str | None = None  # the recipient key the request carried (to apply early callbacks)


@dataclass(frozen=True)
class Retry:
    """Back to PENDING, not before ``at``."""

    id: int
    at: datetime
    code: str | None
    description: str


@dataclass(frozen=True)
class Failed:
    id: int
    code: str | None
    description: str


@dataclass(frozen=True)
class InDoubt:
    id: int
    description: str


@dataclass(frozen=True)
class Release:
    """Claimed but never sent (the run is stopping): back to PENDING, attempt not counted."""

    id: int


@dataclass(frozen=True)
class Deferred:
    """Claimed, not sent because the recipient's quiet hours began: back to PENDING, not due
    before ``at``, attempt not counted."""

    id: int
    at: datetime


@dataclass(frozen=True)
class ChunkSent:
    """A batch-mode chunk accepted as one batch: its IN_FLIGHT recipients become QUEUED with
    the batch id, in one statement, and the chunk's row says so (``status``: ACCEPTED, or
    SCHEDULED for a batch sent with a future ``send_after``). ``follows``: a chunk formed at
    ingest, sent whole, whose recipients follow it: those with a row of their own (IN_FLIGHT)
    are few, and are found by their status rather than among the chunk's thousand rows."""

    campaign_id: int
    chunk: int
    batch_id: str
    status: str
    send_after: datetime | None = None
    follows: bool = False


@dataclass(frozen=True)
class Chunk:
    """A batch-mode claim: up to ``batch_size`` recipients sent in one Batch API request."""

    number: int
    tag: str  # batch_metadata "chunk": how the batch is found again after a lost answer
    claims: list[Claim]  # empty for a formed chunk: its members say who
    # Formed at ingest: its recipients follow it (campaign.store.chunks), as the claim read them
    members: Members | None = None

    @property
    def formed(self) -> bool:
        return self.members is not None

    @property
    def size(self) -> int:
        return self.members.size if self.members is not None else len(self.claims)


@dataclass(frozen=True)
class Members:
    """The recipients of a chunk formed at ingest, as its claim reads them: no Python object
    per recipient. ``entries`` is their ``recipient_and_params`` JSON array (the same text as
    :func:`campaign.sinch.wire.batch_entries`), written by the database, or by the load that
    formed the chunk in this run; ``ids`` their rows, in the same order, or None when the
    entries are in the order of the rows' positions (the rows are read by chunk if needed);
    ``attempts`` what this send makes of each one's count."""

    ids: list[int] | None
    entries: str
    attempts: int
    size: int


Outcome = Sent | Retry | Failed | InDoubt | Release | Deferred

# What each kind of outcome writes (bound parameters come from _outcome_params).
OUTCOME_VALUES: dict[type, dict[str, Any]] = {
    Sent: {
        "status": Status.QUEUED.value,
        "message_id": bindparam("mid"),
        "batch_id": bindparam("bid"),
        "error_code": None,
        "error_description": None,
    },
    Retry: {
        "status": Status.PENDING.value,
        "next_attempt_at": bindparam("at"),
        "error_code": bindparam("code"),
        "error_description": bindparam("desc"),
    },
    Failed: {
        "status": Status.FAILED.value,
        "error_code": bindparam("code"),
        "error_description": bindparam("desc"),
    },
    InDoubt: {
        "status": Status.IN_DOUBT.value,
        "error_code": "IN_DOUBT",
        "error_description": bindparam("desc"),
    },
    # Claimed, never sent: back to PENDING without counting the attempt.
    Release: {"status": Status.PENDING.value, "attempts": C.attempts - 1},
    Deferred: {
        "status": Status.PENDING.value,
        "attempts": C.attempts - 1,
        "next_attempt_at": bindparam("at"),
        "chunk": None,
    },
}


def outcome_params(outcome: Outcome) -> dict[str, Any]:
    if isinstance(outcome, Sent):
        return {"rid": outcome.id, "mid": outcome.message_id, "bid": outcome.batch_id}
    if isinstance(outcome, Retry):
        return {
            "rid": outcome.id,
            "at": outcome.at,
            "code": outcome.code,
            "desc": outcome.description,
        }
    if isinstance(outcome, Failed):
        return {"rid": outcome.id, "code": outcome.code, "desc": outcome.description}
    if isinstance(outcome, InDoubt):
        return {"rid": outcome.id, "desc": outcome.description}
    if isinstance(outcome, Deferred):
        return {"rid": outcome.id, "at": outcome.at}
    return {"rid": outcome.id}


def chunk_params(outcome: ChunkSent) -> dict[str, Any]:
    return {
        "cid": outcome.campaign_id,
        "num": outcome.chunk,
        "bid": outcome.batch_id,
        "bstatus": outcome.status,
        "after": outcome.send_after,
        "follows": outcome.follows,
    }


# The columns of a page of the report read, as stored (the report file renames and drops some:
# campaign.reporting.REPORT_FILE_COLUMNS).
REPORT_READ_COLUMNS = (
    "position",
    "identity",
    "identity_raw",
    "channel",
    "status",
    "message_id",
    "batch_id",
    "error_code",
    "error_description",
    "sent_at",
    "updated_at",
    "attempts",
    "status_at",
    "channel_used",
)

_REJECT_CODES = (
    ("missing identity", "MISSING_IDENTITY"),
    ("invalid", "INVALID_IDENTITY"),
    ("missing value for parameter", "MISSING_PARAMETER"),
    ("text of ", "MESSAGE_TOO_LONG"),
    ("unknown time zone", "UNKNOWN_TIME_ZONE"),
)


def reject_code(reason: str) -> str:
    """A stable code for a loading rejection reason (the reason itself is the description)."""
    for prefix, code in _REJECT_CODES:
        if reason.startswith(prefix):
            return code
    return "INVALID_INPUT"
