"""The webhook receiver against hostile or careless peers, over real HTTP on loopback.

1. Header bytes that are not UTF-8 in the signature headers: a 401 and one log line, never a
   500 with a traceback; a request aiohttp cannot parse: a 400 and one log line too.
2. Connections that send nothing, half a request, a trickle, or a body that never ends are
   closed within a bound; past ``max_connections`` a new one gets a 503; a valid callback gets
   through meanwhile (or, when the limit was full, once the idle ones are gone).
3. Callbacks about messages that are not ours do not wait forever: after the match window
   they are given up (kept raw, counted, logged), and until then they are tried again less
   and less often.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from sqlalchemy import select

from campaign import tracking
from campaign.errors import ConfigError
from campaign.models import Status
from campaign.receiver import ReceiverServer, ReceiverSettings
from campaign.secrets import Secret
from campaign.sinch import signature
from campaign.store import repository as repo
from campaign.store.events import NewEvent
from campaign.store.tables import events as events_table
from tests.integration.test_receiver import (
    NOW,
    SECRET,
    delivery,
    eventually,
    queued_recipient,
    signed,
)
from tests.recipients import loaded, us_numbers

E = events_table.c
DEFAULT_IDLE_S = 5.0  # ReceiverSettings.idle_timeout_s, the bound promised in the README
DEFAULT_MAX_CONNECTIONS = 512


@pytest.fixture
async def lite(tmp_path: Path) -> AsyncIterator[repo.Store]:
    """A SQLite store: the connection tests are about HTTP, not about the database."""
    store = await repo.Store.open(f"sqlite:///{tmp_path / 'receiver.db'}")
    try:
        yield store
    finally:
        await store.close()


def settings(**overrides: Any) -> ReceiverSettings:
    base: dict[str, Any] = {"secret": Secret(SECRET), "clock": lambda: NOW}
    return ReceiverSettings(**(base | overrides))


def request_bytes(path: str, headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    head = [b"POST " + path.encode() + b" HTTP/1.1", b"Host: 127.0.0.1"]
    head += [name + b": " + value for name, value in headers]
    head += [b"Content-Type: application/json", b"Content-Length: %d" % len(body)]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


async def exchange(port: int, data: bytes, within: float = 10.0) -> bytes:
    """Send ``data`` on a fresh connection; everything the server sends until it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), within)
    finally:
        writer.close()


async def closed_after(reader: asyncio.StreamReader, within: float) -> float:
    """Read until the server closes the connection; when that was (``time.monotonic``), or
    infinity when it was still open ``within`` seconds later."""
    try:
        async with asyncio.timeout(within):
            while await reader.read(4096):
                pass
    except ConnectionError:
        pass  # a reset is closed too
    except TimeoutError:
        return math.inf
    return time.monotonic()


async def post(session: aiohttp.ClientSession, url: str, body: bytes) -> int:
    async with session.post(url, data=body, headers=signed(body)) as response:
        return response.status


async def health(session: aiohttp.ClientSession, server: ReceiverServer) -> dict[str, Any]:
    async with session.get(server.url + "/health") as response:
        assert response.status == 200
        data: dict[str, Any] = await response.json()
        return data


