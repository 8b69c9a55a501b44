"""Chunks formed at ingest (campaign.store.chunks), on SQLite and Postgres.

Every step checks the store's counts against the same count made the slow way, row by row
through a join (what each recipient's status is, read from its chunk when it follows one), and
each chunk's ``followers`` against the rows that really follow it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import polars as pl
import pytest
from sqlalchemy import func, select

from campaign.models import Status
from campaign.sinch import wire
from campaign.store import chunks
from campaign.store import repository as repo
from campaign.store.events import NewEvent
from campaign.store.records import chunk_params
from campaign.store.tables import batches, recipients
from tests.integration.test_events_store import callback, new
from tests.recipients import deduplicated, loaded, us_numbers

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
C = recipients.c
B = batches.c


async def formed(store: repo.Store, n: int, size: int = 4) -> repo.CampaignRow:
    campaign = await store.campaigns.create(
        name="c", key="CK", mode="batch", channel="SMS", definition="{}", source="x", now=NOW
    )
    await store.ingest.write(
        campaign.id, "SMS", loaded(us_numbers(n)), NOW, repo.Chunking(size, campaign.key)
    )
    return campaign


async def claim(
    store: repo.Store, campaign: repo.CampaignRow, now: datetime, worker: int | None, limit: int = 1
) -> list[repo.Chunk]:
    return await store.chunks.claim_formed(
        campaign.id, now, worker, limit, channel="SMS", campaign_key=campaign.key
    )


async def members(
    store: repo.Store, campaign: repo.CampaignRow, chunk: repo.Chunk
) -> list[repo.Claim]:
    assert chunk.members is not None and chunk.claims == []
    return await store.chunks.claims_of(campaign.id, chunk.number, chunk.members)


async def slow_counts(store: repo.Store, campaign_id: int) -> dict[Status, int]:
    """Each recipient's status, one row at a time, and each chunk's followers checked."""
    async with store.engine.connect() as conn:
        rows = await conn.execute(
            select(chunks.status_of())
            .select_from(recipients.outerjoin(batches, chunks.JOIN))
            .where(C.campaign_id == campaign_id)
        )
        counted = dict(Counter(Status(status) for (status,) in rows.all()))
        following = Counter(
            dict(
                (
                    await conn.execute(
                        select(C.chunk, func.count())
                        .where(C.campaign_id == campaign_id, C.status == chunks.FOLLOWS)
                        .group_by(C.chunk)
                    )
                ).all()
            )
        )
        said = dict(
            (
                await conn.execute(select(B.chunk, B.followers).where(B.campaign_id == campaign_id))
            ).all()
        )
    assert {k: v for k, v in said.items() if v} == dict(following)
    return counted


async def check(store: repo.Store, campaign_id: int, expected: dict[Status, int]) -> None:
    assert await store.recipients.counts(campaign_id) == expected
    assert await slow_counts(store, campaign_id) == expected


async def report(store: repo.Store, campaign_id: int) -> dict[int, dict[str, Any]]:
    return {
        row[0]: dict(zip(repo.REPORT_READ_COLUMNS, row, strict=True))
        async for page in store.export.pages(campaign_id)
        for row in page.iter_rows()
    }


async def test_ingest_forms_chunks_that_claims_send_and_acceptance_records(
    store: repo.Store,
) -> None:
    campaign = await formed(store, 10)
    assert await store.chunks.by_status(campaign.id) == {"PENDING": 3}
    await check(store, campaign.id, {Status.PENDING: 10})
    first, second = await claim(store, campaign, NOW, None, limit=2)
    assert [c.size for c in (first, second)] == [4, 4] and first.formed
    assert {c.attempts for c in await members(store, campaign, first)} == {1}
    await check(store, campaign.id, {Status.IN_FLIGHT: 8, Status.PENDING: 2})
    await store.recipients.record(
        [repo.ChunkSent(campaign.id, first.number, "B1", "ACCEPTED")], NOW
    )
    await check(store, campaign.id, {Status.QUEUED: 4, Status.IN_FLIGHT: 4, Status.PENDING: 2})
    assert await store.chunks.queued_batch_ids(campaign.id) == ["B1"]
    row = (await report(store, campaign.id))[1]
    assert (row["status"], row["batch_id"], row["attempts"]) == ("QUEUED", "B1", 1)
    assert row["sent_at"] == "2026-11-21T12:00:00.000000Z"
    assert await store.recipients.stale_queued(campaign.id, NOW + timedelta(hours=1)) == 4
    # The chunk's rows were never rewritten: they still follow it.
    async with store.engine.connect() as conn:
        assert await conn.scalar(select(func.count()).where(C.status == chunks.FOLLOWS)) == 10


async def test_a_resumed_load_forms_no_chunk_twice_and_duplicates_follow_none(
    store: repo.Store,
) -> None:
    campaign = await formed(store, 6)
    numbers = us_numbers(6)
    # the same rows, and a duplicate of the first
    (again,) = deduplicated(loaded([*numbers, numbers[0]]))
    counts = await store.ingest.write(
        campaign.id, "SMS", again, NOW, repo.Chunking(4, campaign.key)
    )
    assert counts.duplicate == 1
    assert await store.chunks.by_status(campaign.id) == {"PENDING": 2}
    await check(store, campaign.id, {Status.PENDING: 6, Status.DUPLICATE: 1})


def _delivered_in_batch(batch_id: str, key: str) -> NewEvent:
    """A DELIVERED callback about one recipient of a batch, found by its key (metadata)."""
    body = orjson.loads(callback("DELIVERED", key=None))
    body["message_delivery_report"]["metadata"] = orjson.dumps(
        {"_batch_id": batch_id, "recipient": key}
    ).decode()
    return new(orjson.dumps(body), "n1")


async def test_a_callback_makes_its_recipient_an_ordinary_row(store: repo.Store) -> None:
    campaign = await formed(store, 4)
    (chunk,) = await claim(store, campaign, NOW, None)
    await store.events.insert([_delivered_in_batch("B1", "CK-2")])
    assert (await store.events.apply(NOW)).waiting == 1  # the chunk is not recorded yet
    await check(store, campaign.id, {Status.IN_FLIGHT: 4})
    await store.recipients.record(
        [repo.ChunkSent(campaign.id, chunk.number, "B1", "ACCEPTED")], NOW
    )
    assert (await store.events.apply_for(batch_ids=["B1"], now=NOW)).applied == 1
    await check(store, campaign.id, {Status.QUEUED: 3, Status.DELIVERED: 1})
    row = (await report(store, campaign.id))[2]
    assert (row["status"], row["batch_id"], row["attempts"]) == ("DELIVERED", "B1", 1)


async def test_the_report_gives_followers_what_the_sql_join_gives_them(
    store: repo.Store,
) -> None:
    """The report joins chunks in Polars (campaign.store.export); the store's SQL says the
    same through chunks.status_of / attempts_of, for every status a chunk with followers has."""
    campaign = await formed(store, 18)  # 5 chunks of 4 (the last of 2)
    _sending, accepted, scheduled, mixed = await claim(store, campaign, NOW, None, limit=4)
    later = NOW + timedelta(minutes=5)
    await store.recipients.record(
        [repo.ChunkSent(campaign.id, accepted.number, "B1", "ACCEPTED")], later
    )
    await store.recipients.record(
        [repo.ChunkSent(campaign.id, scheduled.number, "B2", "SCHEDULED", send_after=later)], NOW
    )
    await store.recipients.record(
        [repo.ChunkSent(campaign.id, mixed.number, "B3", "ACCEPTED")], NOW
    )
    body = orjson.loads(callback("DELIVERED", key=None))  # one row of B3 leaves its chunk
    body["message_delivery_report"]["metadata"] = orjson.dumps(
        {"_batch_id": "B3", "recipient": f"CK-{mixed.number * 4}"}
    ).decode()
    await store.events.insert([new(orjson.dumps(body), "n1")])
    assert (await store.events.apply(later)).applied == 1
    async with store.engine.connect() as conn:
        joined = await conn.execute(
            select(
                C.position,
                chunks.status_of(),
                chunks.attempts_of(),
                func.coalesce(C.batch_id, B.batch_id),
                func.coalesce(C.sent_at, B.sent_at),
            )
            .select_from(recipients.outerjoin(batches, chunks.JOIN))
            .where(C.campaign_id == campaign.id)
        )
        expected = {row[0]: (row[1], row[2], row[3], iso(row[4])) for row in joined.all() if row[0]}
    reported = {
        position: (row["status"], row["attempts"], row["batch_id"], row["sent_at"])
        for position, row in (await report(store, campaign.id)).items()
    }
    assert reported == expected
    statuses = Counter(status for status, *_ in reported.values())
    assert statuses == {"IN_FLIGHT": 4, "QUEUED": 11, "DELIVERED": 1, "PENDING": 2}
    assert reported[accepted.number * 4][3] == "2026-11-21T12:05:00.000000Z"


def iso(at: Any) -> str | None:
    """A timestamp as the report writes it."""
    if at is None:
        return None
    at = repo.tables_datetime(at) if isinstance(at, str) else at.astimezone(UTC)
    return f"{at:%Y-%m-%dT%H:%M:%S.%f}Z"


def test_a_follower_of_a_chunk_formed_after_the_chunks_were_read_is_pending() -> None:
    own = pl.DataFrame(
        {
            "position": [1, 2, 3],
            "status": [chunks.FOLLOWS, chunks.FOLLOWS, "FAILED"],
            "chunk": [0, 1, 0],  # row 3 was in chunk 0 but left it: it takes nothing from it
            "attempts": [0, 0, 1],
            "batch_id": [None, None, None],
            "sent_at": [None, None, "s3"],
            "updated_at": ["u1", "u2", "u3"],
        }
    )
    chunk_rows = pl.DataFrame(
        {"chunk": [0], "status": ["ACCEPTED"], "batch_id": ["B0"], "sent_at": ["s0"]}
        | {"updated_at": ["u0"]}
    )
    view = chunks.follower_view(own, chunk_rows)
    assert view.columns == own.columns
    assert view.rows() == [
        (1, "QUEUED", 0, 1, "B0", "s0", "u0"),
        (2, "PENDING", 1, 0, None, None, "u2"),
        (3, "FAILED", 0, 1, None, "s3", "u3"),
    ]


async def test_a_chunk_that_fails_hands_its_rows_to_ordinary_outcomes(store: repo.Store) -> None:
    campaign = await formed(store, 8)
    retried, failed = await claim(store, campaign, NOW, None, limit=2)
    await store.chunks.update(campaign.id, retried.number, "RETRY", NOW)
    later = NOW + timedelta(seconds=5)
    retries = [
        repo.Retry(c.id, later, "HTTP_503", "busy") for c in await members(store, campaign, retried)
    ]
    await store.recipients.record(retries, NOW)
    await store.chunks.update(campaign.id, failed.number, "FAILED", NOW)
    await store.recipients.record(
        [repo.Failed(c.id, "BAD", "no") for c in await members(store, campaign, failed)], NOW
    )
    await check(store, campaign.id, {Status.PENDING: 4, Status.FAILED: 4})
    # The retries are claimed as an ordinary (new) chunk when due, counting a second attempt.
    assert await claim(store, campaign, later, None) == []
    again = await store.chunks.claim(campaign.id, campaign.key, 10, later)
    assert again is not None and {c.attempts for c in again.claims} == {2}
    await check(store, campaign.id, {Status.IN_FLIGHT: 4, Status.FAILED: 4})


async def test_an_unclaimed_chunk_is_sent_whole_again(store: repo.Store) -> None:
    campaign = await formed(store, 4)
    (chunk,) = await claim(store, campaign, NOW, 7)
    await store.chunks.unclaim(campaign.id, chunk.number, NOW, worker_id=8)  # not its holder
    await check(store, campaign.id, {Status.IN_FLIGHT: 4})
    await store.chunks.unclaim(campaign.id, chunk.number, NOW, worker_id=7)
    await check(store, campaign.id, {Status.PENDING: 4})
    (again,) = await claim(store, campaign, NOW, None)
    assert again.number == chunk.number and again.members == chunk.members


async def test_what_is_left_to_send_includes_chunks_and_rows_given_back(
    store: repo.Store,
) -> None:
    """A run ends when nothing is left to send: a formed chunk given back (a full queue), or
    a row given back with no retry time, is left, and due at once. (A send that gave one
    back between a claim that found nothing and this look once ended a run with 400
    recipients PENDING.)"""
    campaign = await formed(store, 4)
    (chunk,) = await claim(store, campaign, NOW, 7)
    assert await store.recipients.next_due_at(campaign.id, NOW) is None  # all in flight
    await store.chunks.unclaim(campaign.id, chunk.number, NOW, worker_id=7)
    assert await store.recipients.next_due_at(campaign.id, NOW) == NOW
    (again,) = await claim(store, campaign, NOW, 7)
    claims = await members(store, campaign, again)
    await store.chunks.update(campaign.id, again.number, "SPLIT", NOW)
    await store.recipients.record([repo.Sent(c.id, f"M{c.id}") for c in claims[1:]], NOW)
    await store.recipients.record([repo.Release(claims[0].id)], NOW)
    await check(store, campaign.id, {Status.PENDING: 1, Status.QUEUED: 3})
    assert await store.recipients.next_due_at(campaign.id, NOW) == NOW
    (row,) = await store.recipients.claim(campaign.id, 10, NOW)
    later = NOW + timedelta(minutes=5)
    await store.recipients.record([repo.Retry(row.id, later, "HTTP_503", "busy")], NOW)
    assert await store.recipients.next_due_at(campaign.id, NOW) == later


async def test_cancel_and_the_deadline_reach_the_chunks_not_sent(store: repo.Store) -> None:
    campaign = await formed(store, 12)
    first, second = await claim(store, campaign, NOW, None, limit=2)
    await store.recipients.record(
        [repo.ChunkSent(campaign.id, first.number, "B1", "SCHEDULED")], NOW
    )
    await store.recipients.record(
        [repo.ChunkSent(campaign.id, second.number, "B2", "ACCEPTED")], NOW
    )
    assert await store.campaigns.cancel(campaign.id, ["B1"], NOW) == {"pending": 4, "scheduled": 4}
    await check(store, campaign.id, {Status.CANCELLED: 8, Status.QUEUED: 4})
    other = await store.campaigns.create(
        name="d", key="DK", mode="batch", channel="SMS", definition="{}", source="x", now=NOW
    )
    await store.ingest.write(
        other.id, "SMS", loaded(us_numbers(5)), NOW, repo.Chunking(2, other.key)
    )
    assert await store.recipients.cancel_pending(other.id, NOW, "DEADLINE", "too late") == 5
    await check(store, other.id, {Status.CANCELLED: 5})


async def test_dissolved_chunks_are_claimed_row_by_row(store: repo.Store) -> None:
    campaign = await formed(store, 10)
    assert await store.chunks.dissolve(campaign.id, NOW, larger_than=3) == 8  # the two of 4
    assert await store.chunks.by_status(campaign.id) == {"DISSOLVED": 2, "PENDING": 1}
    assert await store.chunks.dissolve(campaign.id, NOW) == 2
    await check(store, campaign.id, {Status.PENDING: 10})
    claimed = await store.recipients.claim(campaign.id, 100, NOW)
    assert len(claimed) == 10 and {c.attempts for c in claimed} == {1}


async def test_a_dead_workers_formed_chunk_is_found_for_settling(store: repo.Store) -> None:
    campaign = await formed(store, 4)
    worker = await store.workers.register(campaign.id, "w", NOW, 1.0, exclusive=False)
    (chunk,) = await claim(store, campaign, NOW, worker)
    assert await store.recipients.held_elsewhere(campaign.id, None) == 4
    assert await store.chunks.in_flight(campaign.id, NOW, 60.0) == []  # its worker still runs
    lost = await store.chunks.in_flight(campaign.id, NOW + timedelta(seconds=5), 1.0)
    assert chunk.members is not None
    assert lost == [(chunk.number, chunk.tag, chunk.members.ids, True)]


async def test_the_database_writes_the_entries_that_wire_writes(store: repo.Store) -> None:
    """A formed chunk's request entries come from SQL: the same JSON as the Python that writes
    them for every other chunk, whatever the identity and the parameters."""
    identities = ["+12015550001", 'psid "quoted" \\ back', "名前 ✓ 😀", "tab\tand\nnewline"]
    parameters = [
        "{}",
        orjson.dumps({"first_name": 'O"Brien \\ é'}).decode(),
        orjson.dumps({"a": "😀", "b": "x\u0001y"}).decode(),
        orjson.dumps({"n": "1"}).decode(),
    ]
    campaign = await store.campaigns.create(
        name="c", key="CK", mode="batch", channel="MESSENGER", definition="{}", source="x", now=NOW
    )
    rows = loaded(identities, parameters)
    await store.ingest.write(campaign.id, "MESSENGER", rows, NOW, repo.Chunking(4, campaign.key))
    (chunk,) = await store.chunks.claim_formed(
        campaign.id, NOW, None, channel="MESSENGER", campaign_key=campaign.key
    )
    assert chunk.members is not None
    claims = await store.chunks.claims_of(campaign.id, chunk.number, chunk.members)
    assert [c.position for c in claims] == [1, 2, 3, 4]
    expected = wire.batch_entries(
        (c.channel, c.identity, c.identities, c.parameters, wire.recipient_key("CK", c.position))
        for c in claims
    )
    entries = orjson.loads(chunk.members.entries)
    assert entries == orjson.loads(orjson.dumps(expected))
    assert [
        e["recipient"]["identified_by"]["channel_identities"][0]["identity"] for e in entries
    ] == identities
    assert [e["parameters"] for e in entries] == [orjson.loads(p) for p in parameters]
    assert [e["message_metadata"]["recipient"] for e in entries] == [f"CK-{i}" for i in range(1, 5)]


def python_entries(channel: str, claims: list[repo.Claim]) -> str:
    """:func:`wire.batch_entries` of ``claims``, as text."""
    recipients = (
        (
            c.channel or channel,
            c.identity,
            c.identities,
            c.parameters,
            wire.recipient_key("CK", c.position),
        )
        for c in claims
    )
    return orjson.dumps(wire.batch_entries(recipients)).decode()


async def test_the_load_writes_the_entries_that_the_database_writes(store: repo.Store) -> None:
    """A slice staged for a channel carries its chunks' entries, written by Polars while it is
    staged: the very text that the wire module writes, and the JSON that the database writes, in
    the order of the rows' positions."""
    identities = ["+12015550001", 'psid "quoted" \\ back', "名前 ✓ 😀", "tab\tand\nnewline", "x"]
    parameters = [
        "{}",
        orjson.dumps({"first_name": 'O"Brien \\ é'}).decode(),
        orjson.dumps({"a": "😀", "b": "x\u0001y\u007f\u2028"}).decode(),
        orjson.dumps({"n": "1"}).decode(),
        "{}",
    ]
    campaign = await store.campaigns.create(
        name="c", key="CK", mode="batch", channel="MESSENGER", definition="{}", source="x", now=NOW
    )
    chunking = repo.Chunking(4, campaign.key, channel="MESSENGER")
    staged = store.ingest.stage(loaded(identities, parameters), chunking)
    assert {n: size for n, (size, _) in staged.entries.items()} == {0: 4, 1: 1}
    counts = await store.ingest.write(campaign.id, "MESSENGER", staged, NOW, chunking)
    assert counts.first_chunk == 1
    from_sql = await store.chunks.claim_formed(
        campaign.id, NOW, None, 2, channel="MESSENGER", campaign_key=campaign.key
    )
    assert [c.number for c in from_sql] == [1, 2]
    for chunk in from_sql:
        assert chunk.members is not None and chunk.members.ids is not None
        size, text = staged.entries[chunk.number - 1]
        assert size == chunk.members.size
        assert orjson.loads(text) == orjson.loads(chunk.members.entries)
        assert text == python_entries("MESSENGER", await members(store, campaign, chunk))


