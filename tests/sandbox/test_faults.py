"""Rate limiting, 429 storms and injected faults (500/503, latency, dropped connections)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import aiohttp
import pytest

from campaign.sandbox import ratelimit

from .helpers import PROJECT, Api, SandboxFactory, text_send

RATE_LIMITED = {
    "error": {
        "code": 429,
        "message": "Too many requests",
        "status": "RESOURCE_EXHAUSTED",
        "details": [],
    }
}


# --- pure ----------------------------------------------------------------------------------------


def test_sliding_window_limiter() -> None:
    limiter = ratelimit.SlidingWindowLimiter()
    assert [limiter.admit(0.1 * i, 3) for i in range(5)] == [True, True, True, False, False]
    assert limiter.retry_after(0.45, 3) == 1
    assert limiter.admit(1.0, 3)  # the request at 0.0 left the window
    assert not limiter.admit(1.05, 3)
    assert limiter.admit(1.15, 3)  # the one at 0.1 left too
    assert all(limiter.admit(float(i), 0) for i in range(100))  # 0: unlimited


def test_peak_meter() -> None:
    meter = ratelimit.PeakMeter()
    for t in (0.0, 0.5, 0.9, 1.2, 1.3, 1.4, 3.0):
        meter.record(t)
    assert meter.peak == 5  # 0.5, 0.9, 1.2, 1.3, 1.4


def test_storm_windows() -> None:
    assert ratelimit.storm_remaining(5.0, 0.0, 0.0, 1.0) == 0.0
    assert ratelimit.storm_remaining(0.5, 0.0, 10.0, 2.0) == 0.0  # none before the first period
    assert ratelimit.storm_remaining(10.5, 0.0, 10.0, 2.0) == pytest.approx(1.5)
    assert ratelimit.storm_remaining(12.5, 0.0, 10.0, 2.0) == 0.0
    assert ratelimit.storm_remaining(21.0, 0.0, 10.0, 2.0) == pytest.approx(1.0)


# --- over HTTP -----------------------------------------------------------------------------------


async def test_rate_limit_429_with_retry_after_and_max_window(make_sandbox: SandboxFactory) -> None:
    async with make_sandbox(rate_limit=20) as (server, api):
        results = await asyncio.gather(*(api.send(text_send()) for _ in range(40)))
        statuses = Counter(status for status, _, _ in results)
        assert statuses == {200: 20, 429: 20}
        for status, body, headers in results:
            if status == 429:
                assert body == RATE_LIMITED
                assert int(headers["Retry-After"]) >= 1
        stats = await api.inspect("stats")
        assert stats["rate_limited"] == 20
        assert stats["requests"] == 40
        assert stats["accepted_messages"] == 20
        assert stats["max_window"] == 40  # received, not admitted
        assert server.state.stats.tokens_issued == 1  # the token call is not rate limited

        await asyncio.sleep(1.05)
        assert (await api.send(text_send()))[0] == 200


async def test_rate_limit_can_be_lifted_at_runtime(make_sandbox: SandboxFactory) -> None:
    async with make_sandbox(rate_limit=5) as (_, api):
        await api.patch(rate_limit=0)
        results = await asyncio.gather(*(api.send(text_send()) for _ in range(50)))
        assert {status for status, _, _ in results} == {200}


async def test_429_storm(api: Api) -> None:
    await api.patch(storm_every_s=0.15, storm_duration_s=0.15)
    assert (await api.send(text_send()))[0] == 200  # storms start one period in
    await asyncio.sleep(0.2)
    for call in (api.send(text_send()), api.call("GET", f"/v1/projects/{PROJECT}/messages/x")):
        status, body, headers = await call
        assert status == 429 and body == RATE_LIMITED
        assert int(headers["Retry-After"]) >= 1
    await api.patch(storm_every_s=0, storm_duration_s=0)
    assert (await api.send(text_send()))[0] == 200


async def statuses_with(make_sandbox: SandboxFactory, n: int, **settings: object) -> list[int]:
    async with make_sandbox(**settings) as (_, api):
        out = [(await api.send(text_send()))[0] for _ in range(n)]
        stats = await api.inspect("stats")
        assert stats["errors_injected"] == sum(1 for s in out if s >= 500)
        assert stats["accepted_messages"] == out.count(200)
        return out


async def test_injected_500_and_503_follow_the_seeded_rates(make_sandbox: SandboxFactory) -> None:
    rates = {"error_rate_500": 0.3, "error_rate_503": 0.2, "seed": 7}
    first = await statuses_with(make_sandbox, 300, **rates)
    counts = Counter(first)
    assert set(counts) == {200, 500, 503}
    assert 60 <= counts[500] <= 120
    assert 35 <= counts[503] <= 85
    assert await statuses_with(make_sandbox, 300, **rates) == first  # same seed, same faults
    assert await statuses_with(make_sandbox, 300, **{**rates, "seed": 8}) != first


async def test_injected_error_shapes(make_sandbox: SandboxFactory) -> None:
    async with make_sandbox(error_rate_503=1.0) as (_, api):
        status, body, _ = await api.send(text_send())
        assert status == 503
        assert body["error"]["status"] == "UNAVAILABLE" and body["error"]["code"] == 503
        await api.patch(error_rate_503=0.0, error_rate_500=1.0)
        status, body, _ = await api.send(text_send())
        assert status == 500 and body["error"]["status"] == "INTERNAL"
        assert (await api.inspect("messages"))["total"] == 0


async def test_latency_and_jitter(make_sandbox: SandboxFactory) -> None:
    async with make_sandbox(latency_ms=80, jitter_ms=40) as (_, api):
        started = time.perf_counter()
        assert (await api.send(text_send()))[0] == 200
        elapsed = time.perf_counter() - started
        assert 0.08 <= elapsed < 0.5


async def test_dropped_connection_gets_no_answer_but_message_is_recorded(
    make_sandbox: SandboxFactory,
) -> None:
    async with make_sandbox(drop_rate=1.0) as (_, api):
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await api.send(text_send("dropped"))
        listed = await api.inspect("messages")
        assert listed["total"] == 1
        assert listed["messages"][0]["message"] == {"text_message": {"text": "dropped"}}
        stats = await api.inspect("stats")
        assert stats["dropped"] == 1 and stats["accepted_messages"] == 1
        # Invalid requests are answered: only accepted work is dropped.
        status, _, _ = await api.send({"app_id": "x"})
        assert status == 400