# --- 1. header bytes that are not UTF-8 --------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "detail"),
    [
        (signature.SIGNATURE, "malformed signature"),  # was a 500 and an 18-line traceback
        (signature.NONCE, "malformed signature nonce"),  # was a 500 too
        (signature.TIMESTAMP, "malformed signature timestamp"),
        (signature.ALGORITHM, "unsupported signature algorithm"),
    ],
)
async def test_a_byte_that_is_not_utf8_in_a_signature_header_is_401_in_one_log_line(
    lite: repo.Store, caplog: pytest.LogCaptureFixture, header: str, detail: str
) -> None:
    body = delivery("M1")
    raw = [
        (name.encode(), (b"\xff\xfe" if name == header else b"") + value.encode())
        for name, value in signed(body).items()
    ]
    caplog.set_level(logging.INFO)
    async with ReceiverServer(lite, settings()) as server:
        caplog.clear()
        for _ in range(3):
            answer = await exchange(
                server.port,
                request_bytes(server.settings.path, [*raw, (b"Connection", b"close")], body),
            )
            assert answer.startswith(b"HTTP/1.1 401 "), answer[:200]
            assert orjson.loads(answer.split(b"\r\n\r\n", 1)[1])["detail"] == detail
        lines = [r for r in caplog.records if r.name.startswith(("campaign", "aiohttp"))]
        assert len(lines) == 3, [r.getMessage() for r in lines]  # one per request, at INFO
        assert all(r.levelno == logging.INFO and r.exc_info is None for r in lines)
        assert "Traceback" not in caplog.text
    assert await lite.events.count() == 0


async def test_the_same_bytes_outside_the_signature_headers_change_nothing(
    lite: repo.Store,
) -> None:
    body = delivery("M1")
    raw = [(name.encode(), value.encode()) for name, value in signed(body).items()]
    raw += [(b"User-Agent", b"\xff\xfe\x80"), (b"Connection", b"close")]
    async with ReceiverServer(lite, settings()) as server:
        answer = await exchange(server.port, request_bytes(server.settings.path, raw, body))
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
    assert await lite.events.count() == 1


@pytest.mark.parametrize(
    "request_head",
    [
        b"POST /sinch/callbacks\xff HTTP/1.1\r\nContent-Length: 2\r\n",
        b"POST /sinch/callbacks?a=\xfe HTTP/1.1\r\nContent-Length: 2\r\n",
        b"POST /sinch/callbacks HTTP/1.1\r\nX-\xff: 1\r\nContent-Length: 2\r\n",
        b"POST /sinch/callbacks HTTP/1.1\r\nTransfer-Encoding: chunked\r\n",
    ],
    ids=["path", "query", "header-name", "chunk"],
)
async def test_a_request_aiohttp_cannot_parse_is_400_in_one_log_line(
    lite: repo.Store, caplog: pytest.LogCaptureFixture, request_head: bytes
) -> None:
    """aiohttp logged each of these as an ERROR with an 11-line traceback."""
    caplog.set_level(logging.INFO)
    async with ReceiverServer(lite, settings()) as server:
        caplog.clear()
        answer = await exchange(server.port, request_head + b"Host: x\r\n\r\nzz\r\n")
        assert answer.startswith((b"HTTP/1.0 400 ", b"HTTP/1.1 400 ")), answer[:200]
        lines = [r for r in caplog.records if r.name.startswith(("campaign", "aiohttp"))]
        assert len(lines) == 1, [r.getMessage() for r in lines]
        assert lines[0].levelno == logging.INFO and lines[0].exc_info is None
        assert lines[0].getMessage().startswith("malformed request refused (400): ")
        assert "\\x" not in lines[0].getMessage()  # none of the request's bytes
        assert "Traceback" not in caplog.text
    with caplog.at_level(logging.WARNING):  # the CLI's level without -v: not a line
        async with ReceiverServer(lite, settings()) as server:
            caplog.clear()
            await exchange(server.port, request_head + b"Host: x\r\n\r\nzz\r\n")
            assert not caplog.records


# --- 2. connections ----------------------------------------------------------------------------


