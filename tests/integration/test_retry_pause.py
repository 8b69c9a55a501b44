"""`campaign retry`, `pause` and `resume` at the store: which rows go back, what they become,
the campaign's state, the pause flag. On SQLite and Postgres."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from campaign.models import Status
from campaign.store import repository as repo
from campaign.store.tables import recipients
from tests.integration.test_store import NOW, frame, new_campaign

LATER = NOW + timedelta(minutes=5)


async def _sent_with_outcomes(store: repo.Store) -> repo.CampaignRow:
    """A campaign of six rows: QUEUED, FAILED (two codes), IN_DOUBT, PENDING (a retry due)."""
    campaign = await new_campaign(store)
    rows = frame([(i, "x", f"+1201555{i:04d}", None) for i in range(1, 7)])
    await store.ingest.write(campaign.id, "SMS", rows, NOW)
    c = await store.recipients.claim(campaign.id, 6, NOW)
    await store.recipients.record(
        [
            repo.Sent(c[0].id, "MSG1"),
            repo.Failed(c[1].id, "INVALID_ARGUMENT", "bad"),
            repo.Failed(c[2].id, "RECIPIENT_NOT_REACHABLE", "gone"),
            repo.Failed(c[3].id, "INVALID_ARGUMENT", "bad"),
            repo.InDoubt(c[4].id, "timeout"),
            repo.Retry(c[5].id, NOW, "HTTP_503", "unavailable"),
        ],
        NOW,
    )
    await store.campaigns.update(campaign.id, now=NOW, state="DONE")
    return campaign


async def _row(store: repo.Store, position: int) -> dict[str, object]:
    async with store.engine.connect() as conn:
        row = (
            await conn.execute(select(recipients).where(recipients.c.position == position))
        ).one()
    return dict(row._mapping)


async def test_retry_puts_failed_rows_back_and_the_done_campaign_to_ready(
    store: repo.Store,
) -> None:
    campaign = await _sent_with_outcomes(store)
    retried = await store.campaigns.retry(campaign.id, [Status.FAILED], [], LATER)
    assert retried.counts == {Status.FAILED: 3}
    assert (retried.state_before, retried.state_after, retried.refused) == ("DONE", "READY", False)
    found = await store.campaigns.find(campaign.name)
    assert found is not None and found.state == "READY"
    assert await store.recipients.counts(campaign.id) == {
        Status.QUEUED: 1,
        Status.PENDING: 4,
        Status.IN_DOUBT: 1,
    }
    row = await _row(store, 2)
    assert row["status"] == "PENDING" and row["attempts"] == 0
    assert row["error_code"] is None and row["error_description"] is None
    assert row["next_attempt_at"] is None and row["chunk"] is None and row["worker_id"] is None
    # Sent again by the next claim: each once, with a first attempt.
    claimed = await store.recipients.claim(campaign.id, 10, LATER)
    assert sorted(c.position for c in claimed) == [2, 3, 4, 6]
    assert {c.attempts for c in claimed if c.position != 6} == {1}
    # What Sinch accepted, and IN_DOUBT (not named), stay as they were.
    assert (await _row(store, 1))["status"] == "QUEUED"
    assert (await _row(store, 5))["status"] == "IN_DOUBT"


async def test_a_campaign_with_recipients_put_back_is_not_finished(store: repo.Store) -> None:
    """`campaign retry` beside a run whose last claim found nothing: the run must not mark the
    campaign DONE over the rows put back, or no later run would send them."""
    campaign = await _sent_with_outcomes(store)
    await store.campaigns.update(campaign.id, now=NOW, state="SENDING")
    await store.campaigns.retry(campaign.id, [Status.FAILED], [], LATER)
    assert not await store.campaigns.finish(campaign.id, LATER)
    found = await store.campaigns.find(campaign.name)
    assert found is not None and found.state == "SENDING"
    claimed = await store.recipients.claim(campaign.id, 10, LATER)
    await store.recipients.record([repo.Sent(c.id, f"M{c.id}") for c in claimed], LATER)
    assert await store.campaigns.finish(campaign.id, LATER)
    found = await store.campaigns.find(campaign.name)
    assert found is not None and found.state == "DONE"


async def test_retry_by_error_code_and_in_doubt_only_when_named(store: repo.Store) -> None:
    campaign = await _sent_with_outcomes(store)
    retried = await store.campaigns.retry(
        campaign.id, [Status.FAILED, Status.IN_DOUBT], ["INVALID_ARGUMENT", "timeout"], LATER
    )
    # The InDoubt outcome carries no code of that name: only the two INVALID_ARGUMENT rows.
    assert retried.counts == {Status.FAILED: 2, Status.IN_DOUBT: 0}
    assert (await _row(store, 3))["status"] == "FAILED"
    retried = await store.campaigns.retry(campaign.id, [Status.IN_DOUBT], [], LATER)
    assert retried.counts == {Status.IN_DOUBT: 1} and retried.state_after == "READY"
    assert (await _row(store, 5))["status"] == "PENDING"


async def test_retry_with_nothing_to_put_back_leaves_a_done_campaign_done(
    store: repo.Store,
) -> None:
    campaign = await _sent_with_outcomes(store)
    retried = await store.campaigns.retry(campaign.id, [Status.FAILED], ["NO_SUCH_CODE"], LATER)
    assert retried.total == 0 and retried.state_after == "DONE"
    found = await store.campaigns.find(campaign.name)
    assert found is not None and found.state == "DONE"


async def test_retry_refuses_a_cancelled_campaign_and_statuses_sinch_accepted(
    store: repo.Store,
) -> None:
    campaign = await _sent_with_outcomes(store)
    with pytest.raises(ValueError, match="QUEUED"):
        await store.campaigns.retry(campaign.id, [Status.QUEUED], [], LATER)
    await store.campaigns.cancel(campaign.id, [], LATER)
    retried = await store.campaigns.retry(campaign.id, [Status.FAILED], [], LATER)
    assert retried.refused and retried.total == 0
    assert (await _row(store, 2))["status"] == "FAILED"


async def test_a_retried_row_of_a_failed_chunk_is_sent_in_a_chunk_of_its_own(
    store: repo.Store,
) -> None:
    """Batch mode: the rows of a chunk that failed leave it, and the next claim of ordinary
    rows takes them into a new chunk (no formed chunk is left to hold them)."""
    campaign = await new_campaign(store)
    rows = frame([(i, "x", f"+1201555{i:04d}", None) for i in range(1, 4)])
    await store.ingest.write(campaign.id, "SMS", rows, NOW, repo.Chunking(3, campaign.key))
    (chunk,) = await store.chunks.claim_formed(
        campaign.id, NOW, channel="SMS", campaign_key=campaign.key
    )
    # Refused whole: the chunk's rows become ordinary rows, IN_FLIGHT, and then FAILED.
    await store.chunks.update(campaign.id, chunk.number, "FAILED", NOW)
    ids = [r["id"] for r in [await _row(store, p) for p in (1, 2, 3)]]
    await store.recipients.record([repo.Failed(i, "BAD_REQUEST", "refused") for i in ids], NOW)
    assert await store.recipients.counts(campaign.id) == {Status.FAILED: 3}
    retried = await store.campaigns.retry(campaign.id, [Status.FAILED], [], LATER)
    assert retried.counts == {Status.FAILED: 3}
    assert {(await _row(store, p))["chunk"] for p in (1, 2, 3)} == {None}
    assert (
        await store.chunks.claim_formed(campaign.id, LATER, channel="SMS", campaign_key="K") == []
    )
    again = await store.chunks.claim(campaign.id, campaign.key, 10, LATER)
    assert again is not None and again.number != chunk.number
    assert sorted(c.position for c in again.claims) == [1, 2, 3]
    assert {c.attempts for c in again.claims} == {1}


async def test_pause_and_resume(store: repo.Store) -> None:
    campaign = await new_campaign(store)
    assert not await store.campaigns.paused(campaign.id)
    assert await store.campaigns.pause(campaign.id, NOW) is None
    assert await store.campaigns.paused(campaign.id)
    assert await store.campaigns.pause(campaign.id, LATER) == NOW  # paused already: kept
    found = await store.campaigns.find(campaign.name)
    assert found is not None and found.paused_at == NOW
    assert await store.campaigns.resume(campaign.id, LATER) == NOW
    assert not await store.campaigns.paused(campaign.id)
    assert await store.campaigns.resume(campaign.id, LATER) is None
    found = await store.campaigns.find(campaign.name)
    assert found is not None and found.paused_at is None
