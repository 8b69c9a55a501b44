"""Raw events and their application to recipients, on SQLite and Postgres."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from campaign import tracking
from campaign.models import Status
from campaign.store import repository as repo
from campaign.store.events import RECHECK_S, NewEvent
from tests.recipients import loaded, us_numbers

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


async def campaign_with(store: repo.Store, n: int) -> repo.CampaignRow:
    campaign = await store.campaigns.create(
        name="c", key="CK", mode="individual", channel="SMS", definition="{}", source="x", now=NOW
    )
    await store.ingest.write(campaign.id, "SMS", loaded(us_numbers(n)), NOW)
    return campaign


def callback(
    status: str | None,
    *,
    message_id: str = "M1",
    key: str | None = "CK-1",
    at: int = 1,
    channel: str = "SMS",
    code: str | None = None,
) -> bytes:
    payload: dict[str, Any] = {
        "message_id": message_id,
        "channel_identity": {"channel": channel, "identity": "1"},
    }
    body: dict[str, Any] = {
        "event_time": (NOW + timedelta(seconds=at)).isoformat(),
        "correlation_id": key or "",
    }
    if status is None:
        body["message_submit_notification"] = payload
    else:
        payload["status"] = status
        if code:
            payload["reason"] = {"code": code, "description": f"{code} happened"}
        body["message_delivery_report"] = payload
    return json.dumps(body).encode()


def new(body: bytes, nonce: str | None) -> NewEvent:
    return NewEvent(NOW, nonce, body.decode(), tracking.parse_callback(body))


async def rows(store: repo.Store, campaign: repo.CampaignRow) -> dict[int, tuple[Any, ...]]:
    return {r[0]: r async for page in store.export.pages(campaign.id) for r in page.iter_rows()}


async def send(store: repo.Store, campaign: repo.CampaignRow, n: int) -> list[repo.Claim]:
    claims = await store.recipients.claim(campaign.id, n, NOW)
    await store.recipients.record([repo.Sent(c.id, f"M{c.position}") for c in claims], NOW)
    return claims


async def test_delivery_updates_the_recipient_and_keeps_the_raw_event(store: repo.Store) -> None:
    campaign = await campaign_with(store, 2)
    await send(store, campaign, 2)
    body = callback("DELIVERED", key=None)
    assert (
        await store.events.insert(
            [new(body, "n1"), new(callback("READ", message_id="M2", key=None), "n2")]
        )
        == 2
    )
    result = await store.events.apply(NOW)
    assert (result.applied, result.changed, result.waiting) == (2, 2, 0)
    assert await store.recipients.counts(campaign.id) == {Status.DELIVERED: 1, Status.READ: 1}
    assert await store.events.count(campaign.id) == 2


async def test_a_replayed_nonce_adds_nothing(store: repo.Store) -> None:
    body = callback("DELIVERED")
    assert await store.events.insert([new(body, "same")]) == 1
    assert await store.events.insert([new(body, "same")]) == 0
    assert await store.events.count() == 1


async def test_callback_before_the_send_is_recorded_waits_then_applies(store: repo.Store) -> None:
    campaign = await campaign_with(store, 2)
    # IN_FLIGHT: Sinch answered, not recorded yet
    claims = await store.recipients.claim(campaign.id, 2, NOW)
    await store.events.insert([new(callback("DELIVERED"), "n1")])
    await store.events.insert([new(callback("READ", message_id="M2", key="CK-2"), "n2")])
    assert (await store.events.apply(NOW)).waiting == 2
    assert await store.recipients.counts(campaign.id) == {Status.IN_FLIGHT: 2}
    await store.recipients.record([repo.Sent(c.id, f"M{c.position}") for c in claims], NOW)
    # What the dispatcher does right after recording: apply what waited for these sends.
    assert (await store.events.apply_for(message_ids=["M1"], keys=["CK-1"], now=NOW)).applied == 1
    assert await store.recipients.counts(campaign.id) == {Status.DELIVERED: 1, Status.QUEUED: 1}
    # Anything else that waited is looked at again after the recheck period.
    assert (await store.events.apply(NOW)).applied == 0
    assert (await store.events.apply(NOW + timedelta(seconds=RECHECK_S + 1))).applied == 1
    assert await store.recipients.counts(campaign.id) == {Status.DELIVERED: 1, Status.READ: 1}


async def test_unknown_messages_wait_and_other_triggers_are_just_kept(store: repo.Store) -> None:
    await store.events.insert([new(callback("DELIVERED", message_id="nobody", key=None), "n1")])
    inbound = json.dumps(
        {"message": {"id": "x", "contact_message": {"text_message": {"text": "hi"}}}}
    ).encode()
    await store.events.insert(
        [NewEvent(NOW, "n2", inbound.decode(), tracking.parse_callback(inbound))]
    )
    result = await store.events.apply(NOW)
    assert (result.applied, result.waiting) == (0, 1)
    assert await store.events.count() == 2


async def test_in_doubt_is_settled_by_its_key(store: repo.Store) -> None:
    campaign = await campaign_with(store, 1)
    await store.recipients.claim(campaign.id, 1, NOW)
    await store.workers.reap(campaign.id, NOW, lease=10)
    await store.events.insert(
        [new(callback(None, message_id="M-late", key="CK-1", channel="RCS"), "n1")]
    )
    await store.events.apply(NOW)
    row = (await rows(store, campaign))[1]
    assert row[4] == "QUEUED"
    assert row[5] == "M-late"  # the message id we never got an answer with
    assert row[7] is None  # no longer in doubt


async def test_out_of_order_and_duplicates_end_at_the_highest(store: repo.Store) -> None:
    campaign = await campaign_with(store, 1)
    await send(store, campaign, 1)
    sequence = [
        ("READ", 3),
        ("QUEUED_ON_CHANNEL", 1),
        ("DELIVERED", 2),
        ("READ", 3),
        ("DELIVERED", 2),
    ]
    await store.events.insert(
        [new(callback(s, at=at), f"n{i}") for i, (s, at) in enumerate(sequence)]
    )
    await store.events.apply(NOW)
    assert await store.recipients.counts(campaign.id) == {Status.READ: 1}
    assert await store.events.count() == 5  # every raw event is kept


async def test_failure_reason_is_kept(store: repo.Store) -> None:
    campaign = await campaign_with(store, 1)
    await send(store, campaign, 1)
    await store.events.insert([new(callback("FAILED", code="RECIPIENT_NOT_REACHABLE"), "n1")])
    await store.events.apply(NOW)
    row = (await rows(store, campaign))[1]
    assert (row[4], row[7], row[8]) == (
        "FAILED",
        "RECIPIENT_NOT_REACHABLE",
        "RECIPIENT_NOT_REACHABLE happened",
    )


async def test_in_doubt_past_the_grace_period_can_be_sent_again(store: repo.Store) -> None:
    campaign = await campaign_with(store, 2)
    await store.recipients.claim(campaign.id, 2, NOW)
    await store.workers.reap(campaign.id, NOW, lease=10)  # both IN_DOUBT, updated at NOW
    assert await store.recipients.resend_in_doubt(campaign.id, NOW - timedelta(seconds=1), NOW) == 0
    # one is settled by a callback before the grace period ends
    await store.events.insert([new(callback("DELIVERED", message_id="X", key="CK-1"), "n1")])
    await store.events.apply(NOW)
    later = NOW + timedelta(minutes=11)
    assert (
        await store.recipients.resend_in_doubt(campaign.id, later - timedelta(minutes=10), later)
        == 1
    )
    counts = await store.recipients.counts(campaign.id)
    assert counts == {Status.DELIVERED: 1, Status.PENDING: 1}
    again = await store.recipients.claim(campaign.id, 5, later)
    assert [(c.position, c.attempts) for c in again] == [(2, 2)]


async def test_delivery_summary_and_stale_counts(store: repo.Store) -> None:
    campaign = await campaign_with(store, 4)
    await send(store, campaign, 4)
    await store.events.insert(
        [
            new(callback("READ", message_id="M1", key=None), "a"),
            new(callback("DELIVERED", message_id="M2", key=None), "b"),
            new(callback("FAILED", message_id="M3", key=None, code="X"), "c"),
        ]
    )
    await store.events.apply(NOW)
    summary = await store.recipients.delivery_summary(campaign.id)
    assert summary == {"accepted": 4, "delivered": 2, "read": 1, "failed": 1}
    # M4 heard nothing
    assert await store.recipients.stale_queued(campaign.id, NOW + timedelta(hours=1)) == 1
    assert await store.recipients.stale_queued(campaign.id, NOW - timedelta(hours=1)) == 0


async def test_batch_callback_before_the_chunk_is_recorded_applies_with_it(
    store: repo.Store,
) -> None:
    campaign = await campaign_with(store, 3)
    chunk = await store.chunks.claim(campaign.id, campaign.key, 3, NOW)
    assert chunk is not None
    body = orjson.loads(callback("DELIVERED", key=None))
    body["message_delivery_report"]["metadata"] = orjson.dumps(
        {"_batch_id": "B1", "recipient": "CK-2"}
    ).decode()
    await store.events.insert([new(orjson.dumps(body), "early")])
    assert (await store.events.apply(NOW)).waiting == 1  # its recipient is still IN_FLIGHT
    await store.recipients.record(
        [repo.ChunkSent(campaign.id, chunk.number, "B1", "ACCEPTED")], NOW
    )
    assert (await store.events.apply_for(batch_ids=["B1"], now=NOW)).applied == 1
    assert await store.recipients.counts(campaign.id) == {Status.QUEUED: 2, Status.DELIVERED: 1}
    assert {r[6] for r in (await rows(store, campaign)).values()} == {"B1"}
    assert await store.chunks.by_status(campaign.id) == {"ACCEPTED": 1}
    # A late second record of the same chunk changes nothing (only IN_FLIGHT rows move).
    await store.recipients.record(
        [repo.ChunkSent(campaign.id, chunk.number, "B2", "ACCEPTED")], NOW
    )
    assert {r[6] for r in (await rows(store, campaign)).values()} == {"B1"}
    assert await store.chunks.by_status(campaign.id, "ACCEPTED") == [(chunk.number, "B1")]
