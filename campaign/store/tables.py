"""The schema, as SQLAlchemy Core tables. Migrations under ``migrations/`` build exactly this."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only auto-increments an INTEGER PRIMARY KEY; Postgres gets a 64-bit identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in Python on every database (SQLite stores it naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use UTC-aware datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]


campaigns = Table(
    "campaigns",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    # Prefix of every recipient key sent to Sinch (correlation_id / message_metadata).
    Column("key", String(32), nullable=False, unique=True),
    Column("mode", String(16), nullable=False),
    Column("channel", String(32), nullable=False),
    Column("definition", Text, nullable=False),  # the campaign file, as JSON
    Column("source", Text, nullable=False),  # the recipients file it was loaded from
    # The file's content digest (campaign.loading.files): a resumed load refuses another file.
    Column("source_digest", String(64), nullable=True),
    Column("state", String(16), nullable=False),  # LOADING, READY, DONE, CANCELLED
    Column("total_rows", BigInteger, nullable=False, server_default=text("0")),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # Set by `campaign pause`: its runs stop claiming at their next heartbeat, and a new run
    # sends nothing, until `campaign resume` clears it. NULL: not paused.
    Column("paused_at", UTCDateTime, nullable=True),
    # Where its messages go (SinchConfig.target); NULL: started before it was recorded.
    Column("target", Text, nullable=True),
    # The app's MT queue as a run last read it (messages, limit, outbound rate, when), and the
    # longest a message of the last run was expected to wait in it (seconds). NULL: not read.
    Column("app_queue_size", BigInteger, nullable=True),
    Column("app_queue_limit", BigInteger, nullable=True),
    Column("app_outbound", Integer, nullable=True),
    Column("app_read_at", UTCDateTime, nullable=True),
    Column("queue_wait", Float, nullable=True),
)

recipients = Table(
    "recipients",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("campaign_id", BigId, ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False),
    Column("position", BigInteger, nullable=False),  # 1-based row of the input file
    Column("channel", String(32), nullable=False),
    # The cell as written; NULL when it is the identity itself (most files hold E.164).
    Column("identity_raw", Text, nullable=True),
    # Normalised; NULL when rejected or a duplicate (the row it repeats holds it).
    Column("identity", String(256), nullable=True),
    # Every identity when there are several, as channel_identities JSON ([{channel, identity}]).
    Column("identities", Text, nullable=True),
    Column("parameters", Text, nullable=False, server_default=text("'{}'")),  # JSON object
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", UTCDateTime, nullable=True),
    Column("message_id", String(64), nullable=True),
    Column("batch_id", String(64), nullable=True),
    Column("error_code", String(64), nullable=True),
    Column("error_description", Text, nullable=True),
    Column("sent_at", UTCDateTime, nullable=True),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("status_at", UTCDateTime, nullable=True),  # event time of the current status
    Column("channel_used", String(32), nullable=True),  # the channel Sinch reported using
    Column("chunk", BigInteger, nullable=True),  # batch mode: the chunk it was last sent in
    # The worker (a `campaign run` process) that claimed it last: only that worker records
    # its outcome, and when that worker dies its rows are settled (see the workers table).
    Column("worker_id", BigInteger, nullable=True),
    # With quiet hours: the recipient's zone key (campaign.quiet); NULL: the campaign's zone.
    Column("time_zone", Text, nullable=True),
    # A resumed or concurrent load of the same file stores each row once. Duplicates (one
    # sendable row per identity) are decided by the load over the whole file
    # (campaign.loading.duplicates): an index on the identity, filled in the file's random
    # order, cost more than the rest of the load.
    UniqueConstraint("campaign_id", "position"),
    Index("ix_recipients_campaign_id_status_id", "campaign_id", "status", "id"),
    # Partial: most rows never have one (batch messages), and an index entry per row costs
    # every insert and every status change.
    Index(
        "ix_recipients_message_id",
        "message_id",
        sqlite_where=text("message_id IS NOT NULL"),
        postgresql_where=text("message_id IS NOT NULL"),
    ),
    # Partial: the error summary reads only the rows that carry an error.
    Index(
        "ix_recipients_errors",
        "campaign_id",
        "error_code",
        "status",
        sqlite_where=text("error_code IS NOT NULL"),
        postgresql_where=text("error_code IS NOT NULL"),
    ),
    Index(
        "ix_recipients_campaign_id_chunk",
        "campaign_id",
        "chunk",
        sqlite_where=text("chunk IS NOT NULL"),
        postgresql_where=text("chunk IS NOT NULL"),
    ),
)

events = Table(
    "events",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("received_at", UTCDateTime, nullable=False),
    Column("campaign_id", BigId, ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=True),
    Column("recipient_id", BigId, nullable=True),
    # Values taken from callbacks are Text: whatever Sinch (or anyone) sends must fit.
    Column("message_id", Text, nullable=True),
    Column("trigger", Text, nullable=False),
    Column("status", Text, nullable=True),
    Column("payload", Text, nullable=False),  # the raw callback body, kept as received
    Column("nonce", Text, nullable=True),  # the signature nonce: a replay is refused
    Column("recipient_key", Text, nullable=True),
    Column("batch_id", Text, nullable=True),
    Column("channel", Text, nullable=True),
    Column("event_time", UTCDateTime, nullable=True),
    Column("reason_code", Text, nullable=True),
    Column("reason_description", Text, nullable=True),
    Column("applied_at", UTCDateTime, nullable=True),  # NULL: not matched to a recipient yet
    # When a waiting event last failed to match: it is tried again only now and then.
    Column("checked_at", UTCDateTime, nullable=True),
    Index("ix_events_message_id", "message_id"),
    Index("ix_events_recipient_id", "recipient_id"),
    Index("ix_events_recipient_key", "recipient_key"),
    Index("uq_events_nonce", "nonce", unique=True),
    Index(
        "ix_events_waiting",
        "id",
        sqlite_where=text("applied_at IS NULL"),
        postgresql_where=text("applied_at IS NULL"),
    ),
    Index(
        "ix_events_unchecked",
        "id",
        sqlite_where=text("applied_at IS NULL AND checked_at IS NULL"),
        postgresql_where=text("applied_at IS NULL AND checked_at IS NULL"),
    ),
)

batches = Table(
    "batches",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("campaign_id", BigId, ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False),
    Column("chunk", BigInteger, nullable=False),
    Column("tag", String(128), nullable=False),  # batch_metadata "chunk": found by lookup
    Column("batch_id", String(64), nullable=True),
    # PENDING (formed at ingest, not sent yet) SENDING ACCEPTED SCHEDULED RETRY SPLIT ...
    Column("status", String(20), nullable=False),
    Column("size", Integer, nullable=False),
    Column("send_after", UTCDateTime, nullable=True),
    Column("sent_at", UTCDateTime, nullable=True),  # when Sinch accepted it
    # How many recipients still follow the chunk (campaign.store.chunks): counts without a join.
    Column("followers", Integer, nullable=False, server_default=text("0")),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("worker_id", BigInteger, nullable=True),  # the worker that claimed the chunk
    UniqueConstraint("campaign_id", "chunk"),
    Index("ix_batches_batch_id", "batch_id"),
    # The chunks formed at ingest and not claimed yet: each claim takes the first.
    Index(
        "ix_batches_pending",
        "campaign_id",
        "chunk",
        sqlite_where=text("status = 'PENDING'"),
        postgresql_where=text("status = 'PENDING'"),
    ),
)

# Every `campaign run` process registers here and beats a heartbeat. Live workers share the rate;
# a worker whose heartbeat is older than the lease is dead, and its claimed rows are settled.
workers = Table(
    "workers",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("campaign_id", BigId, ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(200), nullable=False),  # host:pid, for people
    Column("started_at", UTCDateTime, nullable=False),
    Column("heartbeat_at", UTCDateTime, nullable=False),
    Column("stopped_at", UTCDateTime, nullable=True),  # NULL while it runs
    Column("stop_reason", String(32), nullable=True),  # FINISHED, STOPPED, LEASE_EXPIRED
    # Written before a request leaves: every claimed row up to this id may have been sent, and
    # every one above it certainly was not (individual mode).
    Column("started_through", BigInteger, nullable=False, server_default=text("0")),
    Index(
        "ix_workers_running",
        "heartbeat_at",
        sqlite_where=text("stopped_at IS NULL"),
        postgresql_where=text("stopped_at IS NULL"),
    ),
)

# The suppression list: identities that opted out (a STOP reply, Sinch's OPT_OUT, `campaign
# suppress`). Matched on the identity's value whatever the channel: who said STOP on SMS gets no
# WhatsApp to the same number either. One row per identity; every change is in
# suppression_changes.
suppressions = Table(
    "suppressions",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("identity", String(256), nullable=False),
    Column("channel", String(32), nullable=True),  # where it opted out; NULL: not known
    Column("source", String(32), nullable=False),  # KEYWORD, OPT_OUT, CLI, IMPORT
    Column("campaign_id", BigInteger, nullable=True),  # the campaign it answered, if known
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", Text, nullable=True),  # who or what: a user, a file, a message id
    # Unique, and the index the load's set-based check joins on.
    UniqueConstraint("identity"),
)

# Every change of the suppression list (ADD, REMOVE), who or what made it: never deleted.
suppression_changes = Table(
    "suppression_changes",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("identity", String(256), nullable=False),
    Column("action", String(8), nullable=False),  # ADD, REMOVE
    Column("channel", String(32), nullable=True),
    Column("source", String(32), nullable=False),
    Column("campaign_id", BigInteger, nullable=True),
    Column("changed_at", UTCDateTime, nullable=False),
    Column("changed_by", Text, nullable=True),
    Index("ix_suppression_changes_identity", "identity"),
)
