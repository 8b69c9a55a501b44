"""The app's MT queue as a run last had it, kept on the campaign (for `status`): on SQLite and
Postgres."""

from __future__ import annotations

from datetime import timedelta

from campaign.store import repository as repo
from tests.integration.test_store import NOW, new_campaign


async def test_the_last_reading_is_kept_and_the_longest_wait_never_shrinks(
    store: repo.Store,
) -> None:
    campaign = await new_campaign(store)
    assert campaign.app_read_at is None and campaign.queue_wait is None
    await store.campaigns.note_queue(
        campaign.id, size=4_000, limit=5_000, outbound=500, at=NOW, wait=8.0
    )
    later = NOW + timedelta(seconds=10)
    await store.campaigns.note_queue(
        campaign.id, size=100, limit=5_000, outbound=500, at=later, wait=2.0
    )
    found = await store.campaigns.find(campaign.name)
    assert found is not None
    assert (found.app_queue_size, found.app_queue_limit, found.app_outbound) == (100, 5_000, 500)
    assert found.app_read_at == later
    assert found.queue_wait == 8.0  # a message sent at the longest wait may still be queued
    await store.campaigns.note_queue(
        campaign.id, size=5_000, limit=5_000, outbound=500, at=later, wait=10.5
    )
    found = await store.campaigns.find(campaign.name)
    assert found is not None and found.queue_wait == 10.5
