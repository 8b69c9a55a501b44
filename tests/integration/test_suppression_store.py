"""The suppression list on real SQLite and real Postgres: idempotent changes, each recorded,
the load's set-based marking, and a mid-campaign opt-out that stops PENDING rows only."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from unittest.mock import ANY

import orjson
import polars as pl
import pytest
from sqlalchemy import select

from campaign.models import Status
from campaign.store import repository as repo
from campaign.store.tables import suppression_changes
from tests.integration.test_receiver import Start, start  # noqa: F401 (a fixture)
from tests.integration.test_store import NOW, frame, new_campaign


async def test_add_and_remove_are_idempotent_and_recorded(store: repo.Store) -> None:
    added = await store.suppression.add(
        ["+12015550001", "+12015550002", "+12015550001"], now=NOW, source="CLI", by="ana"
    )
    assert (added.changed, added.unchanged) == (2, 0)
    again = await store.suppression.add(["+12015550001"], now=NOW, source="CLI", by="bob")
    assert (again.changed, again.unchanged) == (0, 1)
    entries = await store.suppression.entries()
    assert [(e.identity, e.created_by) for e in entries] == [
        ("+12015550001", "ana"),
        ("+12015550002", "ana"),
    ]
    removed = await store.suppression.remove(["+12015550002", "+19999"], now=NOW, by="cy")
    assert (removed.changed, removed.unchanged) == (1, 1)
    assert await store.suppression.count() == 1
    assert not await store.suppression.contains("+12015550002")
    async with store.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(
                    suppression_changes.c.identity,
                    suppression_changes.c.action,
                    suppression_changes.c.changed_by,
                ).order_by(suppression_changes.c.id)
            )
        ).all()
    assert [tuple(r) for r in rows] == [
        ("+12015550001", "ADD", "ana"),
        ("+12015550002", "ADD", "ana"),
        ("+12015550002", "REMOVE", "cy"),
    ]


@pytest.mark.parametrize("batch", [False, True])
async def test_the_load_marks_suppressed_identities_as_it_stages_them(
    store: repo.Store, batch: bool
) -> None:
    """On any of a row's identities, in both modes: a suppressed row joins no chunk."""
    await store.suppression.add(["+12015550002", "psid-3"], now=NOW, source="KEYWORD", by="m1")
    campaign = await new_campaign(store)
    loaded = frame(
        [(i, "x", f"+1201555{i:04d}", None) for i in range(1, 4)] + [(4, "b", None, "bad")]
    )
    third = (
        '[{"channel":"SMS","identity":"+12015550003"},{"channel":"MESSENGER","identity":"psid-3"}]'
    )
    loaded = loaded.with_columns(
        identities=pl.Series([None, None, third, None], dtype=pl.String),
    )
    chunking = repo.Chunking(10, campaign.key) if batch else None
    staged = store.ingest.stage(loaded, chunking, suppressed=await store.suppression.identities())
    assert staged.frame.get_column("chunk").to_list() == (
        [0, None, None, None] if batch else [None] * 4
    )
    await store.ingest.write(campaign.id, "SMS", staged, NOW, chunking)
    counts = await store.recipients.counts(campaign.id)
    assert counts == {Status.PENDING: 1, Status.SUPPRESSED: 2, Status.REJECTED: 1}
    rows = [r async for page in store.export.pages(campaign.id) for r in page.iter_rows()]
    second = next(r for r in rows if r[0] == 2)
    assert second[4] == "SUPPRESSED" and second[7] == "OPTED_OUT"


async def test_an_opt_out_stops_pending_rows_of_every_campaign_not_claimed_ones(
    store: repo.Store,
) -> None:
    one, two = await new_campaign(store, "c1"), await new_campaign(store, "c2")
    for campaign in (one, two):
        await store.ingest.write(
            campaign.id,
            "SMS",
            frame([(i, "x", f"+1201555{i:04d}", None) for i in range(1, 4)]),
            NOW,
        )
    claimed = await store.recipients.claim(one.id, 1, NOW)  # +12015550001 of c1: IN_FLIGHT
    assert [c.position for c in claimed] == [1]
    done = await store.suppression.add(
        ["+12015550001"], now=NOW, source="OPT_OUT", by="event", channel="SMS", campaign_id=one.id
    )
    assert done.stopped == 1  # c2's PENDING row; c1's claimed one is the sender's to settle
    assert (await store.recipients.counts(one.id))[Status.IN_FLIGHT] == 1
    assert (await store.recipients.counts(two.id))[Status.SUPPRESSED] == 1


