"""The suppression list on real SQLite and real Postgres: idempotent changes, each recorded,
the load's set-based marking, and a mid-campaign opt-out that stops PENDING rows only."""

from __future__ import annotations

from sqlalchemy import select

from campaign.models import Status
from campaign.store import repository as repo
from campaign.store.tables import suppression_changes
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


async def test_the_load_marks_suppressed_identities_in_one_update(store: repo.Store) -> None:
    await store.suppression.add(["+12015550002"], now=NOW, source="KEYWORD", by="m1")
    campaign = await new_campaign(store)
    await store.ingest.write(
        campaign.id,
        "SMS",
        frame([(i, "x", f"+1201555{i:04d}", None) for i in range(1, 4)] + [(4, "b", None, "bad")]),
        NOW,
    )
    assert await store.suppression.mark_loaded(campaign.id, NOW) == 1
    assert await store.suppression.mark_loaded(campaign.id, NOW) == 0  # idempotent
    counts = await store.recipients.counts(campaign.id)
    assert counts == {Status.PENDING: 2, Status.SUPPRESSED: 1, Status.REJECTED: 1}
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