async def test_a_claim_takes_the_entries_the_load_wrote_while_its_rows_follow(
    store: repo.Store,
) -> None:
    """The entries of a chunk that this run's load formed are not read back while all its rows
    still follow it (a first attempt; its rows are read by chunk, in order, when a failed send
    needs them), and they are claimed beyond the limit asked for. Entries that do not count the
    chunk's followers are not used: it is read."""
    campaign = await store.campaigns.create(
        name="c", key="CK", mode="batch", channel="SMS", definition="{}", source="x", now=NOW
    )
    chunking = repo.Chunking(4, campaign.key, channel="SMS")
    staged = store.ingest.stage(loaded(us_numbers(8)), chunking)
    counts = await store.ingest.write(campaign.id, "SMS", staged, NOW, chunking)
    assert counts.first_chunk is not None
    known = {counts.first_chunk + n: entries for n, entries in staged.entries.items()}
    second = counts.first_chunk + 1
    known[second] = (3, "[]")  # as if a row had left the chunk since
    # One chunk asked for: the known ones come too (their entries cost no reading).
    kept, read = await store.chunks.claim_formed(
        campaign.id, NOW, None, 1, channel="SMS", campaign_key=campaign.key, known=known
    )
    assert kept.members is not None and read.members is not None
    assert kept.members.ids is None  # not read back
    size, text = known[kept.number]
    assert (kept.members.entries, kept.members.size, kept.members.attempts) == (text, size, 1)
    claims = await members(store, campaign, kept)
    assert [c.position for c in claims] == [1, 2, 3, 4] and {c.attempts for c in claims} == {1}
    assert kept.members.entries == python_entries("SMS", claims)
    assert read.number == second and read.members.ids is not None  # read from the database
    assert read.members.size == 4
    assert read.members.entries == python_entries("SMS", await members(store, campaign, read))
    await check(store, campaign.id, {Status.IN_FLIGHT: 8})