@pytest.mark.parametrize("batch", [False, True])
async def test_a_claim_stops_rows_in_flight_at_an_opt_out_and_rows_of_another_identity(
    store: repo.Store, batch: bool
) -> None:
    """An opt-out stops PENDING rows of its identity when it comes. Two rows it cannot reach
    then are stopped when they are claimed, before they leave: one in flight at the opt-out
    whose send is retried, and one that has the identity as another than its first."""
    campaign = await new_campaign(store)
    loaded = frame([(i, "x", f"+1201555{i:04d}", None) for i in range(1, 4)])
    second = (
        '[{"channel":"SMS","identity":"+12015550002"},{"channel":"MESSENGER","identity":"psid-2"}]'
    )
    loaded = loaded.with_columns(identities=pl.Series([None, second, None], dtype=pl.String))
    staged = store.ingest.stage(loaded, None, suppressed=await store.suppression.identities())
    await store.ingest.write(campaign.id, "SMS", staged, NOW)

    async def claim(size: int) -> list[int]:
        if not batch:
            return [c.position for c in await store.recipients.claim(campaign.id, size, NOW)]
        chunk = await store.chunks.claim(campaign.id, campaign.key, size, NOW)
        return [] if chunk is None else [c.position for c in chunk.claims]

    assert await claim(1) == [1]  # in flight when the opt-outs come
    done = await store.suppression.add(
        ["+12015550001", "psid-2"], now=NOW, source="KEYWORD", by="m1"
    )
    assert done.stopped == 0  # one in flight, one whose first identity is another
    first = next(r for r in await _rows(store, campaign.id) if r["position"] == 1)
    await store.recipients.record([repo.Retry(first["id"], NOW, "HTTP_503", "busy")], NOW)
    assert await claim(10) == [3]  # the retried row and the other identity's are not sent
    rows = {r["position"]: r for r in await _rows(store, campaign.id)}
    assert [(rows[p]["status"], rows[p]["error_code"]) for p in (1, 2, 3)] == [
        ("SUPPRESSED", "OPTED_OUT"),
        ("SUPPRESSED", "OPTED_OUT"),
        ("IN_FLIGHT", None),
    ]
    assert rows[1]["chunk"] is None and rows[2]["chunk"] is None  # in no request
    # Claims of rows that are all on the list find the next ones: none here.
    await store.suppression.add(["+12015550003"], now=NOW, source="KEYWORD", by="m1")
    await store.recipients.record([repo.Retry(rows[3]["id"], NOW, "HTTP_503", "busy")], NOW)
    assert await claim(10) == []
    assert (await store.recipients.counts(campaign.id)) == {Status.SUPPRESSED: 3}


async def _rows(store: repo.Store, campaign_id: int) -> list[dict[str, Any]]:
    from campaign.store.tables import recipients

    async with store.engine.connect() as conn:
        found = await conn.execute(
            select(recipients).where(recipients.c.campaign_id == campaign_id)
        )
        return [dict(row._mapping) for row in found]


# --- the receiver: inbound replies and OPT_OUT -------------------------------------------------


def inbound(text: str, identity: str = "12015550001", reply_to: str = "") -> bytes:
    """A MESSAGE_INBOUND callback body: ``text`` from ``identity`` on SMS."""
    message: dict[str, Any] = {
        "id": "MO-1",
        "direction": "TO_APP",
        "channel_identity": {"channel": "SMS", "identity": identity, "app_id": "app"},
        "contact_message": {"text_message": {"text": text}},
    }
    if reply_to:
        message["contact_message"]["reply_to"] = {"message_id": reply_to}
    return orjson.dumps(
        {
            "app_id": "app",
            "project_id": "project",
            "accepted_time": "2026-11-21T12:00:01.000Z",
            "event_time": "2026-11-21T12:00:01.000Z",
            "message": message,
        }
    )


def opt_out_notification(identity: str) -> bytes:
    return orjson.dumps(
        {
            "app_id": "app",
            "event_time": "2026-11-21T12:00:01.000Z",
            "opt_out_notification": {
                "channel_identity": {"channel": "WHATSAPP", "identity": identity},
                "status": "OPT_OUT_STATUS_SUCCESS",
            },
        }
    )


async def test_a_stop_reply_opts_out_and_stops_pending_sends(
    store: repo.Store,
    start: Start,  # noqa: F811 (the fixture)
) -> None:
    campaign = await new_campaign(store)
    await store.ingest.write(
        campaign.id,
        "SMS",
        frame([(i, "x", f"+1201555{i:04d}", None) for i in range(1, 4)]),
        NOW,
    )
    async with start() as client:
        assert await client.post_signed(inbound(" Stop\n"), nonce="n1") == 200
        assert await client.post_signed(inbound("hello there", "12015550002"), nonce="n2") == 200
        assert await client.post_signed(opt_out_notification("12015550003"), nonce="n3") == 200
        health = await client.health()
    assert (health["inbound"], health["opt_outs"]) == (2, 2)
    entries = {e.identity: e for e in await store.suppression.entries()}
    assert set(entries) == {"+12015550001", "+12015550003"}
    assert (entries["+12015550001"].source, entries["+12015550001"].channel) == ("KEYWORD", "SMS")
    assert entries["+12015550003"].source == "OPT_OUT"
    counts = await store.recipients.counts(campaign.id)
    assert counts == {Status.PENDING: 1, Status.SUPPRESSED: 2}
    assert await store.events.count() == 3  # every reply is kept


