"""Statements more than one query group builds: the claim of due rows, the running workers,
and the aggregates that write a formed chunk's request entries in the database."""

from __future__ import annotations

import functools
import operator
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Text, cast, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import aggregate_order_by

from campaign.models import Status
from campaign.sinch import wire
from campaign.store.tables import recipients, workers

C = recipients.c
CLAIMED = (
    C.id,
    C.position,
    C.identity,
    C.parameters,
    C.attempts,
    C.time_zone,
    C.channel,
    C.identities,
)


def claim_statement(
    dialect: str,
    campaign_id: int,
    limit: int,
    now: datetime,
    chunk: int | None = None,
    worker_id: int | None = None,
) -> Any:
    """``UPDATE … RETURNING`` that moves up to ``limit`` due PENDING rows to IN_FLIGHT (in
    ``chunk`` when given) for ``worker_id``, atomically; on Postgres, rows locked by another
    worker are skipped."""
    due = (
        select(C.id)
        .where(
            C.campaign_id == campaign_id,
            C.status == Status.PENDING.value,
            or_(C.next_attempt_at.is_(None), C.next_attempt_at <= now),
        )
        .order_by(C.id)
        .limit(limit)
    )
    if dialect == "postgresql":
        due = due.with_for_update(skip_locked=True)
    return (
        update(recipients)
        .where(C.id.in_(due.scalar_subquery()))
        .values(
            status=Status.IN_FLIGHT.value,
            attempts=C.attempts + 1,
            next_attempt_at=None,
            chunk=chunk,
            worker_id=worker_id,
            updated_at=now,
        )
        .returning(*CLAIMED)
    )


def running_workers(now: datetime, lease: float) -> Any:
    """The ids of workers that are running (their heartbeat within the lease), as a subquery."""
    return select(workers.c.id).where(
        workers.c.stopped_at.is_(None),
        workers.c.heartbeat_at >= now - timedelta(seconds=lease),
    )


def entries(dialect: str, channel: str, campaign_key: str) -> tuple[Any, Any]:
    """Aggregates of a chunk's rows: their ids, and their request entries (the text of
    :func:`campaign.sinch.wire.batch_entries`), both comma-separated, in the same order."""
    prefix = wire.recipient_key_prefix(campaign_key)
    if dialect == "postgresql":

        def quote(value: Any) -> Any:
            return cast(func.to_json(cast(value, Text)), Text)

        def joined(value: Any) -> Any:
            return func.string_agg(value, aggregate_order_by(literal(","), C.id))

    else:  # SQLite: both aggregates of a group see its rows in the same order
        quote = func.json_quote

        def joined(value: Any) -> Any:
            return func.group_concat(value, ",")

    key = literal(prefix, Text) + cast(C.position, Text)
    entry = wire.entry_text(
        channel,
        C.channel,
        C.identity,
        C.identities,
        C.parameters,
        key,
        quote=quote,
        concat=lambda parts: functools.reduce(operator.add, parts),
        coalesce=func.coalesce,
        lit=lambda part: literal(part, Text),
    )
    return joined(cast(C.id, Text)), joined(entry)