async def test_a_slice_stored_in_part_gives_no_entries(store: repo.Store) -> None:
    """A resumed load whose slice was partly stored already forms other chunks than it staged:
    it says so (no first chunk), and its chunks are read from the database when claimed."""
    campaign = await store.campaigns.create(
        name="c", key="CK", mode="batch", channel="SMS", definition="{}", source="x", now=NOW
    )
    chunking = repo.Chunking(4, campaign.key, channel="SMS")
    numbers = us_numbers(6)
    await store.ingest.write(campaign.id, "SMS", loaded(numbers[:3]), NOW, chunking)
    counts = await store.ingest.write(campaign.id, "SMS", loaded(numbers), NOW, chunking)
    assert counts.first_chunk is None and counts.stored == 3


@pytest.mark.parametrize("follows", [False, True])
async def test_acceptance_queues_the_chunk_s_own_rows_however_they_are_found(
    store: repo.Store, follows: bool
) -> None:
    """A formed chunk's rows of their own (IN_FLIGHT while it is sent) are QUEUED with it,
    whether found through the chunk's index or, for a chunk sent whole, by their status."""
    campaign = await formed(store, 8)
    first, second = await claim(store, campaign, NOW, None, limit=2)
    async with store.writes.begin() as conn:  # one row of each leaves its chunk
        for chunk in (first, second):
            moved = await chunks.materialise(
                conn, campaign.id, B.chunk == chunk.number, rows=C.position == chunk.number * 4
            )
            assert moved == 1
    await check(store, campaign.id, {Status.IN_FLIGHT: 8})
    accepted = repo.ChunkSent(campaign.id, first.number, "B1", "ACCEPTED", follows=follows)
    await store.recipients.record([accepted], NOW)
    await check(store, campaign.id, {Status.QUEUED: 4, Status.IN_FLIGHT: 4})
    rows = await report(store, campaign.id)
    assert (rows[4]["status"], rows[4]["batch_id"]) == ("QUEUED", "B1")  # its own row
    assert rows[8]["status"] == "IN_FLIGHT"  # the other chunk's own row: not this batch's


