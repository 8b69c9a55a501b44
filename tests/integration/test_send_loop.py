"""The send loop against the sandbox over loopback, on SQLite and on Postgres."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from campaign import config, errors, pacing, quiet, rendering, retry, windows
from campaign.config import SinchConfig
from campaign.models import Status
from campaign.sandbox import SandboxServer, SandboxSettings
from campaign.secrets import Secret
from campaign.sending import SendLoop, SendSettings, make_limiter
from campaign.sinch.client import SinchClient, open_session
from campaign.store import engine as store_engine
from campaign.store import repository as repo
from tests.recipients import loaded, us_numbers

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
MESSAGE = {"text_message": {"text": "Hi ${name}, code ${code}"}}


class World:
    def __init__(self, store: repo.Store, sandbox: SandboxServer, client: SinchClient) -> None:
        self.store = store
        self.sandbox = sandbox
        self.client = client
        self.http: aiohttp.ClientSession = client._session

    async def control(self, method: str, path: str, body: Any = None) -> Any:
        async with self.http.request(method, f"{self.sandbox.url}/_sandbox/{path}", json=body) as r:
            assert r.status == 200, await r.text()
            return await r.json()

    async def sent(self) -> list[dict[str, Any]]:
        return list((await self.control("GET", "messages"))["messages"])

    async def campaign(self, rows: int, *, bad: set[int] = frozenset()) -> repo.CampaignRow:  # type: ignore[assignment]
        campaign = await self.store.campaigns.create(
            name="c",
            key="KEY",
            mode="individual",
            channel="SMS",
            definition="{}",
            source="x",
            now=NOW,
        )
        identities = [
            "+1201555" + (f"x{i}" if i in bad else f"{i:04d}") for i in range(1, rows + 1)
        ]
        parameters = [f'{{"name":"Nö{i}","code":"{i:06d}"}}' for i in range(1, rows + 1)]
        await self.store.ingest.write(campaign.id, "SMS", loaded(identities, parameters), NOW)
        return campaign

    def dispatcher(
        self,
        campaign: repo.CampaignRow,
        stop: asyncio.Event | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
        quiet_hours: quiet.Plan | None = None,
        window: windows.Window | None = None,
        mode: str = "individual",
        **settings: Any,
    ) -> SendLoop:
        base = SendSettings(
            rate=None,
            max_in_flight=50,
            retry=retry.RetryPolicy(max_attempts=6, base_delay=0.02, max_delay=0.2),
            flush_interval=0.05,
        )
        return SendLoop(
            mode=mode,
            store=self.store,
            client=self.client,
            campaign=campaign,
            channel="SMS",
            template=rendering.MessageTemplate.compile(MESSAGE),
            send_fields={"channel_properties": {"SMS_SENDER": "+15550000000"}},
            settings=dataclasses.replace(base, **settings),
            stop=stop or asyncio.Event(),
            clock=clock or (lambda: datetime.now(UTC)),
            quiet_hours=quiet_hours,
            window=window,
        )


@pytest.fixture
async def world(database_url: str) -> AsyncIterator[World]:
    if database_url.startswith("postgresql"):
        store_engine.upgrade_sync(database_url)
    store = await repo.Store.open(database_url)
    async with SandboxServer(SandboxSettings(seed=3)) as sandbox:
        sinch = SinchConfig(
            project_id=config.SANDBOX_PROJECT_ID,
            app_id=config.SANDBOX_APP_ID,
            key_id=config.SANDBOX_KEY_ID,
            key_secret=Secret(config.SANDBOX_KEY_SECRET),
            sandbox=True,
        ).pointed_at(sandbox.url)
        async with open_session(sinch) as session:
            yield World(store, sandbox, SinchClient(sinch, session))
    await store.close()


async def report(world: World, campaign: repo.CampaignRow) -> list[tuple[Any, ...]]:
    return [row async for page in world.store.export.pages(campaign.id) for row in page.iter_rows()]


async def test_every_recipient_is_sent_once_with_its_own_text(world: World) -> None:
    campaign = await world.campaign(120)
    assert await world.dispatcher(campaign).run() is True
    sent = await world.sent()
    assert Counter(m["identity"] for m in sent) == {f"+1201555{i:04d}": 1 for i in range(1, 121)}
    by_identity = {m["identity"]: m for m in sent}
    rows = await report(world, campaign)
    assert {r[4] for r in rows} == {"QUEUED"}
    for position, identity, *_ in rows:
        message = by_identity[identity]
        assert message["message"] == {
            "text_message": {"text": f"Hi Nö{position}, code {position:06d}"}
        }
        assert message["correlation_id"] == message["message_metadata"] == f"KEY-{position}"
        assert message["channel_properties"] == {"SMS_SENDER": "+15550000000"}
    assert {r[5] for r in rows} == {m["message_id"] for m in sent}


async def test_rate_limit_holds_in_every_sliding_second(world: World) -> None:
    campaign = await world.campaign(330)
    started = asyncio.get_running_loop().time()
    await world.dispatcher(campaign, rate=200.0).run()
    elapsed = asyncio.get_running_loop().time() - started
    stats = await world.control("GET", "stats")
    assert stats["accepted_messages"] == 330
    assert stats["max_window"] <= 200
    assert stats["rate_limited"] == 0
    assert elapsed >= 330 / 200 - 0.1  # not faster than the rate allows


async def test_server_errors_are_retried_until_sent(world: World) -> None:
    await world.control("PATCH", "settings", {"error_rate_503": 0.3, "error_rate_500": 0.1})
    campaign = await world.campaign(80)
    # 40% errors: 20 attempts make a row failing every one of them a 1e-8 event.
    policy = retry.RetryPolicy(max_attempts=20, base_delay=0.01, max_delay=0.05)
    assert await world.dispatcher(campaign, retry=policy).run() is True
    sent = await world.sent()
    assert len(sent) == 80
    assert len({m["identity"] for m in sent}) == 80
    assert await world.store.recipients.counts(campaign.id) == {Status.QUEUED: 80}
    assert (await world.control("GET", "stats"))["errors_injected"] > 0


async def test_429_slows_the_dispatcher_and_everyone_gets_through(world: World) -> None:
    await world.control("PATCH", "settings", {"rate_limit": 40})
    campaign = await world.campaign(100)
    dispatcher = world.dispatcher(campaign, rate=80.0)
    assert await dispatcher.run() is True
    stats = await world.control("GET", "stats")
    assert stats["accepted_messages"] == 100
    assert dispatcher.stats.rate_limited > 0
    assert await world.store.recipients.counts(campaign.id) == {Status.QUEUED: 100}


async def test_retries_give_up_after_max_attempts(world: World) -> None:
    await world.control("PATCH", "settings", {"error_rate_503": 1.0})
    campaign = await world.campaign(3)
    assert await world.dispatcher(
        campaign, retry=retry.RetryPolicy(max_attempts=2, base_delay=0.01)
    ).run()
    rows = await report(world, campaign)
    assert {(r[4], r[7], r[11]) for r in rows} == {("FAILED", "UNAVAILABLE", 2)}


async def test_permanent_errors_fail_at_once_with_sinch_code(world: World) -> None:
    campaign = await world.campaign(5, bad={2, 4})
    assert await world.dispatcher(campaign).run() is True
    rows = {r[0]: r for r in await report(world, campaign)}
    assert rows[2][4] == rows[4][4] == "FAILED"
    assert rows[2][7] == "INVALID_ARGUMENT"
    assert rows[2][11] == 1  # one attempt
    assert [rows[i][4] for i in (1, 3, 5)] == ["QUEUED"] * 3


async def test_lost_answers_are_in_doubt_and_never_resent(world: World) -> None:
    await world.control("PATCH", "settings", {"drop_rate": 1.0})
    campaign = await world.campaign(4)
    assert await world.dispatcher(campaign).run() is True
    assert await world.store.recipients.counts(campaign.id) == {Status.IN_DOUBT: 4}
    assert len(await world.sent()) == 4  # Sinch got each once; none was sent again


async def test_stop_drains_then_a_new_run_resumes_without_duplicates(world: World) -> None:
    await world.control("PATCH", "settings", {"latency_ms": 20})
    campaign = await world.campaign(200)
    stop = asyncio.Event()
    first = world.dispatcher(campaign, stop, rate=400.0)
    task = asyncio.create_task(first.run())
    while first.stats.sent < 40:
        await asyncio.sleep(0.01)
    stop.set()
    assert await task is False
    counts = await world.store.recipients.counts(campaign.id)
    assert Status.IN_FLIGHT not in counts  # drained and recorded
    assert counts[Status.PENDING] > 0
    assert await world.dispatcher(campaign, rate=400.0).run() is True
    sent = await world.sent()
    assert sorted(m["identity"] for m in sent) == sorted({m["identity"] for m in sent})
    assert len(sent) == 200
    assert await world.store.recipients.counts(campaign.id) == {Status.QUEUED: 200}


def worst_second(times: list[float]) -> int:
    return max(sum(1 for t in times if s <= t < s + 1.0) for s in times)


async def test_pacer_and_window_hold_the_rate_evenly_in_every_sliding_second() -> None:
    """The window holds the limit; the pacer spreads requests so that it rarely has to."""
    limiter = make_limiter(100.0, pacing.GUARD)
    window = pacing.SlidingWindow(100.0)
    loop = asyncio.get_running_loop()
    times: list[float] = []
    end = loop.time() + 2.2
    while loop.time() < end:
        await limiter.acquire()
        (await window.acquire()).written()
        times.append(loop.time())
    assert worst_second(times) <= 100
    assert len(times) >= 0.95 * 2.2 * 100  # and it still delivers about the rate
    tenth = max(sum(1 for t in times if s <= t < s + 0.1) for s in times)
    assert tenth <= 10 + 4  # no burst beyond the pacer's small bucket


async def test_nothing_leaves_after_the_deadline_and_ttls_end_with_it(world: World) -> None:
    """A controllable clock: each reading advances it 50 ms, so the deadline (20 s after the
    start) falls in the middle of the run."""
    campaign = await world.campaign(400)
    moments = iter(NOW + timedelta(milliseconds=50 * i) for i in range(1_000_000))
    deadline = NOW + timedelta(seconds=20)
    dispatcher = world.dispatcher(
        campaign,
        max_in_flight=5,
        clock=lambda: next(moments),
        window=windows.Window(deadline=deadline),
    )
    assert await dispatcher.run() is True  # done: nothing more may be sent
    sent = await world.sent()
    counts = await world.store.recipients.counts(campaign.id)
    assert 0 < len(sent) < 400
    assert counts == {Status.QUEUED: len(sent), Status.PENDING: 400 - len(sent)}
    # Each message's ttl ends by the deadline (or is Sinch's least, 3 s, just before it).
    ttls = [int(m["ttl"].rstrip("s")) for m in sent]
    assert all(3 <= t <= 20 for t in ttls)
    assert ttls[0] > ttls[-1]


# --- quiet hours, with a clock that runs from a chosen instant ----------------------------------

NIGHT = quiet.Plan(quiet.QuietHours.parse("21:00-08:00"), "UTC")


def clock_from(start: datetime) -> Callable[[], datetime]:
    """Real time passing, from ``start``."""
    origin = time.monotonic()
    return lambda: start + timedelta(seconds=time.monotonic() - origin)


async def _zoned_campaign(world: World, zones: list[str | None]) -> repo.CampaignRow:
    campaign = await world.campaign(0)
    numbers = us_numbers(len(zones))
    params = [f'{{"name":"n{i}","code":"{i}"}}' for i in range(len(zones))]
    await world.store.ingest.write(campaign.id, "SMS", loaded(numbers, params, zones), NOW)
    return campaign


async def test_a_recipient_whose_window_opens_mid_run_is_sent_then(world: World) -> None:
    # 07:59:58.5 in New York: its recipient waits 1.5 s; London and the campaign's zone (UTC)
    # are open; Tokyo (21:59) is quiet for the night: deferred, not skipped.
    start = datetime(2026, 11, 21, 12, 59, 58, 500000, tzinfo=UTC)
    campaign = await _zoned_campaign(
        world, ["Europe/London", "America/New_York", None, "Asia/Tokyo"]
    )
    dispatcher = world.dispatcher(
        campaign, clock=clock_from(start), quiet_hours=NIGHT, idle_limit=5.0
    )
    began = time.monotonic()
    assert await dispatcher.run() is True
    waited = time.monotonic() - began
    assert dispatcher.deferred_until == datetime(2026, 11, 21, 23, 0, tzinfo=UTC)  # 08:00 JST
    sent = await world.sent()
    by_identity = {m["identity"]: m for m in sent}
    assert sorted(by_identity) == us_numbers(3)  # London, New York, UTC; not Tokyo
    assert waited >= 1.4
    london, new_york, fallback = (by_identity[n] for n in us_numbers(3))
    assert london["accepted_time"] < new_york["accepted_time"]
    # Each ttl ends when the recipient's window closes: 21:00 in London, 21:00 EST.
    assert abs(int(london["ttl"][:-1]) - 8 * 3600) <= 2
    assert abs(int(new_york["ttl"][:-1]) - 13 * 3600) <= 2
    assert abs(int(fallback["ttl"][:-1]) - 8 * 3600) <= 2
    rows = {row[0]: row for row in await report(world, campaign)}
    assert rows[4][4] == Status.PENDING.value
    assert await world.store.recipients.next_due_at(campaign.id, NOW) == dispatcher.deferred_until


async def test_retries_that_fall_due_in_the_night_wait_for_the_morning(world: World) -> None:
    # A row back to PENDING in a zone whose night has begun is deferred when claimed.
    start = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)  # 21:00 in New York: its night begins
    campaign = await _zoned_campaign(world, ["America/New_York"])
    deferred = quiet.Gate(NIGHT).held_until("America/New_York", start)
    assert deferred == datetime(2026, 11, 21, 13, 0, tzinfo=UTC)
    claims = await world.store.recipients.claim(campaign.id, 10, start)
    dispatcher = world.dispatcher(campaign, clock=lambda: start, quiet_hours=NIGHT)
    assert await dispatcher.sender.sendable(claims) == []
    assert await world.store.recipients.next_due_at(campaign.id, NOW) == deferred
    (row,) = await report(world, campaign)
    assert row[4] == Status.PENDING.value and row[11] == 0  # the attempt is not counted
    assert await world.sent() == []


@pytest.mark.parametrize("mode", ["individual", "batch"])
async def test_credentials_refused_mid_run_stop_the_run_and_fail_nobody(
    world: World, mode: str
) -> None:
    campaign = await world.campaign(300)
    settings: dict[str, Any] = {"rate": 100.0} if mode == "individual" else {"rate": 20.0}
    batch: dict[str, Any] = {"mode": "batch", "batch_size": 10} if mode == "batch" else {}
    dispatcher = world.dispatcher(campaign, **settings, **batch)

    async def revoke() -> None:
        while len(await world.sent()) < 20:
            await asyncio.sleep(0.02)
        await world.control("PATCH", "settings", {"key_secret": "revoked-key-secret"})
        await world.control("POST", "expire-tokens")

    revoking = asyncio.create_task(revoke())
    with pytest.raises(errors.RunInterruptedError, match="refused the credentials"):
        await dispatcher.run()
    await revoking
    counts = await world.store.recipients.counts(campaign.id)
    sent = Counter(m["identity"] for m in await world.sent())
    assert Status.FAILED not in counts and Status.IN_FLIGHT not in counts
    assert counts[Status.QUEUED] == len(sent) and counts[Status.PENDING] == 300 - len(sent)

    # The key fixed, the next run sends the rest, nobody twice.
    await world.control("PATCH", "settings", {"key_secret": config.SANDBOX_KEY_SECRET})
    again = world.dispatcher(campaign, rate=None, **batch)
    assert await again.run() is True
    sent = Counter(m["identity"] for m in await world.sent())
    assert len(sent) == 300 and max(sent.values()) == 1
