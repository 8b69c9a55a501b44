"""Stored events applied to the recipients they are about: finding those recipients (by message
id, by recipient key), advancing their tracked state, writing it and settling the events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from campaign import tracking
from campaign.models import Status
from campaign.sinch import wire
from campaign.store import chunks
from campaign.store.tables import campaigns, events, recipients

E = events.c
R = recipients.c
_CHUNK = 500


@dataclass
class _Recipient:
    id: int
    campaign_id: int
    message_id: str | None
    tracked: tracking.Tracked


def in_chunks(items: Sequence[Any]) -> list[Sequence[Any]]:
    return [items[i : i + _CHUNK] for i in range(0, len(items), _CHUNK)]


def _event(row: Any) -> tracking.Event:
    return tracking.Event(
        trigger=row.trigger,
        message_id=row.message_id,
        status=Status(row.status) if row.status in Status.__members__ else None,
        channel=row.channel,
        event_time=row.event_time,
        key=row.recipient_key,
        batch_id=None,
        reason_code=row.reason_code,
        reason_description=row.reason_description,
    )


async def apply_rows(
    conn: AsyncConnection,
    rows: Sequence[Any],
    now: datetime,
    cutoff: datetime,
    *,
    locking: bool,
) -> tuple[int, int, int]:
    """Apply ``rows``; one that matches nothing waits, or is given up when it was received
    before ``cutoff``. Returns how many were applied, recipients changed, given up."""
    if not rows:
        return 0, 0, 0
    found = await _recipients(conn, rows, locking=locking)
    applied: list[dict[str, Any]] = []
    unmatched: list[dict[str, Any]] = []
    given_up: list[dict[str, Any]] = []
    changed: dict[int, tuple[_Recipient, tracking.Change, Status]] = {}
    for row in rows:
        recipient = found.get(("m", row.message_id)) or found.get(("k", row.recipient_key))
        if recipient is None or recipient.tracked.status is Status.IN_FLIGHT:
            # Its send is not recorded yet: wait, unless it has waited the whole window.
            (given_up if row.received_at < cutoff else unmatched).append({"eid": row.id})
            continue
        change = tracking.advance(recipient.tracked, _event(row))
        if change is not None:
            before = changed[recipient.id][2] if recipient.id in changed else None
            if before is None:
                before = recipient.tracked.status
            recipient.tracked = tracking.Tracked(change.status, change.status_at, change.channel)
            if recipient.message_id is None:
                recipient.message_id = row.message_id
            changed[recipient.id] = (recipient, change, before)
        applied.append({"eid": row.id, "rid": recipient.id, "cid": recipient.campaign_id})
    await _write(conn, changed, applied, now)
    if unmatched:
        await conn.execute(
            update(events).where(E.id == bindparam("eid")).values(checked_at=now), unmatched
        )
    if given_up:
        # Settled with no recipient: out of the waiting set (and its index) for good.
        await conn.execute(
            update(events).where(E.id == bindparam("eid")).values(applied_at=now, checked_at=now),
            given_up,
        )
    return len(applied), len(changed), len(given_up)


_COLUMNS = (R.id, R.campaign_id, R.message_id, R.status, R.status_at, R.channel_used)


class _Found:
    """The recipients found so far, each once, under every (``"m"``, message id) and (``"k"``,
    recipient key) it was found by."""

    def __init__(self) -> None:
        self.by_id: dict[int, _Recipient] = {}
        self.found: dict[tuple[str, str], _Recipient] = {}

    def remember(self, record: Any, how: str, value: str) -> None:
        recipient = self.by_id.get(record.id)
        if recipient is None:
            # Still following a chunk not sent yet: no send of it is recorded, so wait.
            status = Status.IN_FLIGHT if record.status == chunks.FOLLOWS else Status(record.status)
            recipient = self.by_id[record.id] = _Recipient(
                record.id,
                record.campaign_id,
                record.message_id,
                tracking.Tracked(status, record.status_at, record.channel_used),
            )
        self.found[(how, value)] = recipient


async def _recipients(
    conn: AsyncConnection, rows: Sequence[Any], *, locking: bool
) -> dict[tuple[str, str], _Recipient]:
    """The recipients the events are about, by message id and by recipient key."""
    found = _Found()
    await _by_message_id(conn, rows, found, locking=locking)
    keys = _keys_to_look_up(rows, found)
    if keys:
        await _by_recipient_key(conn, keys, found, locking=locking)
    return found.found


async def _by_message_id(
    conn: AsyncConnection, rows: Sequence[Any], found: _Found, *, locking: bool
) -> None:
    message_ids = sorted({r.message_id for r in rows if r.message_id})
    for chunk in in_chunks(message_ids):
        query = select(*_COLUMNS).where(R.message_id.in_(chunk))
        for record in await conn.execute(query.with_for_update() if locking else query):
            found.remember(record, "m", record.message_id)


def _keys_to_look_up(rows: Sequence[Any], found: _Found) -> dict[str, tuple[str, int]]:
    """The recipient keys (parsed: campaign key, position) of the events not found by message
    id."""
    keys: dict[str, tuple[str, int]] = {}
    for r in rows:
        if r.recipient_key and ("m", r.message_id) not in found.found:
            parsed = wire.parse_recipient_key(r.recipient_key)
            if parsed:
                keys[r.recipient_key] = parsed
    return keys


async def _by_recipient_key(
    conn: AsyncConnection, keys: dict[str, tuple[str, int]], found: _Found, *, locking: bool
) -> None:
    campaign_keys = sorted({k for k, _ in keys.values()})
    ids = dict(
        (
            await conn.execute(
                select(campaigns.c.key, campaigns.c.id).where(campaigns.c.key.in_(campaign_keys))
            )
        ).all()
    )
    wanted = {(ids[ck], position): key for key, (ck, position) in keys.items() if ck in ids}
    pairs = sorted(wanted)
    for chunk in in_chunks(pairs):
        await _materialise_followers(conn, chunk)
        by_key = select(*_COLUMNS, R.position).where(tuple_(R.campaign_id, R.position).in_(chunk))
        result = await conn.execute(by_key.with_for_update() if locking else by_key)
        for row in result:
            found.remember(row, "k", wanted[(row.campaign_id, row.position)])


async def _materialise_followers(conn: AsyncConnection, pairs: Sequence[tuple[int, int]]) -> None:
    """A recipient that follows its sent chunk becomes an ordinary row (QUEUED with the chunk's
    batch id, or IN_FLIGHT for its worker) before its event applies."""
    for campaign_id in sorted({cid for cid, _ in pairs}):
        positions = [p for cid, p in pairs if cid == campaign_id]
        followed = select(R.chunk).where(
            R.campaign_id == campaign_id,
            R.position.in_(positions),
            R.status == chunks.FOLLOWS,
        )
        numbers = sorted(set((await conn.execute(followed)).scalars()))
        if numbers:
            await chunks.materialise(
                conn,
                campaign_id,
                chunks.B.chunk.in_(numbers),
                chunks.B.status != chunks.UNSENT,
                rows=R.position.in_(positions),
            )


async def _write(
    conn: AsyncConnection,
    changed: dict[int, tuple[_Recipient, tracking.Change, Status]],
    applied: list[dict[str, Any]],
    now: datetime,
) -> None:
    status_changes = [
        {
            "rid": rid,
            "new_status": change.status.value,
            "new_status_at": change.status_at,
            "new_channel": change.channel,
            "code": change.error_code,
            "desc": change.error_description,
            "mid": recipient.message_id,
        }
        for rid, (recipient, change, before) in changed.items()
        if change.status is not before
    ]
    channel_only = [
        {"rid": rid, "new_channel": change.channel}
        for rid, (_, change, before) in changed.items()
        if change.status is before
    ]
    if status_changes:
        await conn.execute(
            update(recipients)
            .where(R.id == bindparam("rid"))
            .values(
                status=bindparam("new_status"),
                status_at=bindparam("new_status_at"),
                channel_used=bindparam("new_channel"),
                error_code=bindparam("code"),
                error_description=bindparam("desc"),
                message_id=func.coalesce(R.message_id, bindparam("mid")),
                updated_at=now,
            ),
            status_changes,
        )
    if channel_only:
        await conn.execute(
            update(recipients)
            .where(R.id == bindparam("rid"))
            .values(channel_used=bindparam("new_channel"), updated_at=now),
            channel_only,
        )
    if applied:
        await conn.execute(
            update(events)
            .where(E.id == bindparam("eid"))
            .values(applied_at=now, recipient_id=bindparam("rid"), campaign_id=bindparam("cid")),
            applied,
        )