async def test_idle_and_half_sent_connections_are_closed_and_a_callback_gets_through(
    lite: repo.Store, caplog: pytest.LogCaptureFixture
) -> None:
    """With the default settings: 200 connections that send nothing, 50 that send half a
    request line and headers, 10 that trickle a header line every half second. All are closed
    by the server within the idle bound; a signed callback is answered 200 while they wait."""
    caplog.set_level(logging.WARNING)
    async with ReceiverServer(lite, settings()) as server, aiohttp.ClientSession() as session:
        port = server.port
        opened = time.monotonic()
        idle = await asyncio.gather(
            *(asyncio.open_connection("127.0.0.1", port) for _ in range(260))
        )
        for _, writer in idle[200:]:
            writer.write(b"POST /sinch/callbacks HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")

        async def trickle(writer: asyncio.StreamWriter) -> None:
            try:
                for i in range(40):
                    writer.write(b"X-Slow-%d: loris\r\n" % i)
                    await writer.drain()
                    await asyncio.sleep(0.5)
            except ConnectionError:
                return  # closed by the server, as it should be

        trickling = [asyncio.create_task(trickle(writer)) for _, writer in idle[250:]]
        assert await post(session, server.url, delivery("M1")) == 200
        connected = len(idle) + 1  # and this session's own
        closed = await asyncio.gather(
            *(closed_after(reader, DEFAULT_IDLE_S + 10) for reader, _ in idle)
        )
        await asyncio.gather(*trickling)
        latest = max(closed) - opened
        assert latest <= DEFAULT_IDLE_S + 3.0, f"the last idle connection lasted {latest:.1f} s"
        assert min(closed) - opened >= DEFAULT_IDLE_S - 1.0  # closed by the idle bound
        assert await post(session, server.url, delivery("M2")) == 200
        assert (await health(session, server))["connections"] <= 2  # this session's own
        assert server.stats.connections_refused == 0 and connected < DEFAULT_MAX_CONNECTIONS
        for _, writer in idle:
            writer.close()
    assert not caplog.records, [r.getMessage() for r in caplog.records]  # closing is silent
    assert ReceiverSettings().idle_timeout_s == DEFAULT_IDLE_S


async def test_past_the_connection_limit_a_new_connection_gets_503(
    lite: repo.Store, caplog: pytest.LogCaptureFixture
) -> None:
    """With the default settings: 512 idle connections fill the receiver, the next one is
    answered 503 and closed; once the idle ones are closed, callbacks get through again."""
    caplog.set_level(logging.WARNING)
    async with ReceiverServer(lite, settings()) as server, aiohttp.ClientSession() as session:
        idle = await asyncio.gather(
            *(
                asyncio.open_connection("127.0.0.1", server.port)
                for _ in range(DEFAULT_MAX_CONNECTIONS)
            )
        )
        # Accepted in the order they connected: these fill the limit, the next one is refused.
        body = delivery("M1")
        raw = [(name.encode(), value.encode()) for name, value in signed(body).items()]
        answer = await exchange(
            server.port, request_bytes(server.settings.path, raw, body), within=3.0
        )
        assert answer.startswith(b"HTTP/1.1 503 "), answer[:200]
        assert b"Retry-After: 1" in answer
        await asyncio.gather(*(closed_after(reader, DEFAULT_IDLE_S + 10) for reader, _ in idle))
        assert await post(session, server.url, body) == 200
        stats = await health(session, server)
        assert stats["connections_refused"] == 1
        for _, writer in idle:
            writer.close()
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "512 connections open" in warnings[0], warnings
    assert await lite.events.count() == 1
    assert ReceiverSettings().max_connections == DEFAULT_MAX_CONNECTIONS


