"""``store.chunks``: batch mode's chunks of recipients, each sent as one Batch API request
(what a chunk is, and how its recipients follow it: :mod:`campaign.store.chunks`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from campaign.models import Status
from campaign.sinch.wire import ChunkEntries
from campaign.store import chunks, statements, suppression
from campaign.store.edge import Group
from campaign.store.records import Chunk, Claim, Members
from campaign.store.tables import batches, recipients

C = recipients.c
B = batches.c


class Chunks(Group):
    """``store.chunks``: claiming, splitting, accepting and settling batch chunks."""

    async def _add_batch(
        self,
        conn: AsyncConnection,
        campaign_id: int,
        campaign_key: str,
        number: int,
        size: int,
        now: datetime,
        worker_id: int | None = None,
    ) -> str:
        """Record chunk ``number`` as SENDING; returns its tag (``<campaign key>:<number>``)."""
        tag = f"{campaign_key}:{number}"
        await conn.execute(
            insert(batches).values(
                campaign_id=campaign_id,
                chunk=number,
                tag=tag,
                status="SENDING",
                size=size,
                worker_id=worker_id,
                created_at=now,
                updated_at=now,
            )
        )
        return tag

    async def claim_formed(
        self,
        campaign_id: int,
        now: datetime,
        worker_id: int | None = None,
        limit: int = 1,
        *,
        channel: str,
        campaign_key: str,
        known: Mapping[int, ChunkEntries] | None = None,
    ) -> list[Chunk]:
        """Claim up to ``limit`` of the chunks formed at ingest that are not sent yet, first
        first: their rows go to SENDING for ``worker_id`` (their recipients follow them to
        IN_FLIGHT), and each comes with its :class:`Members`, each attempt counted as the
        chunk's. One transaction for them all. []: no formed chunk waits.

        The database writes each chunk's request entries (for ``channel``, keys from
        ``campaign_key``) as one text: a thousand recipients never become Python objects. They
        are read after the claim commits, without holding the write lock (a slice being loaded
        waits for the claim, not for the reading): a claimed chunk's members do not change.

        ``known``: the entries of chunks that this run's load formed, written as it staged
        them (:func:`campaign.sinch.wire.batch_entries_by_chunk`). Those not sent yet are
        claimed too, beyond ``limit`` (a load beside the sending then has each slice's chunks
        claimed at once, not ``limit`` at a time, each claim waiting for a slice to be
        stored). Such a chunk is not read back while all its rows still follow it: rows only
        ever leave a chunk, so the same count means the same rows, none of them sent yet (a
        first attempt)."""
        claimed = await self._take_formed(campaign_id, now, worker_id, limit, known)
        if not claimed:
            return []
        tags = {int(number): str(tag) for number, tag, _ in claimed}
        members: dict[int, Members] = {}
        for number, _, followers in claimed:
            entry = known.get(number) if known is not None else None
            if entry is not None and entry[0] == followers:
                members[number] = Members(None, entry[1], 1, entry[0])
        unread = sorted(number for number in tags if number not in members)
        if unread:
            members.update(await self._read_members(campaign_id, unread, channel, campaign_key))
        empty = [number for number in tags if number not in members]
        if empty:  # none of its rows follows it any more: nothing to send
            async with self.writes.begin() as conn:
                await conn.execute(
                    update(batches)
                    .where(
                        B.campaign_id == campaign_id,
                        B.chunk.in_(empty),
                        B.status == chunks.SENDING,
                        B.worker_id.is_(None) if worker_id is None else B.worker_id == worker_id,
                    )
                    .values(status=chunks.DISSOLVED, updated_at=now)
                )
        return [Chunk(n, tags[n], [], members[n]) for n in sorted(members)]

    async def _take_formed(
        self,
        campaign_id: int,
        now: datetime,
        worker_id: int | None,
        limit: int,
        known: Mapping[int, ChunkEntries] | None,
    ) -> list[Any]:
        """The claim of :meth:`claim_formed` itself: ``(number, tag, followers)`` rows."""
        first = (
            select(B.id)
            .where(B.campaign_id == campaign_id, B.status == chunks.UNSENT)
            .order_by(B.chunk)
            .limit(limit)
        )
        taken = [first]
        if known:  # beyond the limit: their entries cost no reading, nor any more memory
            taken.append(
                select(B.id).where(
                    B.campaign_id == campaign_id,
                    B.status == chunks.UNSENT,
                    B.chunk.in_(sorted(known)),
                )
            )
        if self.dialect == "postgresql":
            taken = [query.with_for_update(skip_locked=True) for query in taken]
        async with self.writes.begin() as conn:
            return list(
                (
                    await conn.execute(
                        update(batches)
                        .where(or_(*(B.id.in_(query.scalar_subquery()) for query in taken)))
                        .values(status=chunks.SENDING, worker_id=worker_id, updated_at=now)
                        .returning(B.chunk, B.tag, B.followers)
                    )
                ).all()
            )

    async def _read_members(
        self, campaign_id: int, numbers: list[int], channel: str, campaign_key: str
    ) -> dict[int, Members]:
        """The members of claimed chunks ``numbers``, their entries written by the database
        (a chunk none of whose rows follows it any more is not there)."""
        ids, entries = statements.entries(self.dialect, channel, campaign_key)
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(C.chunk, ids, entries, func.max(C.attempts))
                    .where(
                        C.campaign_id == campaign_id,
                        C.chunk.in_(numbers),
                        C.status == chunks.FOLLOWS,
                    )
                    .group_by(C.chunk)
                )
            ).all()
        found = {}
        for number, id_list, text, attempts in rows:
            members = orjson.loads(f"[{id_list}]")
            found[int(number)] = Members(members, f"[{text}]", int(attempts) + 1, len(members))
        return found

    async def claims_of(self, campaign_id: int, number: int, members: Members) -> list[Claim]:
        """The recipients of formed chunk ``number`` one by one, in the order of its entries,
        each attempt counted as the chunk's: for the rare sends that need them (a refused or
        failed one)."""
        if members.ids is None:  # entries in the order of positions: the rows that follow it
            query = select(*statements.CLAIMED).where(
                C.campaign_id == campaign_id, C.chunk == number, C.status == chunks.FOLLOWS
            )
            async with self.engine.connect() as conn:
                rows = (await conn.execute(query.order_by(C.position))).all()
        else:
            async with self.engine.connect() as conn:
                found = await conn.execute(select(*statements.CLAIMED).where(C.id.in_(members.ids)))
                by_id = {row[0]: row for row in found.all()}
            rows = [by_id[i] for i in members.ids if i in by_id]
        return [
            Claim(rid, position, identity, parameters, members.attempts, zone, channel, several)
            for rid, position, identity, parameters, _, zone, channel, several in rows
        ]

    async def unclaim(
        self, campaign_id: int, number: int, now: datetime, worker_id: int | None = None
    ) -> None:
        """A formed chunk claimed and not sent (the run stopped first, or Sinch never got it):
        PENDING again, for any worker. With ``worker_id``, only while that worker holds it (a
        worker declared dead meanwhile must not hand back a chunk that another one sends)."""
        await self.unclaim_many(campaign_id, [number], now, worker_id)

    async def unclaim_many(
        self,
        campaign_id: int,
        numbers: Sequence[int],
        now: datetime,
        worker_id: int | None = None,
    ) -> None:
        """:meth:`unclaim` for many chunks in one transaction (a stopped run may hold a
        thousand, claimed as a load beside it stored them)."""
        held = [B.worker_id == worker_id] if worker_id is not None else []
        async with self.writes.begin() as conn:
            for start in range(0, len(numbers), 500):
                part = list(numbers[start : start + 500])
                given = (
                    B.campaign_id == campaign_id,
                    B.chunk.in_(part),
                    B.status == chunks.SENDING,
                    *held,
                )
                claimed_at = func.min(B.updated_at, type_=B.updated_at.type)
                since = await conn.scalar(select(claimed_at).where(*given))
                if since is None:
                    continue
                await conn.execute(
                    update(batches)
                    .where(*given)
                    .values(status=chunks.UNSENT, worker_id=None, updated_at=now)
                )
                await suppression.stop_given_back(conn, campaign_id, part, since, now)

    async def dissolve(
        self, campaign_id: int, now: datetime, larger_than: int | None = None
    ) -> int:
        """Break up the formed chunks not sent yet (all, or those of more than
        ``larger_than`` rows): their rows become ordinary PENDING rows, claimed one by one.
        For a run that sends otherwise than they were formed for (individual mode, quiet
        hours, a smaller batch size). Returns how many rows."""
        async with self.writes.begin() as conn:
            return await chunks.close_unsent(
                conn, campaign_id, chunks.DISSOLVED, now, larger_than=larger_than
            )

    async def claim(
        self,
        campaign_id: int,
        campaign_key: str,
        size: int,
        now: datetime,
        worker_id: int | None = None,
    ) -> Chunk | None:
        """Claim up to ``size`` rows as the campaign's next batch chunk, recorded as SENDING."""
        async with self.writes.begin() as conn:
            number = await chunks.next_number(conn, campaign_id)
            statement = statements.claim_statement(
                self.dialect, campaign_id, size, now, chunk=number, worker_id=worker_id
            )
            kept = await suppression.claim_unlisted(conn, statement, now)
            if not kept:
                return None
            tag = await self._add_batch(
                conn, campaign_id, campaign_key, number, len(kept), now, worker_id
            )
        return Chunk(number, tag, kept)

    async def new(
        self,
        campaign_id: int,
        campaign_key: str,
        ids: Sequence[int],
        now: datetime,
        worker_id: int | None = None,
    ) -> tuple[int, str]:
        """Move claimed rows ``ids`` to a chunk of their own (a split batch's part), so that
        each request sent has its own tag to be found by after a lost answer. The chunk is
        ``worker_id``'s, as its rows are: while that worker lives, no other settles it (a
        chunk of no worker would be taken for a stopped run's, looked up before it left and
        its rows sent again)."""
        async with self.writes.begin() as conn:
            number = await chunks.next_number(conn, campaign_id)
            tag = await self._add_batch(
                conn, campaign_id, campaign_key, number, len(ids), now, worker_id
            )
            await conn.execute(update(recipients).where(C.id.in_(list(ids))).values(chunk=number))
        return number, tag

    async def queued_batch_ids(self, campaign_id: int) -> list[str]:
        """The Sinch batch ids of recipients still QUEUED (not yet delivered or failed)."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(C.batch_id)
                .where(
                    C.campaign_id == campaign_id,
                    C.status == Status.QUEUED.value,
                    C.batch_id.is_not(None),
                )
                .union(
                    select(B.batch_id).where(
                        B.campaign_id == campaign_id,
                        B.status.in_(chunks.ACCEPTED),
                        B.batch_id.is_not(None),
                        B.followers > 0,
                    )
                )
            )
            return sorted({str(b) for b in rows.scalars()})

    async def update(
        self,
        campaign_id: int,
        chunk: int,
        status: str,
        now: datetime,
        *,
        batch_id: str | None = None,
        send_after: datetime | None = None,
    ) -> None:
        """Set chunk ``chunk``'s status. A formed chunk that leaves sending for anything but
        acceptance (a retry, a split, a failure...) first makes its recipients ordinary rows,
        IN_FLIGHT for its worker, so that outcomes written for them find them."""
        values: dict[str, Any] = {"status": status, "updated_at": now}
        if batch_id is not None:
            values["batch_id"] = batch_id
        if send_after is not None:
            values["send_after"] = send_after
        async with self.writes.begin() as conn:
            await chunks.materialise(conn, campaign_id, B.chunk == chunk)
            await conn.execute(
                update(batches)
                .where(batches.c.campaign_id == campaign_id, batches.c.chunk == chunk)
                .values(values)
            )

    async def in_flight(
        self, campaign_id: int, now: datetime, lease: float
    ) -> list[tuple[int, str, list[int], bool]]:
        """Chunks still being sent whose worker no longer runs (a run stopped while sending
        them): ``(number, tag, recipient ids, formed)``. The chunks of live workers are
        theirs."""
        async with self.engine.connect() as conn:
            # Chunks with rows still IN_FLIGHT, and formed chunks still being sent: few.
            # (Found by the status index: IN_FLIGHT rows are few, rows with a chunk are not.)
            held = select(C.chunk).where(
                C.campaign_id == campaign_id, C.status == Status.IN_FLIGHT.value
            )
            candidates = {n for n in (await conn.execute(held)).scalars() if n is not None}
            sending = select(B.chunk).where(
                B.campaign_id == campaign_id, B.status == chunks.SENDING, B.followers > 0
            )
            candidates.update((await conn.execute(sending)).scalars())
            lost = select(B.chunk).where(
                B.campaign_id == campaign_id,
                B.chunk.in_(sorted(candidates)),
                or_(
                    B.worker_id.is_(None),
                    B.worker_id.not_in(statements.running_workers(now, lease)),
                ),
            )
            numbers = list((await conn.execute(lost)).scalars()) if candidates else []
            if not numbers:
                return []
            rows = await conn.execute(
                select(B.chunk, B.tag, C.id, C.status)
                .join(recipients, and_(C.campaign_id == B.campaign_id, C.chunk == B.chunk))
                .where(
                    B.campaign_id == campaign_id,
                    B.chunk.in_(numbers),
                    or_(
                        C.status == Status.IN_FLIGHT.value,
                        and_(C.status == chunks.FOLLOWS, B.status == chunks.SENDING),
                    ),
                )
                .order_by(B.chunk, C.id)
            )
        found: dict[int, tuple[str, list[int], bool]] = {}
        for chunk, tag, rid, status in rows:
            found.setdefault(chunk, (tag, [], status == chunks.FOLLOWS))[1].append(rid)
        return [(chunk, tag, ids, formed) for chunk, (tag, ids, formed) in found.items()]

    async def by_status(self, campaign_id: int, status: str | None = None) -> Any:
        """``{status: count}``, or with ``status`` the (chunk, batch_id) pairs in it."""
        async with self.engine.connect() as conn:
            if status is None:
                rows = await conn.execute(
                    select(batches.c.status, func.count())
                    .where(batches.c.campaign_id == campaign_id)
                    .group_by(batches.c.status)
                )
                return {s: int(n) for s, n in rows.all()}
            rows = await conn.execute(
                select(batches.c.chunk, batches.c.batch_id).where(
                    batches.c.campaign_id == campaign_id, batches.c.status == status
                )
            )
            return [(int(c), str(b)) for c, b in rows.all()]
