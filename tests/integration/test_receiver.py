"""The webhook receiver over real HTTP on loopback, on SQLite and on Postgres.

Every test posts real requests to a real :class:`ReceiverServer` backed by a real database
(built by the migrations); the database outage is a real one (the table renamed away).
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
import pytest
from sqlalchemy import create_engine, select, text

from campaign import config
from campaign.config import SinchConfig
from campaign.errors import ConfigError
from campaign.models import Status
from campaign.receiver import ReceiverServer, ReceiverSettings, checks, serve
from campaign.sandbox import SandboxServer, SandboxSettings
from campaign.secrets import Secret
from campaign.sinch import signature, wire
from campaign.sinch.client import SinchClient, open_session
from campaign.store import engine as store_engine
from campaign.store import repository as repo
from campaign.store.tables import events as events_table
from tests.recipients import loaded, us_numbers

SECRET = "whsec-test-1234"
NOW = 1_800_000_000.0  # the receiver's clock in most tests (2027-01-15)
T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


# --- helpers -----------------------------------------------------------------------------------


def delivery(
    message_id: str = "MID", status: str = "DELIVERED", key: str = "", **extra: Any
) -> bytes:
    """A MESSAGE_DELIVERY callback body."""
    body = {
        "app_id": "app",
        "project_id": "project",
        "accepted_time": "2026-11-21T12:00:01.000Z",
        "event_time": "2026-11-21T12:00:01.000Z",
        "message_metadata": key,
        "correlation_id": key,
        "message_delivery_report": {
            "message_id": message_id,
            "conversation_id": "",
            "status": status,
            "channel_identity": {"channel": "SMS", "identity": "12015550001", "app_id": ""},
            "contact_id": "",
            "metadata": key,
            "processing_mode": "DISPATCH",
        },
        **extra,
    }
    return orjson.dumps(body)


def signed(
    body: bytes, *, at: float = NOW, nonce: str | None = None, secret: str = SECRET
) -> dict[str, str]:
    return signature.sign(secret, body, timestamp=int(at), nonce=nonce)


class Client:
    """A thin HTTP client for one receiver."""

    def __init__(self, session: aiohttp.ClientSession, server: ReceiverServer) -> None:
        self.session = session
        self.server = server

    async def post(
        self, body: Any, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, Any], Any]:
        async with self.session.post(self.server.url, data=body, headers=headers or {}) as response:
            raw = await response.read()
            answer = orjson.loads(raw) if raw else None
            return response.status, dict(response.headers), answer

    async def post_signed(self, body: bytes, **kw: Any) -> int:
        status, _, _ = await self.post(body, signed(body, **kw))
        return status

    async def health(self, path: str | None = None) -> dict[str, Any]:
        url = self.server.base_url + (path or self.server.settings.path + "/health")
        async with self.session.get(url) as response:
            assert response.status == 200
            data: dict[str, Any] = await response.json()
            return data


Start = Callable[..., Any]


@pytest.fixture
def start(store: repo.Store) -> Start:
    """``async with start(**settings) as client``: a receiver on the test store and a client."""

    @asynccontextmanager
    async def starter(**overrides: Any) -> AsyncIterator[Client]:
        settings = ReceiverSettings(
            secret=Secret(SECRET),
            clock=lambda: NOW,
            apply_interval_s=0.01,
            apply_retry_s=0.2,
        )
        settings = dataclasses.replace(settings, **overrides)
        async with ReceiverServer(store, settings) as server, aiohttp.ClientSession() as session:
            yield Client(session, server)

    return starter


async def stored_rows(store: repo.Store) -> list[Any]:
    async with store.engine.connect() as conn:
        query = select(events_table.c.payload, events_table.c.nonce, events_table.c.message_id)
        return list((await conn.execute(query.order_by(events_table.c.id))).all())


def _rename_table(url: str, old: str, new: str) -> None:
    engine = create_engine(store_engine.sync_url(url))
    try:
        with engine.begin() as conn:
            conn.execute(text(f"ALTER TABLE {old} RENAME TO {new}"))
    finally:
        engine.dispose()


async def rename_table(url: str, old: str, new: str) -> None:
    """A real outage (or its end): the table the receiver writes to vanishes (or comes back).

    In a worker thread: the ALTER waits for the receiver's open transactions to end, and the
    receiver needs the event loop to end them.
    """
    await asyncio.to_thread(_rename_table, url, old, new)


async def eventually(predicate: Callable[[], Any], within: float = 10.0) -> None:
    """Wait until ``predicate()`` (a value or an awaitable) is true."""
    deadline = time.monotonic() + within
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


# --- pure checks -------------------------------------------------------------------------------


def test_json_depth_ignores_brackets_in_strings() -> None:
    assert checks.json_depth(b"{}") == 1
    assert checks.json_depth(b'{"a": [1, {"b": [[]]}]}') == 5
    assert checks.json_depth(b'{"a": "[[[[{{{{", "b": "\\"[[[\\\\"}') == 1
    assert checks.json_depth(b'"just a string ]]]]"') == 0


def test_too_deep_is_iterative_and_cheap_on_huge_nesting() -> None:
    deep = b"[" * 200_000 + b"]" * 200_000
    assert checks.too_deep(deep, 64)
    assert checks.json_depth(deep) == 200_000  # no recursion limit anywhere
    assert not checks.too_deep(b"[" * 64 + b"]" * 64, 64)
    assert checks.too_deep(b"[" * 65 + b"]" * 65, 64)
    wide = b"[" + b",".join([b"[1]"] * 10_000) + b"]"
    assert not checks.too_deep(wide, 64)  # many brackets, depth 2


def test_nonce_window_expires_discards_and_stays_bounded() -> None:
    window = checks.NonceWindow(max_size=3)
    window.add("a", 100.0)
    window.add("b", 200.0)
    assert window.seen("a", 50.0)
    assert window.seen("a", 100.0)
    assert not window.seen("a", 100.5)  # expired and pruned
    assert window.seen("b", 100.5)
    window.discard("b")
    assert not window.seen("b", 100.5)
    for nonce in ("c", "d", "e", "f"):
        window.add(nonce, 300.0)
    assert len(window) == 3


def test_settings_from_config_and_no_secret_in_reprs() -> None:
    receiver_config = config.ReceiverConfig(path="/hooks", timestamp_window=60.0)
    sinch = SinchConfig(webhook_secret=Secret(SECRET))
    settings = ReceiverSettings.from_config(receiver_config, sinch, allow_unsigned=False)
    assert (settings.path, settings.timestamp_window_s) == ("/hooks", 60.0)
    assert settings.require_secret() == SECRET
    assert SECRET not in repr(settings)


def test_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match="path"):
        ReceiverSettings(path="callbacks")
    with pytest.raises(ConfigError, match="max_batch"):
        ReceiverSettings(max_batch=0)


# --- starting ----------------------------------------------------------------------------------


async def test_start_without_secret_is_refused(store: repo.Store) -> None:
    server = ReceiverServer(store, ReceiverSettings(secret=None))
    with pytest.raises(ConfigError, match=r"SINCH_WEBHOOK_SECRET is not set.*--unsigned"):
        await server.start()
    with pytest.raises(ConfigError, match="SINCH_WEBHOOK_SECRET"):
        await ReceiverServer(store, ReceiverSettings(secret=Secret(""))).start()


async def test_serve_prints_where_and_how_never_the_secret(store: repo.Store) -> None:
    lines: list[str] = []
    stop = asyncio.Event()
    settings = ReceiverSettings(secret=Secret(SECRET), path="/hooks/sinch")
    task = asyncio.create_task(serve(store, settings, "127.0.0.1", 0, stop, lines.append))
    await eventually(lambda: len(lines) > 0)
    url = lines[0].split()[-1]
    assert url.startswith("http://127.0.0.1:") and url.endswith("/hooks/sinch")
    body = delivery()
    async with aiohttp.ClientSession() as session:
        headers = signature.sign(SECRET, body, timestamp=int(time.time()))
        async with session.post(url, data=body, headers=headers) as response:
            assert response.status == 200
    stop.set()
    stats = await asyncio.wait_for(task, 10)
    assert stats.stored == 1
    text_out = "\n".join(lines)
    assert "must be signed" in text_out
    assert SECRET not in text_out


# --- refusals ----------------------------------------------------------------------------------


async def test_bad_or_missing_signature_is_401_and_nothing_is_written(
    start: Start, store: repo.Store
) -> None:
    body = delivery()
    async with start() as client:
        assert await client.post_signed(body, secret="not-the-secret") == 401
        tampered = signed(body)
        assert (await client.post(body + b" ", tampered))[0] == 401
        status, _, answer = await client.post(body)  # no signature headers at all
        assert status == 401
        assert answer["error"] == "signature"
        only_signature = {signature.SIGNATURE: signed(body)[signature.SIGNATURE]}
        assert (await client.post(body, only_signature))[0] == 401
        health = await client.health()
    assert health["rejected"] == {"signature": 4}
    assert await store.events.count() == 0


@pytest.mark.parametrize("offset", [-301.0, +301.0, -10_000.0])
async def test_stale_timestamp_past_or_future_is_401(
    start: Start, store: repo.Store, offset: float
) -> None:
    body = delivery()
    async with start() as client:
        status, _, answer = await client.post(body, signed(body, at=NOW + offset))
        assert (status, answer["error"]) == (401, "stale")
        assert await client.post_signed(delivery(), at=NOW + offset / abs(offset) * 299) == 200
    assert await store.events.count() == 1


async def test_replayed_nonce_is_401_and_stored_once(start: Start, store: repo.Store) -> None:
    body = delivery()
    headers = signed(body, nonce="01FJA8B4A7BM43YGWSG9GBV067")
    async with start() as client:
        assert (await client.post(body, headers))[0] == 200
        status, _, answer = await client.post(body, headers)
        assert (status, answer["error"]) == (401, "replay")
        # Even re-signed at another timestamp within the window, the nonce is spent.
        assert await client.post_signed(body, at=NOW - 5, nonce="01FJA8B4A7BM43YGWSG9GBV067") == 401
    assert await store.events.count() == 1


async def test_replay_after_a_restart_is_not_stored_twice(start: Start, store: repo.Store) -> None:
    body = delivery()
    headers = signed(body, nonce="NONCE-1")
    async with start() as client:
        assert (await client.post(body, headers))[0] == 200
    async with start() as client:  # a new process: its in-memory window is empty
        assert (await client.post(body, headers))[0] == 200  # acknowledged: it is stored
        health = await client.health()
    assert health["duplicates"] == 1
    assert health["stored"] == 0
    assert await store.events.count() == 1


async def test_oversized_body_is_413(start: Start, store: repo.Store) -> None:
    async with start(max_body_bytes=2048) as client:
        big = delivery(padding="x" * 3000)
        status, _, answer = await client.post(big, signed(big))
        assert (status, answer["error"]) == (413, "too_large")

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: caught while reading
            for _ in range(4):
                yield big[:1000]

        async with client.session.post(
            client.server.url, data=chunks(), headers=signed(big)
        ) as response:
            assert response.status == 413
        fits = delivery(padding="x" * 1000)
        assert await client.post_signed(fits) == 200
    assert await store.events.count() == 1


async def test_too_deep_json_is_400(start: Start, store: repo.Store) -> None:
    async with start(max_json_depth=16) as client:
        deep: Any = "bottom"
        for _ in range(20):
            deep = [deep]
        body = delivery(extra=deep)
        status, _, answer = await client.post(body, signed(body))
        assert (status, answer["error"]) == (400, "too_deep")
        # Deeper than orjson itself accepts: still a clean 400.
        abyss = body[:-1] + b',"more":' + b"[" * 5000 + b"]" * 5000 + b"}"
        status, _, answer = await client.post(abyss, signed(abyss))
        assert (status, answer["error"]) == (400, "too_deep")
        # Brackets inside strings are text, not nesting.
        assert await client.post_signed(delivery(key="[" * 100)) == 200
    assert await store.events.count() == 1


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'{"hello": "world"}',
        b'{"message_delivery_report": "x"}',
        b"\xff\xfe",
    ],
)
async def test_a_body_that_is_not_a_callback_is_400(
    start: Start, store: repo.Store, body: bytes
) -> None:
    async with start() as client:
        status, _, answer = await client.post(body, signed(body))
        assert (status, answer["error"]) == (400, "not_callback")
    assert await store.events.count() == 0


async def test_unsigned_mode_accepts_callbacks_without_a_signature(
    start: Start, store: repo.Store
) -> None:
    async with start(secret=None, allow_unsigned=True) as client:
        assert (await client.post(delivery("U1")))[0] == 200
        assert (await client.post(delivery("U1")))[0] == 200  # no nonce: no replay check
        health = await client.health("/healthz")
    assert health["signed"] is False
    rows = await stored_rows(store)
    assert [(r.message_id, r.nonce) for r in rows] == [("U1", None), ("U1", None)]


async def test_unsigned_mode_with_a_secret_still_verifies_signed_callbacks(start: Start) -> None:
    async with start(allow_unsigned=True) as client:
        assert (await client.post(delivery()))[0] == 200
        assert await client.post_signed(delivery(), secret="wrong") == 401


# --- storing -----------------------------------------------------------------------------------


async def test_a_valid_callback_is_stored_raw_before_the_200(
    start: Start, store: repo.Store
) -> None:
    # Odd spacing, key order and non-ASCII: the stored payload is the exact text received.
    body = (
        '{ "correlation_id":"KEY-7",  "message_delivery_report" : {"status":"DELIVERED",'
        '"message_id":"01MID","channel_identity":{"channel":"SMS","identity":"1"}},'
        '"event_time":"2026-11-21T12:00:01Z", "note": "Nöël ✓" }\n'
    ).encode()
    async with start() as client:
        status, _, answer = await client.post(body, signed(body, nonce="N-raw"))
        assert status == 200
        assert answer == {"status": "stored"}
        rows = await stored_rows(store)  # read as soon as the answer came: already there
    assert len(rows) == 1
    assert rows[0].payload == body.decode("utf-8")
    assert rows[0].nonce == "N-raw"
    assert rows[0].message_id == "01MID"


async def test_concurrent_callbacks_share_few_commits_and_none_is_lost(
    start: Start, store: repo.Store
) -> None:
    calls: list[int] = []
    insert = store.events.insert

    async def counting_insert(batch: Any) -> int:
        calls.append(len(batch))
        return await insert(batch)

    store.events.insert = counting_insert  # type: ignore[method-assign]
    async with start() as client:
        bodies = [delivery(f"M{i}") for i in range(300)]
        statuses = await asyncio.gather(*(client.post_signed(b) for b in bodies))
        health = await client.health()
    assert statuses == [200] * 300
    assert sum(calls) == 300
    print(f"300 callbacks in {len(calls)} commits: {calls}")
    assert len(calls) < 60, calls  # group commits, not one transaction per request
    assert health["commits"] == len(calls)
    assert health["stored"] == 300
    assert health["pending"] == 0
    rows = await stored_rows(store)
    assert sorted(r.message_id for r in rows) == sorted(f"M{i}" for i in range(300))


async def test_database_down_is_503_then_the_retry_succeeds(
    start: Start, store: repo.Store, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    body = delivery("OUTAGE")
    headers = signed(body, nonce="N-outage")
    async with start() as client:
        assert await client.post_signed(delivery("BEFORE")) == 200
        await rename_table(database_url, "events", "events_away")
        try:
            with caplog.at_level(logging.WARNING, logger="campaign.receiver"):
                status, answer_headers, answer = await client.post(body, headers)
                others = await asyncio.gather(
                    *(client.post_signed(delivery(f"X{i}")) for i in range(20))
                )
            assert (status, answer["error"]) == (503, "unavailable")
            assert answer_headers["Retry-After"] == "1"
            assert others == [503] * 20
            health = await client.health()
            assert health["status"] == "store unavailable"
            assert health["rejected"]["unavailable"] == 21
            assert "cannot store callbacks" in caplog.text
            assert SECRET not in caplog.text
        finally:
            await rename_table(database_url, "events_away", "events")
        # The same request again (same nonce): it was not stored, so it is no replay.
        assert (await client.post(body, headers))[0] == 200
        assert await client.post_signed(delivery("AFTER")) == 200
        health = await client.health()
    assert health["status"] == "ok"
    rows = await stored_rows(store)
    assert [r.message_id for r in rows] == ["BEFORE", "OUTAGE", "AFTER"]


@pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
async def test_postgres_backends_terminated_then_reconnects(
    start: Start, store: repo.Store, database_url: str
) -> None:
    """A Postgres outage of another kind: the server drops every connection."""
    async with start() as client:
        assert await client.post_signed(delivery("BEFORE")) == 200
        engine = create_engine(store_engine.sync_url(database_url))
        try:
            with engine.connect() as conn:
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
        finally:
            engine.dispose()
        body = delivery("AFTER")
        headers = signed(body)
        status = (await client.post(body, headers))[0]
        if status == 503:  # the pool noticed only now; the retry gets a fresh connection
            status = (await client.post(body, headers))[0]
        assert status == 200
    assert [r.message_id for r in await stored_rows(store)] == ["BEFORE", "AFTER"]


async def test_a_full_queue_answers_503_and_every_200_is_stored(
    start: Start, store: repo.Store
) -> None:
    insert = store.events.insert

    async def slow_insert(batch: Any) -> int:
        await asyncio.sleep(0.3)
        return await insert(batch)

    store.events.insert = slow_insert  # type: ignore[method-assign]
    async with start(max_pending=5, max_batch=5) as client:
        statuses = await asyncio.gather(*(client.post_signed(delivery(f"Q{i}")) for i in range(40)))
    assert set(statuses) == {200, 503}
    assert await store.events.count() == statuses.count(200)


async def test_a_value_the_database_refuses_fails_alone(start: Start, store: repo.Store) -> None:
    """Postgres refuses a NUL character in text (JSON allows ``\\u0000``); the one callback
    that carries it must not sink the others in its group commit."""
    poison = delivery("P\x00P")
    async with start() as client:
        results = await asyncio.gather(
            client.post_signed(poison), *(client.post_signed(delivery(f"OK{i}")) for i in range(30))
        )
    expected = 400 if store.dialect == "postgresql" else 200  # SQLite stores any length
    assert results == [expected] + [200] * 30
    assert await store.events.count() == 30 + (expected == 200)


async def test_stopping_drains_requests_in_flight(store: repo.Store) -> None:
    insert = store.events.insert

    async def slow_insert(batch: Any) -> int:
        await asyncio.sleep(0.2)  # a slow disk: requests are still waiting when the stop comes
        return await insert(batch)

    store.events.insert = slow_insert  # type: ignore[method-assign]
    settings = ReceiverSettings(secret=Secret(SECRET), clock=lambda: NOW)
    server = ReceiverServer(store, settings)
    await server.start()
    async with aiohttp.ClientSession() as session:
        client = Client(session, server)
        posts = [asyncio.create_task(client.post_signed(delivery(f"D{i}"))) for i in range(100)]
        await eventually(lambda: server.stats.received == 100)
        assert server.stats.pending > 0
        await server.close()
        statuses = await asyncio.gather(*posts)
    assert statuses == [200] * 100
    assert await store.events.count() == 100
    assert server.stats.pending == 0


# --- applying ----------------------------------------------------------------------------------


async def queued_recipient(store: repo.Store, message_id: str, rows: int = 1) -> repo.CampaignRow:
    """A campaign whose first recipient was sent (QUEUED with ``message_id``)."""
    campaign = await store.campaigns.create(
        name="c1",
        key="KC",
        mode="individual",
        channel="SMS",
        definition="{}",
        source="r.csv",
        now=T0,
    )
    await store.ingest.write(campaign.id, "SMS", loaded(us_numbers(rows)), T0)
    claims = await store.recipients.claim(campaign.id, 1, T0)
    await store.recipients.record([repo.Sent(claims[0].id, message_id)], T0)
    return campaign


async def test_events_are_applied_to_recipients_after_commit(
    start: Start, store: repo.Store
) -> None:
    campaign = await queued_recipient(store, "MID", rows=2)
    assert await store.recipients.counts(campaign.id) == {Status.QUEUED: 1, Status.PENDING: 1}
    async with start() as client:
        assert await client.post_signed(delivery("MID", "DELIVERED")) == 200

        async def delivered() -> bool:
            return await store.recipients.counts(campaign.id) == {
                Status.DELIVERED: 1,
                Status.PENDING: 1,
            }

        await eventually(delivered)

        # The apply commits before the receiver counts it (it then asks how many still wait),
        # so the health figure can trail the database by a moment.
        async def counted() -> bool:
            return (await client.health())["applied"] >= 1

        await eventually(counted)
    assert await store.events.waiting() == 0


async def test_an_apply_failure_is_retried_and_never_stops_the_receiver(
    start: Start, store: repo.Store, database_url: str
) -> None:
    campaign = await queued_recipient(store, "MID")
    await rename_table(database_url, "recipients", "recipients_away")
    renamed = True
    try:
        async with start() as client:
            assert await client.post_signed(delivery("MID", "QUEUED_ON_CHANNEL")) == 200

            async def failed_once() -> bool:
                return bool((await client.health())["apply_failures"] >= 1)

            await eventually(failed_once)
            assert await client.post_signed(delivery("MID", "DELIVERED")) == 200  # still receiving
            await rename_table(database_url, "recipients_away", "recipients")
            renamed = False

            async def delivered() -> bool:
                return await store.recipients.counts(campaign.id) == {Status.DELIVERED: 1}

            await eventually(delivered)  # the retry (timer or next commit) applied both
    finally:
        if renamed:
            await rename_table(database_url, "recipients_away", "recipients")
    assert await store.events.waiting() == 0


async def test_events_behind_many_unmatched_ones_are_still_applied(
    start: Start, store: repo.Store
) -> None:
    campaign = await queued_recipient(store, "MINE")
    async with start(apply_batch=50) as client:
        foreign = await asyncio.gather(
            *(client.post_signed(delivery(f"FOREIGN{i}")) for i in range(60))
        )
        assert set(foreign) == {200}
        assert await client.post_signed(delivery("MINE", "DELIVERED")) == 200

        async def delivered() -> bool:
            return await store.recipients.counts(campaign.id) == {Status.DELIVERED: 1}

        await eventually(delivered, within=2.0)


# --- end to end with the sandbox ---------------------------------------------------------------


async def test_sandbox_callbacks_land_in_the_event_table_and_on_recipients(
    store: repo.Store,
) -> None:
    rows = 12
    campaign = await store.campaigns.create(
        name="e2e", key="E2E", mode="individual", channel="SMS", definition="{}", source="x", now=T0
    )
    await store.ingest.write(campaign.id, "SMS", loaded(us_numbers(rows)), T0)
    settings = ReceiverSettings(secret=Secret(SECRET), apply_interval_s=0.01, apply_retry_s=0.2)
    async with ReceiverServer(store, settings) as receiver:
        sandbox_settings = SandboxSettings(
            callback_url=receiver.url,
            webhook_secret=SECRET,
            queued_delay_s=0.0,
            queued_jitter_s=0.0,
            delivered_delay_s=0.05,
            delivered_jitter_s=0.02,
            seed=7,
        )
        async with SandboxServer(sandbox_settings) as sandbox:
            sinch = SinchConfig(
                project_id=config.SANDBOX_PROJECT_ID,
                app_id=config.SANDBOX_APP_ID,
                key_id=config.SANDBOX_KEY_ID,
                key_secret=Secret(config.SANDBOX_KEY_SECRET),
                sandbox=True,
            ).pointed_at(sandbox.url)
            async with open_session(sinch) as session:
                client = SinchClient(sinch, session)
                claims = await store.recipients.claim(campaign.id, rows, T0)
                sent = []
                for claim in claims:
                    key = wire.recipient_key("E2E", claim.position)
                    accepted = await client.send_message(
                        {
                            "recipient": {
                                "identified_by": {
                                    "channel_identities": [
                                        {"channel": "SMS", "identity": claim.identity}
                                    ]
                                }
                            },
                            "message": {"text_message": {"text": "hello"}},
                            "correlation_id": key,
                            "message_metadata": key,
                        }
                    )
                    sent.append(repo.Sent(claim.id, accepted.message_id))
                await store.recipients.record(sent, T0)

            state = sandbox.state

            async def all_delivered() -> bool:
                return await store.recipients.counts(campaign.id) == {Status.DELIVERED: rows}

            await eventually(all_delivered)

            async def quiet() -> bool:
                return bool(state.stats_json()["callbacks_pending"] == 0)

            await eventually(quiet)
            answered = [c["response_status"] for c in state.callback_log]
            sent_ok = state.stats.callbacks_sent
    assert set(answered) == {200}
    assert sent_ok >= 3 * rows  # SUBMIT, QUEUED_ON_CHANNEL, DELIVERED for each
    assert await store.events.count() == sent_ok == receiver.stats.stored
    stored = await stored_rows(store)
    assert all(r.nonce for r in stored)
    assert {r.message_id for r in stored} == {s.message_id for s in sent}