async def test_a_kept_alive_connection_is_closed_when_idle_and_a_slow_body_gets_408(
    lite: repo.Store,
) -> None:
    async with ReceiverServer(lite, settings(idle_timeout_s=1.0, body_timeout_s=1.0)) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        body = delivery("M1")
        raw = [(name.encode(), value.encode()) for name, value in signed(body).items()]
        writer.write(request_bytes(server.settings.path, raw, body))
        answered = time.monotonic()
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200 ")
        await reader.readexactly(len(b'{"status":"stored"}'))
        closed = await closed_after(reader, 5.0)  # kept alive, then idle: closed
        assert 0.5 <= closed - answered <= 3.0
        writer.close()

        # Headers complete, then a tenth of the body, then nothing.
        body = delivery("M2")
        raw = [(name.encode(), value.encode()) for name, value in signed(body).items()]
        whole = request_bytes(server.settings.path, raw, body)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(whole[: len(whole) - len(body) * 9 // 10])
        sent = time.monotonic()
        answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
        assert b"Connection: close" in answer  # after aiohttp's lingering read (10 s at most)
        assert 0.5 <= time.monotonic() - sent <= 3.0
        writer.close()
        assert server.stats.rejected["timeout"] == 1
        # (Stopping while aiohttp still lingers on that body would wait for it, up to 10 s.)
        await eventually(lambda: server.stats.connections == 0)
    assert await lite.events.count() == 1


def test_the_connection_settings_are_validated() -> None:
    bad: list[dict[str, Any]] = [
        {"idle_timeout_s": 0},
        {"body_timeout_s": -1},
        {"max_connections": 0},
        {"match_window_s": 0},
    ]
    for overrides in bad:
        with pytest.raises(ConfigError):
            settings(**overrides)


# --- 3. callbacks that match no recipient ------------------------------------------------------


async def test_callbacks_about_unknown_messages_are_given_up_after_the_window(
    store: repo.Store, caplog: pytest.LogCaptureFixture
) -> None:
    """40 callbacks about messages this database never sent wait; a day later (the default
    window) they are given up: kept raw, counted in the health figures, logged once."""
    campaign = await queued_recipient(store, "MINE")
    clock = [NOW]
    caplog.set_level(logging.WARNING)
    settings_ = settings(clock=lambda: clock[0], apply_interval_s=0.01, apply_retry_s=0.05)
    async with ReceiverServer(store, settings_) as server, aiohttp.ClientSession() as session:
        bodies = [delivery(f"FOREIGN{i}") for i in range(40)] + [delivery("MINE")]
        statuses = await asyncio.gather(*(post(session, server.url, b) for b in bodies))
        assert set(statuses) == {200}

        async def waiting(count: int) -> bool:
            return bool((await health(session, server))["waiting"] == count)

        await eventually(lambda: waiting(40))
        assert await store.recipients.counts(campaign.id) == {Status.DELIVERED: 1}

        clock[0] = NOW + 24 * 3600 + 60
        await eventually(lambda: waiting(0))
        assert (await health(session, server))["unmatched"] == 40
    assert await store.events.count() == 41  # every raw event is kept
    assert await store.events.waiting() == 0
    async with store.engine.connect() as conn:
        given_up = (
            await conn.execute(
                select(E.message_id).where(
                    E.recipient_id.is_(None), E.applied_at.is_not(None), E.checked_at.is_not(None)
                )
            )
        ).scalars()
        assert sorted(given_up) == sorted(f"FOREIGN{i}" for i in range(40))
    lines = [r.getMessage() for r in caplog.records if "matched no recipient" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith("40 delivery events"), lines


START = datetime.fromtimestamp(NOW, UTC)


def unknown(message_id: str, nonce: str, at: datetime = START) -> NewEvent:
    body = delivery(message_id)
    return NewEvent(at, nonce, body.decode(), tracking.parse_callback(body))


async def checked_at(store: repo.Store) -> list[datetime | None]:
    async with store.engine.connect() as conn:
        query = select(E.checked_at).order_by(E.id)
        return list((await conn.execute(query)).scalars())


async def test_an_event_that_matches_nothing_is_tried_less_often_as_it_ages(
    store: repo.Store,
) -> None:
    """Every 5 s in its first minute, every 30 s to 10 minutes, every 5 minutes to an hour,
    then every 30 minutes; given up at the first look past the window. It was every 5 s for
    ever: a flood of unknown message ids was matched again and again."""
    await store.events.insert([unknown("NOBODY", "n1")])

    async def looked_at(after: timedelta) -> bool:
        at = START + after
        assert (await store.events.apply(at)).applied == 0
        return (await checked_at(store)) == [at]

    schedule = [
        (timedelta(0), True),
        (timedelta(seconds=3), False),
        (timedelta(seconds=6), True),
        (timedelta(minutes=2), True),
        (timedelta(minutes=2, seconds=20), False),
        (timedelta(minutes=2, seconds=31), True),
        (timedelta(minutes=20), True),
        (timedelta(minutes=24), False),
        (timedelta(minutes=25, seconds=1), True),
        (timedelta(hours=2), True),
        (timedelta(hours=2, minutes=10), False),
        (timedelta(hours=2, minutes=31), True),
    ]
    assert [(after, await looked_at(after)) for after, _ in schedule] == schedule

    past = START + timedelta(hours=24, seconds=1)
    result = await store.events.apply(past)
    assert (result.applied, result.unmatched, result.waiting) == (0, 1, 0)
    assert await store.events.waiting() == 0
    assert (await store.events.apply(past + timedelta(hours=1))).looked_at == 0
    assert await store.events.count() == 1


async def test_a_shorter_window_and_apply_for_give_up_too(store: repo.Store) -> None:
    await store.events.insert([unknown("NOBODY", "n1"), unknown("M9", "n2")])
    assert (await store.events.apply(START)).waiting == 2
    later = START + timedelta(minutes=2)
    found = await store.events.apply_for(
        message_ids=["NOBODY"], now=later, window=timedelta(minutes=1)
    )
    assert (found.applied, found.unmatched, found.looked_at) == (0, 1, 1)
    result = await store.events.apply(later, window=timedelta(hours=1))
    assert (result.unmatched, result.waiting) == (0, 1)  # M9 is a minute younger than an hour


def batch_event(batch_id: str, key: str, nonce: str, at: datetime) -> NewEvent:
    body = orjson.loads(delivery(f"M-{key}"))
    body["message_delivery_report"]["metadata"] = orjson.dumps(
        {"_batch_id": batch_id, "recipient": key}
    ).decode()
    raw = orjson.dumps(body)
    return NewEvent(at, nonce, raw.decode(), tracking.parse_callback(raw))


async def test_apply_for_finds_a_batch_among_recent_events_and_the_rechecks_the_rest(
    store: repo.Store,
) -> None:
    """There is no index on batch ids: apply_for reads only the events of the last ten
    minutes for them, however many older ones wait; an older one is applied by a recheck."""
    campaign = await store.campaigns.create(
        name="c", key="CK", mode="individual", channel="SMS", definition="{}", source="x", now=START
    )
    await store.ingest.write(campaign.id, "SMS", loaded(us_numbers(4)), START)
    first = await store.chunks.claim(campaign.id, campaign.key, 2, START)
    second = await store.chunks.claim(campaign.id, campaign.key, 2, START)
    assert first is not None and second is not None
    old = START - timedelta(minutes=11)
    flood = [unknown(f"F{i}", f"f{i}", at=old) for i in range(300)]
    await store.events.insert([*flood, batch_event("B1", "CK-2", "early", old)])
    assert (await store.events.apply(old)).waiting == 301  # the chunks are still being sent
    await store.events.insert([batch_event("B2", "CK-4", "recent", START)])
    assert (await store.events.apply(START)).waiting == 302

    await store.recipients.record(
        [
            repo.ChunkSent(campaign.id, first.number, "B1", "ACCEPTED"),
            repo.ChunkSent(campaign.id, second.number, "B2", "ACCEPTED"),
        ],
        START,
    )
    found = await store.events.apply_for(batch_ids=["B1", "B2"], now=START)
    assert found.applied == 1  # B2's; B1's is eleven minutes old
    assert found.looked_at == 1  # and none of the flood
    assert await store.recipients.counts(campaign.id) == {Status.QUEUED: 3, Status.DELIVERED: 1}
    recheck = await store.events.apply(START + timedelta(minutes=5, seconds=1))
    assert (recheck.applied, recheck.waiting) == (1, 300)
    assert await store.recipients.counts(campaign.id) == {Status.QUEUED: 2, Status.DELIVERED: 2}