@pytest.mark.parametrize("formed_at_load", [True, False])
async def test_several_identities_reach_the_entries_as_loaded(
    store: repo.Store, formed_at_load: bool
) -> None:
    """A recipient with several identities is sent with all of them, and one whose first
    choice is missing on its other channel: the entries that the load writes, that the
    database writes, and that the wire module writes from the claims are the same text."""
    phones = us_numbers(3)
    several = [
        orjson.dumps(
            [{"channel": "WHATSAPP", "identity": phone}, {"channel": "SMS", "identity": phone}]
        ).decode()
        for phone in phones[:2]
    ]
    rows = loaded([*phones[:2], 'psid "3"']).with_columns(
        channel=pl.Series([None, None, "MESSENGER"], dtype=pl.String),
        identities=pl.Series([*several, None], dtype=pl.String),
    )
    campaign = await store.campaigns.create(
        name="c", key="CK", mode="batch", channel="WHATSAPP", definition="{}", source="x", now=NOW
    )
    chunking = repo.Chunking(4, campaign.key, channel="WHATSAPP" if formed_at_load else None)
    staged = store.ingest.stage(rows, chunking)
    await store.ingest.write(campaign.id, "WHATSAPP", staged, NOW, chunking)
    (chunk,) = await store.chunks.claim_formed(
        campaign.id, NOW, None, 1, channel="WHATSAPP", campaign_key=campaign.key
    )
    claims = await members(store, campaign, chunk)
    assert [(c.channel, c.identities) for c in claims] == [
        ("WHATSAPP", several[0]),
        ("WHATSAPP", several[1]),
        ("MESSENGER", None),
    ]
    assert chunk.members is not None
    assert chunk.members.entries == python_entries("WHATSAPP", claims)
    if formed_at_load:
        assert staged.entries[0][1] == chunk.members.entries
    recipients_sent = [e["recipient"] for e in orjson.loads(chunk.members.entries)]
    assert recipients_sent == [
        {"identified_by": {"channel_identities": orjson.loads(several[0])}},
        {"identified_by": {"channel_identities": orjson.loads(several[1])}},
        {
            "identified_by": {
                "channel_identities": [{"channel": "MESSENGER", "identity": 'psid "3"'}]
            }
        },
    ]


