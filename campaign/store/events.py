"""Raw delivery events: stored as received (group commits), then applied to recipients
(:mod:`campaign.store.applying`).

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

from sqlalchemy import and_, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from campaign import tracking
from campaign.optout import OptOut
from campaign.store import applying, suppression
from campaign.store.edge import Group, Handle
from campaign.store.tables import events

E = events.c
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


@dataclass(frozen=True)
class NewEvent:
    received_at: datetime
    nonce: str | None
    payload: str  # the raw body, as received
    event: tracking.Event
    # The opt-out it carries (a STOP reply, Sinch's OPT_OUT), applied as it is stored.
    opt_out: OptOut | None = None


def item_time(batch: Sequence[NewEvent]) -> datetime:
    """When a group commit's events were received: its last one's time."""
    return batch[-1].received_at


@dataclass(frozen=True)
class ApplyResult:
    applied: int  # events applied in this call
    changed: int  # recipients whose state changed
    # Events still waiting for their recipient (or its send) to be recorded; apply() counts
    # them up to WAITING_COUNTED_UP_TO, apply_for() not at all (0).
    waiting: int
    unmatched: int = 0  # events given up in this call: they matched nothing for the window
    looked_at: int = 0  # events this call tried to match


class EventStore(Group):
    """``store.events``: delivery callbacks stored, and applied to their recipients."""

    def __init__(self, db: Handle) -> None:
        super().__init__(db)
        self._engine = db.engine
        self._writes = db.writes
        # Recipients an event is about are locked where the database can (Postgres).
        self._locking = self._engine.dialect.name == "postgresql"
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

        A nonce already stored (a replay, or the same delivery twice) adds nothing. The
        opt-outs of the events really added (:attr:`NewEvent.opt_out`) are applied in the
        same transaction (:func:`campaign.store.suppression.apply_opt_outs`): an opt-out
        answered 200 is on the suppression list, and a replay changes nothing.
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
            result = await conn.execute(self._insert().returning(E.id, E.nonce), rows)
            added = result.all()
            opt_outs = [item.opt_out for item in batch if item.opt_out is not None]
            if opt_outs:
                kept = {nonce for _, nonce in added}
                fresh = [
                    item.opt_out
                    for item in batch
                    if item.opt_out is not None and (item.nonce is None or item.nonce in kept)
                ]
                await suppression.apply_opt_outs(conn, self.dialect, fresh, item_time(batch))
            return len(added)

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
            applied, changed, unmatched = await applying.apply_rows(
                conn, rows, now, now - window, locking=self._locking
            )
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
                for chunk in applying.in_chunks(list(values)):
                    rows += (await conn.execute(query.where(column.in_(chunk)))).all()
            unique = sorted({row.id: row for row in rows}.values(), key=lambda row: row.id)
            applied, changed, unmatched = await applying.apply_rows(
                conn, unique, now, now - window, locking=self._locking
            )
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
