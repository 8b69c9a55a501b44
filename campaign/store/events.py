"""Raw delivery events: stored as received (group commits), then applied to recipients.

Every accepted callback is stored before it is acknowledged; applying it is a separate step,
so that a callback that arrives before its send was recorded simply waits (``applied_at`` is
NULL) and is applied once the send is recorded.

Waiting has an end: an event that has matched no recipient for ``window`` (24 h unless the
caller says otherwise) is given up, *unmatched*: ``applied_at`` is set with no ``recipient_id``
(``checked_at`` set too, which tells it from the other triggers, kept with nothing to apply). Its
raw row stays, like every other; it is no longer tried. Until then it is tried again less and
less often as it ages (every 5 s in its first minute, at last every 30 min), so that a flood
of events about messages that are not ours costs under 100 looks each over a day.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from campaign import planning, tracking
from campaign.models import Status
from campaign.store import chunks
from campaign.store.edge import Group, Handle
from campaign.store.tables import campaigns, events, recipients

E = events.c
R = recipients.c
_CHUNK = 500
RECHECK_S = 5.0  # how often an event that matched nothing is tried again, in its first minute
MATCH_WINDOW = timedelta(hours=24)  # how long an event that matches nothing is tried at all
# How often a waiting event is tried again, by its age: a young one may be about a send that
# is being recorded right now; an old one rarely is.
_RECHECK = (
    (timedelta(minutes=1), timedelta(seconds=RECHECK_S)),
    (timedelta(minutes=10), timedelta(seconds=30)),
    (timedelta(hours=1), timedelta(minutes=5)),
)
_RECHECK_OLD = timedelta(minutes=30)
# Finding the due ones reads waiting events (no index has checked_at): apply() reads those of
# the last RECENT at most every RECHECK_S, older ones at most every _OLD_PASS. apply_for finds
# a batch's events among the recent ones only (no index has batch ids either); older ones are
# left to the rechecks.
RECENT = timedelta(minutes=10)
_OLD_PASS = timedelta(minutes=5)
_FLOOR_TTL = timedelta(minutes=1)  # how long the first id of the recent events is reused
# apply() counts the waiting events up to this many: the count is cheap whatever waits.
WAITING_COUNTED_UP_TO = 10_000
_NOTHING_TO_APPLY = frozenset({tracking.DELIVERY, tracking.SUBMIT})


_WAITING = select(
    E.id,
    E.message_id,
    E.recipient_key,
    E.trigger,
    E.status,
    E.channel,
    E.event_time,
    E.reason_code,
    E.reason_description,
    E.received_at,
).where(E.applied_at.is_(None))


def _due(now: datetime, window: timedelta) -> Any:
    """Waiting events looked at before and due to be tried again at ``now``, oldest first."""
    by_age = [
        and_(E.received_at > now - age, E.checked_at < now - every) for age, every in _RECHECK
    ]
    return (
        _WAITING.where(E.checked_at.is_not(None))
        .where(or_(*by_age, E.checked_at < now - _RECHECK_OLD, E.received_at < now - window))
        .order_by(E.id)
    )


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


@dataclass(frozen=True)
class NewEvent:
    received_at: datetime
    nonce: str | None
    payload: str  # the raw body, as received
    event: tracking.Event


@dataclass(frozen=True)
class ApplyResult:
    applied: int  # events applied in this call
    changed: int  # recipients whose state changed
    # Events still waiting for their recipient (or its send) to be recorded; apply() counts
    # them up to WAITING_COUNTED_UP_TO, apply_for() not at all (0).
    waiting: int
    unmatched: int = 0  # events given up in this call: they matched nothing for the window
    looked_at: int = 0  # events this call tried to match


@dataclass
class _Recipient:
    id: int
    campaign_id: int
    message_id: str | None
    tracked: tracking.Tracked


def _chunks(items: Sequence[Any]) -> list[Sequence[Any]]:
    return [items[i : i + _CHUNK] for i in range(0, len(items), _CHUNK)]


class EventStore(Group):
    """``store.events``: delivery callbacks stored, and applied to their recipients."""

    def __init__(self, db: Handle) -> None:
        super().__init__(db)
        self._engine = db.engine
        self._writes = db.writes
        self._apply_lock = asyncio.Lock()  # one applier at a time in this process
        # When apply() next looks for due rechecks among recent (False) and older (True)
        # events; and the first recent id, as of when.
        self._next_pass: dict[bool, datetime | None] = {False: None, True: None}
        self._recent: tuple[datetime, int] | None = None

    def _insert(self) -> Any:
        if self._engine.dialect.name == "postgresql":
            return postgresql.insert(events).on_conflict_do_nothing(index_elements=["nonce"])
        return sqlite.insert(events).on_conflict_do_nothing(index_elements=["nonce"])

    async def insert(self, batch: Sequence[NewEvent]) -> int:
        """Store ``batch`` in one transaction (a group commit); returns how many rows it added.

        A nonce already stored (a replay, or the same delivery twice) adds nothing.
        """
        if not batch:
            return 0
        rows = [
            {
                "received_at": item.received_at,
                "nonce": item.nonce,
                "payload": item.payload,
                "trigger": item.event.trigger,
                "status": item.event.status.value if item.event.status else None,
                "message_id": item.event.message_id,
                "recipient_key": item.event.key,
                "batch_id": item.event.batch_id,
                "channel": item.event.channel,
                "event_time": item.event.event_time,
                "reason_code": item.event.reason_code,
                "reason_description": item.event.reason_description,
                # Other triggers are kept, with nothing to apply.
                "applied_at": None
                if item.event.trigger in _NOTHING_TO_APPLY
                and (item.event.message_id or item.event.key)
                else item.received_at,
            }
            for item in batch
        ]
        async with self._writes.begin() as conn:
            # RETURNING yields only the rows really added (a conflicting nonce adds none).
            result = await conn.execute(self._insert().returning(E.id), rows)
            return len(result.all())

    async def waiting(self) -> int:
        """How many events wait for their recipient (not applied, not given up)."""
        async with self._engine.connect() as conn:
            value = await conn.scalar(select(func.count()).where(E.applied_at.is_(None)))
        return int(value or 0)

    async def _waiting_up_to(self, most: int) -> int:
        first = select(E.id).where(E.applied_at.is_(None)).limit(most).subquery()
        async with self._engine.connect() as conn:
            value = await conn.scalar(select(func.count()).select_from(first))
        return int(value or 0)

    async def count(self, campaign_id: int | None = None) -> int:
        query = select(func.count()).select_from(events)
        if campaign_id is not None:
            query = query.where(E.campaign_id == campaign_id)
        async with self._engine.connect() as conn:
            return int(await conn.scalar(query) or 0)

    async def apply(
        self, now: datetime, limit: int = 5000, *, window: timedelta = MATCH_WINDOW
    ) -> ApplyResult:
        """Apply waiting events, oldest first, to the recipients they are about.

        Events never looked at come first; events that could not be matched before (their
        send is not recorded yet, or they are not ours) are looked at again only when due
        (every ``RECHECK_S`` seconds while young, rarer as they age), so that any number of
        them never holds newer ones back; one that still matches nothing once it is older
        than ``window`` is given up (counted in ``unmatched``). Finding the due ones reads
        the waiting events, so this store does it at most every ``RECHECK_S`` for those of
        the last ``RECENT``, every ``_OLD_PASS`` for older ones.
        """
        passes = [
            (older, period)
            for older, period in ((False, timedelta(seconds=RECHECK_S)), (True, _OLD_PASS))
            if self._pass_due(older, now, period)
        ]
        recent = await self._first_recent_id(now) if passes else 0
        fresh = _WAITING.where(E.checked_at.is_(None)).order_by(E.id).limit(limit)
        async with self._apply_lock, self._writes.begin() as conn:
            rows = list((await conn.execute(fresh)).all())
            for older, period in passes:
                room = limit - len(rows)
                if room <= 0:
                    break  # this pass stays due
                ids = E.id < recent if older else E.id >= recent
                due = list((await conn.execute(_due(now, window).where(ids).limit(room))).all())
                # All that were due are taken: look again after the period.
                self._next_pass[older] = None if len(due) == room else now + period
                rows += due
            applied, changed, unmatched = await self._apply_rows(conn, rows, now, now - window)
        waiting = await self._waiting_up_to(WAITING_COUNTED_UP_TO)
        return ApplyResult(applied, changed, waiting, unmatched, len(rows))

    def _pass_due(self, older: bool, now: datetime, period: timedelta) -> bool:
        at = self._next_pass[older]
        # A clock that went back (another caller's) is not made to wait.
        return at is None or not now < at <= now + period

    async def apply_for(
        self,
        *,
        message_ids: Sequence[str] = (),
        keys: Sequence[str] = (),
        batch_ids: Sequence[str] = (),
        now: datetime,
        window: timedelta = MATCH_WINDOW,
    ) -> ApplyResult:
        """Apply the waiting events about these sends (messages, recipient keys, whole
        batches), just recorded: a callback that arrived before its send was recorded takes
        effect now, not at the next recheck.

        Message ids and keys are found through their indexes; batch ids only among the events
        received in the last ``RECENT`` (there is no index on them, and reading every waiting
        event on each call would make a flood of unknown ones slow down every send).
        """
        if not message_ids and not keys and not batch_ids:
            return ApplyResult(0, 0, 0)
        recent = await self._first_recent_id(now) if batch_ids else 0
        async with self._apply_lock, self._writes.begin() as conn:
            rows: list[Any] = []
            for column, values, query in (
                (E.message_id, message_ids, _WAITING),
                (E.recipient_key, keys, _WAITING),
                (E.batch_id, batch_ids, _WAITING.where(E.id >= recent)),
            ):
                for chunk in _chunks(list(values)):
                    rows += (await conn.execute(query.where(column.in_(chunk)))).all()
            unique = sorted({row.id: row for row in rows}.values(), key=lambda row: row.id)
            applied, changed, unmatched = await self._apply_rows(conn, unique, now, now - window)
        return ApplyResult(applied, changed, 0, unmatched, len(unique))

    async def _first_recent_id(self, now: datetime) -> int:
        """An id from which on every event was received after ``now - RECENT`` (give or take
        a minute: it is reused that long), found by bisecting the primary key: ids grow with
        arrival, group commits disordering them by seconds at most."""
        cached = self._recent
        if cached is not None and cached[0] <= now < cached[0] + _FLOOR_TTL:
            return cached[1]
        since = now - RECENT
        async with self._engine.connect() as conn:
            low, high = (await conn.execute(select(func.min(E.id), func.max(E.id)))).one()
            low, high = (0, 0) if low is None else (low, high + 1)  # high: past the last one
            while low < high:  # some id in [low, high] starts the recent events
                middle = (low + high) // 2
                first = select(E.id, E.received_at).where(E.id >= middle).order_by(E.id)
                row = (await conn.execute(first.limit(1))).one()
                if row.received_at < since:
                    low = row.id + 1
                else:
                    high = middle  # no id between middle and row.id
        self._recent = (now, low)
        return int(low)

    async def _apply_rows(
        self, conn: AsyncConnection, rows: Sequence[Any], now: datetime, cutoff: datetime
    ) -> tuple[int, int, int]:
        """Apply ``rows``; one that matches nothing waits, or is given up when it was received
        before ``cutoff``. Returns how many were applied, recipients changed, given up."""
        if not rows:
            return 0, 0, 0
        found = await self._recipients(conn, rows)
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
                recipient.tracked = tracking.Tracked(
                    change.status, change.status_at, change.channel
                )
                if recipient.message_id is None:
                    recipient.message_id = row.message_id
                changed[recipient.id] = (recipient, change, before)
            applied.append({"eid": row.id, "rid": recipient.id, "cid": recipient.campaign_id})
        await self._write(conn, changed, applied, now)
        if unmatched:
            await conn.execute(
                update(events).where(E.id == bindparam("eid")).values(checked_at=now), unmatched
            )
        if given_up:
            # Settled with no recipient: out of the waiting set (and its index) for good.
            await conn.execute(
                update(events)
                .where(E.id == bindparam("eid"))
                .values(applied_at=now, checked_at=now),
                given_up,
            )
        return len(applied), len(changed), len(given_up)

    async def _recipients(
        self, conn: AsyncConnection, rows: Sequence[Any]
    ) -> dict[tuple[str, str], _Recipient]:
        """The recipients the events are about, by message id and by recipient key."""
        columns = (R.id, R.campaign_id, R.message_id, R.status, R.status_at, R.channel_used)
        locking = self._engine.dialect.name == "postgresql"
        by_id: dict[int, _Recipient] = {}
        found: dict[tuple[str, str], _Recipient] = {}

        def remember(record: Any, how: str, value: str) -> None:
            recipient = by_id.get(record.id)
            if recipient is None:
                # Still following a chunk not sent yet: no send of it is recorded, so wait.
                status = (
                    Status.IN_FLIGHT if record.status == chunks.FOLLOWS else Status(record.status)
                )
                recipient = by_id[record.id] = _Recipient(
                    record.id,
                    record.campaign_id,
                    record.message_id,
                    tracking.Tracked(status, record.status_at, record.channel_used),
                )
            found[(how, value)] = recipient

        message_ids = sorted({r.message_id for r in rows if r.message_id})
        for chunk in _chunks(message_ids):
            query = select(*columns).where(R.message_id.in_(chunk))
            for record in await conn.execute(query.with_for_update() if locking else query):
                remember(record, "m", record.message_id)
        keys: dict[str, tuple[str, int]] = {}
        for r in rows:
            if r.recipient_key and ("m", r.message_id) not in found:
                parsed = planning.parse_recipient_key(r.recipient_key)
                if parsed:
                    keys[r.recipient_key] = parsed
        if keys:
            campaign_keys = sorted({k for k, _ in keys.values()})
            ids = dict(
                (
                    await conn.execute(
                        select(campaigns.c.key, campaigns.c.id).where(
                            campaigns.c.key.in_(campaign_keys)
                        )
                    )
                ).all()
            )
            wanted = {(ids[ck], position): key for key, (ck, position) in keys.items() if ck in ids}
            pairs = sorted(wanted)
            for chunk in _chunks(pairs):
                # A recipient that follows its sent chunk becomes an ordinary row (QUEUED with
                # the chunk's batch id, or IN_FLIGHT for its worker) before its event applies.
                for campaign_id in sorted({cid for cid, _ in chunk}):
                    positions = [p for cid, p in chunk if cid == campaign_id]
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
                by_key = select(*columns, R.position).where(
                    tuple_(R.campaign_id, R.position).in_(chunk)
                )
                result = await conn.execute(by_key.with_for_update() if locking else by_key)
                for row in result:
                    remember(row, "k", wanted[(row.campaign_id, row.position)])
        return found

    async def _write(
        self,
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
                .values(
                    applied_at=now, recipient_id=bindparam("rid"), campaign_id=bindparam("cid")
                ),
                applied,
            )