async def _beside(
    hold: Callable[[], AbstractAsyncContextManager[None]], other: Callable[[], Awaitable[Any]]
) -> None:
    """Run ``other`` while ``hold`` (a write of the store's, in a transaction kept open a
    moment) has not committed yet: on Postgres the two really overlap."""
    async with hold():
        task = asyncio.ensure_future(other())
        await asyncio.sleep(0.3)  # ``other`` has begun and reached whatever it waits for
        assert not task.done() or task.exception() is None
    await task


async def test_a_callback_applied_while_acceptance_commits_finds_the_row_queued(
    store: repo.Store,
) -> None:
    """A receiver applying a follower's callback while the sender records the chunk's
    acceptance: once both commit, the row is DELIVERED, not left IN_FLIGHT for good."""
    campaign = await formed(store, 4)
    (chunk,) = await claim(store, campaign, NOW, None)
    await store.events.insert([_delivered_in_batch("B1", "CK-2")])
    accepted = repo.ChunkSent(campaign.id, chunk.number, "B1", "ACCEPTED", follows=True)

    @contextlib.asynccontextmanager
    async def accepting() -> AsyncIterator[None]:
        async with store.writes.begin() as conn:
            await chunks.lock_chunks(conn, [(campaign.id, chunk.number)])
            await chunks.record_accepted(conn, [chunk_params(accepted)], NOW)
            yield

    await _beside(accepting, lambda: store.events.apply(NOW))
    await store.events.apply(NOW + timedelta(minutes=1))  # whatever waited is looked at again
    await check(store, campaign.id, {Status.QUEUED: 3, Status.DELIVERED: 1})


async def test_acceptance_recorded_while_a_callback_takes_a_row_out_queues_it(
    store: repo.Store,
) -> None:
    """The other order: a row leaves its chunk (a callback's materialisation, uncommitted)
    while the chunk's acceptance is recorded: the row is QUEUED with the rest."""
    campaign = await formed(store, 4)
    (chunk,) = await claim(store, campaign, NOW, None)

    @contextlib.asynccontextmanager
    async def materialising() -> AsyncIterator[None]:
        async with store.writes.begin() as conn:
            moved = await chunks.materialise(
                conn, campaign.id, B.chunk == chunk.number, rows=C.position == 2
            )
            assert moved == 1
            yield

    accepted = repo.ChunkSent(campaign.id, chunk.number, "B1", "ACCEPTED", follows=True)
    await _beside(materialising, lambda: store.recipients.record([accepted], NOW))
    await check(store, campaign.id, {Status.QUEUED: 4})
