"""Batch mode against the sandbox over loopback, on SQLite and Postgres."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from campaign import cancelling, rendering, retry
from campaign.models import Status
from campaign.sending import LoadFeed, SendLoop, SendSettings
from campaign.store import repository as repo
from tests.integration.test_send_loop import MESSAGE, NOW, World
from tests.integration.test_send_loop import world as world
from tests.recipients import loaded

CARD = {
    "card_message": {
        "title": "Hi ${name}",
        "description": "Your code: ${code}",
        "choices": [{"text_message": {"text": "Yes ${name}"}, "postback_data": "y-${code}"}],
    }
}


def batch_dispatcher(
    world: World,
    campaign: repo.CampaignRow,
    *,
    size: int = 100,
    message: dict[str, Any] = MESSAGE,
    send: dict[str, Any] | None = None,
    stop: asyncio.Event | None = None,
    policy: retry.RetryPolicy | None = None,
    feed: LoadFeed | None = None,
) -> SendLoop:
    return SendLoop(
        mode="batch",
        store=world.store,
        client=world.client,
        campaign=campaign,
        channel="SMS",
        template=rendering.MessageTemplate.compile(message),
        send_fields=send or {},
        settings=SendSettings(
            rate=None,
            max_in_flight=8,
            retry=policy or retry.RetryPolicy(max_attempts=6, base_delay=0.02),
            batch_size=size,
        ),
        stop=stop or asyncio.Event(),
        feed=feed,
    )


async def rows(world: World, campaign: repo.CampaignRow) -> dict[int, tuple[Any, ...]]:
    return {
        r[0]: r async for page in world.store.export.pages(campaign.id) for r in page.iter_rows()
    }


async def test_chunks_of_batch_size_each_rendered_by_sinch_as_we_render(world: World) -> None:
    campaign = await world.campaign(2_500)
    assert await batch_dispatcher(world, campaign, size=100, message=CARD).run() is True
    stats = await world.control("GET", "stats")
    assert stats["batches"] == 25  # 2,500 recipients, 100 per request
    assert stats["requests"] == 25
    report = await rows(world, campaign)
    assert {r[4] for r in report.values()} == {"QUEUED"}
    assert len({r[6] for r in report.values()}) == 25  # batch ids
    template = rendering.MessageTemplate.compile(CARD)
    sent = await world.sent()
    assert len(sent) == 2_500
    by_identity = {m["identity"]: m for m in sent}
    for position, row in report.items():
        params = {"name": f"Nö{position}", "code": f"{position:06d}"}
        assert by_identity[row[1]]["message"] == template.render(params)
        assert by_identity[row[1]]["batch_id"] == row[6]


async def test_one_bad_recipient_fails_alone(world: World) -> None:
    campaign = await world.campaign(250, bad={17, 180})
    assert await batch_dispatcher(world, campaign, size=100).run() is True
    report = await rows(world, campaign)
    failed = {p for p, r in report.items() if r[4] == "FAILED"}
    assert failed == {17, 180}
    assert report[17][7] == "INVALID_ARGUMENT"
    assert "identity" in report[17][8]
    assert Counter(r[4] for r in report.values())["QUEUED"] == 248
    sent = await world.sent()
    assert len(sent) == 248
    assert len({m["identity"] for m in sent}) == 248  # nobody twice


async def test_a_lost_answer_is_settled_by_lookup_without_a_double_send(world: World) -> None:
    # Half of all answers are lost (lookups' too): every send is settled by a lookup first.
    await world.control("PATCH", "settings", {"drop_rate": 0.5})
    campaign = await world.campaign(1_000)
    assert await batch_dispatcher(world, campaign, size=100).run() is True
    stats = await world.control("GET", "stats")
    assert stats["batches"] == 10  # each chunk accepted exactly once
    assert stats["dropped"] > 0
    report = await rows(world, campaign)
    assert {r[4] for r in report.values()} == {"QUEUED"}
    assert all(r[6] for r in report.values())  # the batch id learned from the lookup
    assert len(await world.sent()) == 1_000


async def test_retryable_errors_retry_the_batch(world: World) -> None:
    await world.control("PATCH", "settings", {"error_rate_503": 0.5})
    campaign = await world.campaign(300)
    policy = retry.RetryPolicy(max_attempts=30, base_delay=0.01, max_delay=0.05)
    dispatcher = batch_dispatcher(world, campaign, size=100, policy=policy)
    assert await dispatcher.run() is True
    assert await world.store.recipients.counts(campaign.id) == {Status.QUEUED: 300}
    assert len(await world.sent()) == 300


async def test_cancel_of_a_scheduled_batch(world: World) -> None:
    campaign = await world.campaign(120)
    later = (datetime.now(UTC) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert await batch_dispatcher(world, campaign, send={"send_after": later}).run() is True
    assert await world.store.chunks.by_status(campaign.id) == {"SCHEDULED": 2}
    batch_ids = await world.store.chunks.queued_batch_ids(campaign.id)
    cancelled = await cancelling.cancel_scheduled(world.client, batch_ids)
    assert sorted(cancelled) == sorted(batch_ids)
    counts = await world.store.campaigns.cancel(campaign.id, cancelled, datetime.now(UTC))
    assert counts == {"pending": 0, "scheduled": 120}
    assert await world.store.recipients.counts(campaign.id) == {Status.CANCELLED: 120}
    assert await world.sent() == []  # the scheduled batches never went out


async def test_a_run_stopped_mid_batch_is_settled_by_lookup(world: World) -> None:
    campaign = await world.campaign(200)
    # Simulate a crash: chunks claimed (IN_FLIGHT); the first reached Sinch, the second not.
    first = await world.store.chunks.claim(campaign.id, campaign.key, 100, datetime.now(UTC))
    second = await world.store.chunks.claim(campaign.id, campaign.key, 100, datetime.now(UTC))
    assert first is not None
    assert second is not None
    dispatcher = batch_dispatcher(world, campaign)
    await world.client.send_batch(dispatcher.sender.body(first.tag, first.claims))
    queued, released = await dispatcher.settle(lease=10)
    assert (queued, released) == (100, 100)
    assert await world.store.recipients.counts(campaign.id) == {
        Status.QUEUED: 100,
        Status.PENDING: 100,
    }
    assert await batch_dispatcher(world, campaign).run() is True
    assert len(await world.sent()) == 200  # the first chunk was not sent again


@pytest.mark.parametrize("size", [1, 7])
async def test_any_batch_size(world: World, size: int) -> None:
    campaign = await world.campaign(15)
    assert await batch_dispatcher(world, campaign, size=size).run() is True
    assert (await world.control("GET", "stats"))["batches"] == -(-15 // size)


async def test_chunks_given_back_after_a_claim_that_found_nothing_are_still_sent(
    world: World,
) -> None:
    """A claim finds nothing while every chunk is in flight; then their sends are refused (a
    full queue) and give them back, and finish. Nothing is in flight and the last claim was
    empty, but the run is not done: the chunks are left to send."""
    campaign = await world.store.campaigns.create(
        name="b", key="BK", mode="batch", channel="SMS", definition="{}", source="x", now=NOW
    )
    numbers = [f"+1201555{i:04d}" for i in range(1, 201)]
    await world.store.ingest.write(
        campaign.id, "SMS", loaded(numbers), NOW, repo.Chunking(100, campaign.key)
    )
    dispatcher = batch_dispatcher(world, campaign)
    taken = await world.store.chunks.claim_formed(
        campaign.id, NOW, None, 10, channel="SMS", campaign_key=campaign.key
    )
    assert len(taken) == 2 and await dispatcher.sender.claim(10) == []
    await world.store.chunks.unclaim_many(campaign.id, [c.number for c in taken], NOW)
    assert await dispatcher._nothing_to_claim() is False
    assert await dispatcher.run() is True
    assert sorted(m["identity"] for m in await world.sent()) == numbers
    assert await world.store.recipients.counts(campaign.id) == {Status.QUEUED: 200}


async def test_chunks_are_sent_as_their_slice_is_stored_and_the_run_ends_with_the_load(
    world: World,
) -> None:
    campaign = await world.store.campaigns.create(
        name="p", key="PK", mode="batch", channel="SMS", definition="{}", source="x", now=NOW
    )
    numbers = [f"+1201555{i:04d}" for i in range(1, 601)]
    parameters = [f'{{"name":"N{i}","code":"{i:06d}"}}' for i in range(1, 601)]
    whole = loaded(numbers, parameters)
    chunking = repo.Chunking(100, campaign.key)
    feed = LoadFeed()
    dispatcher = batch_dispatcher(world, campaign, size=100, feed=feed)
    sending = asyncio.create_task(dispatcher.run())
    # The first slice's chunks come with their entries, as `campaign run` stores them: the
    # dispatcher sends them as they are; the second slice's are read from the database.
    with_entries = repo.Chunking(100, campaign.key, channel="SMS")
    staged = world.store.ingest.stage(whole.slice(0, 300), with_entries)
    first = (
        await world.store.ingest.write(campaign.id, "SMS", staged, NOW, with_entries)
    ).first_chunk
    assert first is not None
    feed.stored({first + n: entries for n, entries in staged.entries.items()})
    assert len(feed.formed) == 3
    async with asyncio.timeout(10):  # the first slice goes out before the second is stored
        while len(await world.sent()) < 300:
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.6)  # longer than the dispatcher's wait for a slice
    assert not sending.done()  # nothing to claim, but the load is not over
    assert feed.formed == {}  # claimed: no longer kept
    await world.store.ingest.write(campaign.id, "SMS", whole.slice(300), NOW, chunking)
    feed.stored()
    await asyncio.sleep(0.1)
    feed.end()
    assert await sending is True
    sent = await world.sent()
    assert sorted(m["identity"] for m in sent) == numbers  # each once
    assert await world.store.recipients.counts(campaign.id) == {Status.QUEUED: 600}
    assert (await world.control("GET", "stats"))["batches"] == 6


def test_a_load_keeps_the_entries_it_formed_within_its_bound() -> None:
    """What the load formed is kept for the dispatcher up to a bound, counting the chunks
    claimed from it until they are sent (beyond, chunks are read back); a claim lets go of
    every earlier chunk's entries (another worker took it)."""

    def taken(number: int, text: str) -> repo.Chunk:
        return repo.Chunk(number, f"K:{number}", [], repo.Members(None, text, 1, 1))

    feed = LoadFeed(keep_bytes=25)
    feed.stored({1: (1, "[aaaaaaaaaa]"), 2: (1, "[bbbbbbbbbb]"), 3: (1, "[cccccccccc]")})
    assert sorted(feed.formed) == [1, 2]  # the third would pass 25 characters
    second = taken(2, "[bbbbbbbbbb]")
    feed.claimed([second])  # the first was taken by another worker
    assert feed.formed == {} and feed.room() == 13  # the second is held until sent
    feed.stored({4: (1, "[dddddddddd]"), 5: (1, "[eeeeeeeeee]")})
    assert sorted(feed.formed) == [4]
    feed.done(second)
    read_back = repo.Chunk(4, "K:4", [], repo.Members([7], "[dddddddddd]", 1, 1))
    feed.claimed([read_back])  # its entries were read from the store after all
    assert feed.formed == {} and feed.room() == 25
    feed.claimed([])
    assert feed.room() == 25


async def test_the_last_slice_is_sent_when_the_load_ends_while_a_claim_finds_nothing(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    campaign = await world.store.campaigns.create(
        name="p", key="PK", mode="batch", channel="SMS", definition="{}", source="x", now=NOW
    )
    numbers = [f"+1201555{i:04d}" for i in range(1, 151)]
    feed = LoadFeed()
    claim = world.store.chunks.claim_formed

    async def claim_then_load(*args: Any, **kwargs: Any) -> list[repo.Chunk]:
        found = await claim(*args, **kwargs)
        if not feed.over:  # the load stores its last slice and ends while this claim runs
            await world.store.ingest.write(
                campaign.id, "SMS", loaded(numbers), NOW, repo.Chunking(100, campaign.key)
            )
            feed.stored()
            feed.end()
        return found

    monkeypatch.setattr(world.store.chunks, "claim_formed", claim_then_load)
    dispatcher = batch_dispatcher(world, campaign, size=100, feed=feed)
    async with asyncio.timeout(10):
        assert await dispatcher.run() is True
    assert len(await world.sent()) == 150
    assert await world.store.recipients.counts(campaign.id) == {Status.QUEUED: 150}
