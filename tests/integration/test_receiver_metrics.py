"""``GET /metrics``: the receiver's counters in Prometheus' text format, read back with
``prometheus_client``'s own parser, equal to what the test sent it (on SQLite and Postgres)."""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from campaign.store import repository as repo
from tests.integration.test_receiver import NOW, Start, delivery, signed
from tests.integration.test_receiver import start as start


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_the_metrics_count_what_the_receiver_was_sent(
    start: Start, store: repo.Store
) -> None:
    async with start() as client:
        for i in range(5):  # stored
            assert await client.post_signed(delivery(f"M{i}")) == 200
        replayed = delivery("R")
        headers = signed(replayed, nonce="01FJA8B4A7BM43YGWSG9GBV067")
        assert (await client.post(replayed, headers))[0] == 200
        assert (await client.post(replayed, headers))[0] == 401  # a replay
        assert await client.post_signed(delivery("F"), secret="not-the-secret") == 401
        assert await client.post_signed(delivery("S"), at=NOW - 3_600) == 401  # stale
        assert (await client.post(b"x" * 2_000_000))[0] == 413
        assert await client.post_signed(b'{"not": "a callback"}') == 400
        url = client.server.base_url + "/metrics"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain; version=")
            samples = _samples(await response.text())

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    assert value("campaign_receiver_callbacks_received_total") == 11
    assert value("campaign_receiver_callbacks_stored_total") == 6
    rejected = {
        reason: value("campaign_receiver_callbacks_rejected_total", reason=reason)
        for reason in ("signature", "stale", "replay", "too_large", "not_callback", "unavailable")
    }
    assert rejected == {
        "signature": 1,
        "stale": 1,
        "replay": 1,
        "too_large": 1,
        "not_callback": 1,
        "unavailable": 0,
    }
    assert value("campaign_receiver_store_up") == 1
    assert value("campaign_receiver_database_errors_total") == 0
    commits = value("campaign_receiver_commits_total")
    assert 1 <= commits <= 6
    assert value("campaign_receiver_commit_seconds_count") == commits
    assert value("campaign_receiver_commit_events_sum") == 6  # every stored callback, once
    assert value("campaign_receiver_commit_events_bucket", le="+Inf") == commits