async def test_forged_and_replayed_opt_outs_change_nothing(
    store: repo.Store,
    start: Start,  # noqa: F811 (the fixture)
) -> None:
    body = inbound("STOP")
    async with start() as client:
        assert await client.post_signed(body, secret="not-the-secret") == 401
        assert await client.post(body) == (401, ANY, ANY)
        assert await store.suppression.count() == 0
        assert await client.post_signed(body, nonce="once") == 200
        await store.suppression.remove(["+12015550001"], now=NOW, by="ops")
        assert await client.post_signed(body, nonce="once") == 401  # replayed
    # A restarted receiver (empty nonce memory): the stored nonce refuses the copy.
    async with start() as client:
        assert await client.post_signed(body, nonce="once") == 200
    assert await store.suppression.count() == 0


async def test_an_opt_out_takes_its_rows_out_of_unclaimed_chunks(store: repo.Store) -> None:
    """Batch mode: a row following a formed chunk that no worker claimed is stopped, and the
    chunk's entries no longer hold it; a chunk left empty is dissolved (never sent); a chunk
    already claimed is sent as it is."""
    campaign = await new_campaign(store)
    chunking = repo.Chunking(2, campaign.key)
    phones = [f"+1201555{i:04d}" for i in range(1, 7)]  # chunks 1: 1-2, 2: 3-4, 3: 5-6
    await store.ingest.write(
        campaign.id,
        "SMS",
        frame([(i, "x", p, None) for i, p in enumerate(phones, 1)]),
        NOW,
        chunking,
    )
    (claimed,) = await store.chunks.claim_formed(
        campaign.id, NOW, None, 1, channel="SMS", campaign_key=campaign.key
    )
    assert claimed.number == 1
    done = await store.suppression.add(
        [phones[0], phones[2], phones[4], phones[5]], now=NOW, source="MANUAL", by="t"
    )
    assert done.stopped == 3  # row 1 is in the claimed chunk: it goes as it is
    left = await store.chunks.claim_formed(
        campaign.id, NOW, None, 5, channel="SMS", campaign_key=campaign.key
    )
    assert [c.number for c in left] == [2]  # chunk 3 lost both rows: dissolved
    assert left[0].members is not None and left[0].members.size == 1
    entries = orjson.loads(left[0].members.entries)
    assert [
        e["recipient"]["identified_by"]["channel_identities"][0]["identity"] for e in entries
    ] == [phones[3]]
    counts = await store.recipients.counts(campaign.id)
    assert counts[Status.SUPPRESSED] == 3


async def test_a_chunk_given_back_loses_the_rows_that_opted_out_while_it_was_held(
    store: repo.Store,
) -> None:
    """Batch mode: an opt-out cannot take rows out of a chunk that a worker holds. When that
    chunk is given back unsent (a retry, a stop), those rows are stopped then, on their first
    identity or another, and the chunk's entries no longer hold them."""
    campaign = await new_campaign(store)
    phones = [f"+1201555{i:04d}" for i in range(1, 5)]  # chunk 1: rows 1-4
    loaded = frame([(i, "x", p, None) for i, p in enumerate(phones, 1)])
    second = (
        '[{"channel":"SMS","identity":"+12015550002"},{"channel":"MESSENGER","identity":"p-2"}]'
    )
    loaded = loaded.with_columns(identities=pl.Series([None, second, None, None], dtype=pl.String))
    chunking = repo.Chunking(10, campaign.key)
    staged = store.ingest.stage(loaded, chunking, suppressed=await store.suppression.identities())
    await store.ingest.write(campaign.id, "SMS", staged, NOW, chunking)
    (held,) = await store.chunks.claim_formed(
        campaign.id, NOW, None, 1, channel="SMS", campaign_key=campaign.key
    )
    later = NOW + timedelta(seconds=1)
    done = await store.suppression.add([phones[0], "p-2"], now=later, source="KEYWORD", by="m")
    assert done.stopped == 0  # the chunk is held: nothing leaves it now
    await store.chunks.unclaim(campaign.id, held.number, later)
    (again,) = await store.chunks.claim_formed(
        campaign.id, later, None, 1, channel="SMS", campaign_key=campaign.key
    )
    assert again.number == held.number
    assert again.members is not None and again.members.size == 2
    entries = orjson.loads(again.members.entries)
    assert [
        e["recipient"]["identified_by"]["channel_identities"][0]["identity"] for e in entries
    ] == phones[2:]
    counts = await store.recipients.counts(campaign.id)
    assert counts[Status.SUPPRESSED] == 2
