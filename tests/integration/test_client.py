"""The Sinch client against the sandbox, over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from campaign import config, errors, retry
from campaign.config import SinchConfig
from campaign.sandbox import SandboxServer, SandboxSettings
from campaign.secrets import Secret
from campaign.sinch import client as sinch_client
from campaign.sinch.responses import field_violations

SMS_BODY: dict[str, Any] = {
    "recipient": {
        "identified_by": {"channel_identities": [{"channel": "SMS", "identity": "+15551234567"}]}
    },
    "message": {"text_message": {"text": "Hello"}},
}


def sandbox_config(url: str, **changes: Any) -> SinchConfig:
    base = SinchConfig(
        sandbox=True,
        project_id=config.SANDBOX_PROJECT_ID,
        app_id=config.SANDBOX_APP_ID,
        key_id=config.SANDBOX_KEY_ID,
        key_secret=Secret(config.SANDBOX_KEY_SECRET),
    )
    return dataclasses.replace(base.pointed_at(url), **changes)


class Harness:
    def __init__(self, server: SandboxServer, session: aiohttp.ClientSession) -> None:
        self.server = server
        self.session = session

    def client(self, **changes: Any) -> sinch_client.SinchClient:
        return sinch_client.SinchClient(sandbox_config(self.server.url, **changes), self.session)

    async def control(self, method: str, path: str, body: Any = None) -> Any:
        async with self.session.request(
            method, f"{self.server.url}/_sandbox/{path}", json=body
        ) as r:
            assert r.status == 200, await r.text()
            return await r.json()

    async def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.control("GET", "stats")
        return result

    async def messages(self) -> list[dict[str, Any]]:
        result = await self.control("GET", "messages?limit=100000")
        return list(result["messages"])


@pytest.fixture
async def sandbox() -> AsyncIterator[Harness]:
    settings = SandboxSettings(seed=7)
    async with SandboxServer(settings) as server:
        session = sinch_client.open_session(sandbox_config(server.url))
        try:
            yield Harness(server, session)
        finally:
            await session.close()


# --- auth ---------------------------------------------------------------------------------------


async def test_send_fetches_one_token_and_reuses_it(sandbox: Harness) -> None:
    client = sandbox.client()
    results = await asyncio.gather(*(client.send_message(SMS_BODY) for _ in range(50)))
    assert len({r.message_id for r in results}) == 50
    assert all(len(r.message_id) == 26 and r.accepted_time for r in results)
    assert client.tokens.fetches == 1
    assert (await sandbox.stats())["tokens_issued"] == 1
    sent = await sandbox.messages()
    assert {m["message_id"] for m in sent} == {r.message_id for r in results}
    assert sent[0]["app_id"] == "sandbox-app"  # filled in from the config


async def test_token_is_refreshed_before_it_expires(sandbox: Harness) -> None:
    await sandbox.control("PATCH", "settings", {"token_lifetime": 100})
    now = [1000.0]
    client = sandbox.client(token_refresh_margin=30)
    client.tokens._clock = lambda: now[0]  # a controllable clock for the provider
    await client.send_message(SMS_BODY)
    now[0] += 69  # 30 s margin: still fresh
    await client.send_message(SMS_BODY)
    assert client.tokens.fetches == 1
    now[0] += 2  # inside the margin: refreshed proactively, before Sinch says expired
    await client.send_message(SMS_BODY)
    assert client.tokens.fetches == 2
    assert (await sandbox.stats())["tokens_issued"] == 2


async def test_expired_token_is_refreshed_once_and_the_call_replayed(sandbox: Harness) -> None:
    client = sandbox.client()
    await client.send_message(SMS_BODY)
    await sandbox.control("POST", "expire-tokens")
    await asyncio.gather(*(client.send_message(SMS_BODY) for _ in range(10)))
    assert client.tokens.fetches == 2  # ten callers saw 401 expired, one refresh
    assert len(await sandbox.messages()) == 11


async def test_basic_auth_option_needs_no_token(sandbox: Harness) -> None:
    client = sandbox.client(auth="basic")
    await client.send_message(SMS_BODY)
    assert client.tokens.fetches == 0
    assert (await sandbox.stats())["tokens_issued"] == 0


async def test_bad_credentials_are_an_auth_error_without_the_secret(sandbox: Harness) -> None:
    client = sandbox.client(key_secret=Secret("wrong-secret-xyz"))
    with pytest.raises(errors.SinchAuthError) as caught:
        await client.send_message(SMS_BODY)
    assert caught.value.status == 401
    assert "SINCH_KEY_SECRET" in str(caught.value)
    assert "wrong-secret-xyz" not in str(caught.value)
    assert await sandbox.messages() == []


# --- error classes ------------------------------------------------------------------------------


async def test_invalid_request_is_permanent_with_field_violations(sandbox: Harness) -> None:
    body = {**SMS_BODY, "correlation_id": "x" * 129}
    with pytest.raises(errors.SinchPermanentError) as caught:
        await sandbox.client().send_message(body)
    assert caught.value.status == 400
    assert caught.value.code == "INVALID_ARGUMENT"
    assert [f for f, _ in field_violations(caught.value)] == ["correlation_id"]


async def test_unknown_project_is_permanent_not_found(sandbox: Harness) -> None:
    with pytest.raises(errors.SinchPermanentError) as caught:
        await sandbox.client(project_id="nope").send_message(SMS_BODY)
    assert caught.value.status == 404


async def test_the_app_reads_its_processing_mode_drain_rate_and_queue(sandbox: Harness) -> None:
    await sandbox.control("PATCH", "settings", {"outbound_rate": 50, "queue_limit": 1_000})
    client = sandbox.client()
    for _ in range(3):
        await client.send_message(SMS_BODY)
    app = await client.app()
    assert app.app_id == config.SANDBOX_APP_ID
    assert (app.processing_mode, app.outbound_rate, app.queue_limit) == ("CONVERSATION", 50, 1_000)
    assert app.queue_size is not None and 1 <= app.queue_size <= 3  # draining at 50/s


async def test_an_unknown_app_is_not_found(sandbox: Harness) -> None:
    with pytest.raises(errors.SinchPermanentError) as caught:
        await sandbox.client(app_id="01UNKNOWN").app()
    assert caught.value.status == 404


@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors_are_retryable(sandbox: Harness, status: int) -> None:
    await sandbox.control("PATCH", "settings", {f"error_rate_{status}": 1.0})
    with pytest.raises(errors.SinchRetryableError) as caught:
        await sandbox.client().send_message(SMS_BODY)
    assert caught.value.status == status
    assert await sandbox.messages() == []


async def test_rate_limit_is_retryable_with_retry_after(sandbox: Harness) -> None:
    await sandbox.control("PATCH", "settings", {"rate_limit": 5})
    client = sandbox.client()
    outcomes = await asyncio.gather(
        *(client.send_message(SMS_BODY) for _ in range(8)), return_exceptions=True
    )
    limited = [o for o in outcomes if isinstance(o, errors.SinchRateLimitedError)]
    assert len(limited) == 3
    assert all(
        e.status == 429 and e.retry_after is not None and e.retry_after >= 1 for e in limited
    )


async def test_retry_after_is_honoured(sandbox: Harness) -> None:
    await sandbox.control("PATCH", "settings", {"rate_limit": 1})
    client = sandbox.client()
    await client.send_message(SMS_BODY)  # fills the one-second window
    started = time.monotonic()
    policy = retry.RetryPolicy(base_delay=0.01, max_attempts=5)
    await retry.call(lambda: client.send_message(SMS_BODY), policy)
    waited = time.monotonic() - started
    stats = await sandbox.stats()
    assert stats["rate_limited"] == 1  # one 429, then the wait it asked for was enough
    assert waited >= 1.0
    assert stats["max_window"] <= 2


async def test_dropped_connection_after_acceptance_is_ambiguous(sandbox: Harness) -> None:
    await sandbox.control("PATCH", "settings", {"drop_rate": 1.0})
    with pytest.raises(errors.SinchAmbiguousError):
        await sandbox.client().send_message(SMS_BODY)
    assert len(await sandbox.messages()) == 1  # Sinch did take it


async def test_timeout_after_sending_is_ambiguous(sandbox: Harness) -> None:
    await sandbox.control("PATCH", "settings", {"latency_ms": 1500})
    config = sandbox_config(sandbox.server.url, timeout=0.3, auth="basic")
    async with sinch_client.open_session(config) as session:
        with pytest.raises(errors.SinchAmbiguousError):
            await sinch_client.SinchClient(config, session).send_message(SMS_BODY)


async def test_connection_refused_is_retryable() -> None:
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = sandbox_config(f"http://127.0.0.1:{port}", auth="basic")
    async with sinch_client.open_session(config) as session:
        client = sinch_client.SinchClient(config, session)
        with pytest.raises(errors.SinchRetryableError, match="cannot connect"):
            await client.send_message(SMS_BODY)


# --- Batch API ----------------------------------------------------------------------------------


def in_an_hour() -> str:
    return (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


def batch_body(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "message": {"text_message": {"text": "Hi ${name}, code ${code}"}},
        "recipient_and_params": [
            {
                "recipient": {
                    "identified_by": {
                        "channel_identities": [{"channel": "SMS", "identity": f"+1555000{i:04d}"}]
                    }
                },
                "parameters": {"name": f"N{i}", "code": str(i)},
                "message_metadata": {"recipient": str(i)},
            }
            for i in range(n)
        ],
        "batch_metadata": {"campaign": "c1", "chunk": "7"},
        **extra,
    }


async def test_batch_send_status_and_lookup(sandbox: Harness) -> None:
    client = sandbox.client()
    accepted = await client.send_batch(batch_body(3))
    assert len(accepted.batch_id) == 26
    assert accepted.send_after is None
    info = await client.batch_status(accepted.batch_id)
    assert info.status == "PROCESSED"
    assert info.metadata == {"campaign": "c1", "chunk": "7"}
    found = await client.find_batches("chunk", "7")
    assert [b.batch_id for b in found] == [accepted.batch_id]
    assert await client.find_batches("chunk", "8") == []
    texts = sorted(m["message"]["text_message"]["text"] for m in await sandbox.messages())
    assert texts == ["Hi N0, code 0", "Hi N1, code 1", "Hi N2, code 2"]


async def test_batch_cancel_of_a_scheduled_batch(sandbox: Harness) -> None:
    client = sandbox.client()
    accepted = await client.send_batch(batch_body(2, send_after=in_an_hour()))
    assert accepted.send_after is not None
    assert (await client.batch_status(accepted.batch_id)).status == "SCHEDULED"
    await client.cancel_batches(batch_ids=[accepted.batch_id])
    assert (await client.batch_status(accepted.batch_id)).status == "CANCELLED"
    assert await sandbox.messages() == []


async def test_batch_cancel_by_metadata(sandbox: Harness) -> None:
    client = sandbox.client()
    first = await client.send_batch(batch_body(1, send_after=in_an_hour()))
    await client.cancel_batches(metadata=("campaign", "c1"))
    assert (await client.batch_status(first.batch_id)).status == "CANCELLED"


async def test_batch_with_one_bad_recipient_names_it(sandbox: Harness) -> None:
    body = batch_body(5)
    body["recipient_and_params"][3]["recipient"]["identified_by"]["channel_identities"][0][
        "identity"
    ] = "not-a-number"
    with pytest.raises(errors.SinchPermanentError) as caught:
        await sandbox.client().send_batch(body)
    fields = [f for f, _ in field_violations(caught.value)]
    assert fields
    assert all(f.startswith("recipient_and_params[3]") for f in fields)


async def test_unknown_batch_is_not_found(sandbox: Harness) -> None:
    with pytest.raises(errors.SinchPermanentError) as caught:
        await sandbox.client().batch_status("01J00000000000000000000000")
    assert caught.value.status == 404


# --- the moment a request is written (campaign.pacing counts it) ------------------------------


async def test_written_is_told_once_when_the_request_leaves(sandbox: Harness) -> None:
    """With a body, when the body goes (aiohttp holds the headers back to send them with it,
    from a task of its own: "headers sent" comes earlier); without one, with the headers. And
    the moment falls before the answer."""
    client = sandbox.client()
    moments: list[tuple[str, float]] = []

    def told(kind: str) -> sinch_client.Written:
        return lambda: moments.append((kind, time.monotonic()))

    await client.send_message(SMS_BODY, written=told("send"))
    answered = time.monotonic()
    await client.find_batches("chunk", "none", written=told("lookup"))
    assert [kind for kind, _ in moments] == ["send", "lookup"]
    assert moments[0][1] < answered
    await client.send_message(SMS_BODY)  # nobody to tell: nothing breaks


async def test_the_sandbox_keeps_its_collections_short() -> None:
    """The standalone sandbox freezes what survives a young collection, every second, so
    that no full collection walks its history (it stopped the loop for tens of milliseconds,
    and requests that waited were timed as a burst)."""
    import gc

    from campaign.sandbox import server

    before = gc.get_freeze_count()
    task = asyncio.create_task(server.short_collections())
    try:
        await asyncio.sleep(server.FREEZE_EVERY_S * 1.5)
        assert gc.get_freeze_count() > before
    finally:
        task.cancel()
        gc.unfreeze()
