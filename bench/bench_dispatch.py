"""Individual sends: (a) the held rate at 800/s with 200 ms latency, (b) the engine's ceiling.

Reproduce:  .venv/bin/python bench/bench_dispatch.py            (both, ~9 minutes)
            .venv/bin/python bench/bench_dispatch.py --only a --rows 8000 --runs 3

(a) 8,000 and 100,000 recipients (3 runs each) at 800 requests/s against a sandbox with
    200 +- 20 ms latency, measured at arrival by the sandbox's own process: the rate over the
    whole run (first to last arrival), the largest sliding second, 429s.
(b) no rate limit, no latency: the engine (claim, render, send, record in SQLite) against a bare
    aiohttp loop posting prebuilt bodies with the same concurrency, in the same run.
The sandbox runs in its own process. The figures are printed as one table.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import orjson
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Timer, sandbox_process, sinch_config, write_recipients
from campaign import estimate, loading, rendering
from campaign.models import Channel, Status
from campaign.retry import RetryPolicy
from campaign.sending import SendLoop, SendSettings
from campaign.sinch import wire
from campaign.sinch.client import SinchClient, open_session
from campaign.store.repository import Store

MESSAGE = {"text_message": {"text": "Hi ${first_name}, your code is ${code}"}}


async def load(store: Store, csv_path: Path) -> int:
    campaign = await store.campaigns.create(
        name="bench",
        key="BENCH",
        mode="individual",
        channel="SMS",
        definition="{}",
        source=str(csv_path),
        now=datetime.now(UTC),
    )
    source = loading.open_recipients(
        loading.LoadSpec(
            path=csv_path,
            channel=Channel.SMS,
            identity_column="phone",
            default_country="US",
            parameters=("first_name", "code"),
            defaults={},
        )
    )
    for frame in source.slices():
        await store.ingest.write(campaign.id, "SMS", frame, datetime.now(UTC))
    return campaign.id


async def engine_run(
    url: str, workdir: Path, rows: int, rate: float | None, in_flight: int
) -> dict[str, float]:
    csv_path = workdir / f"r{rows}.csv"
    write_recipients(csv_path, rows)
    db = workdir / f"bench-{rate}.db"
    for leftover in workdir.glob(f"{db.name}*"):  # an earlier run's database and its WAL
        leftover.unlink()
    store = await Store.open(f"sqlite:///{db}")
    try:
        await load(store, csv_path)
        campaign = await store.campaigns.find("bench")
        assert campaign is not None
        config = sinch_config(url)
        async with open_session(config) as session:
            client = SinchClient(config, session)
            await client.tokens.token()
            # As `campaign run` does: a registered worker, which writes ahead before requests
            # leave (one write per 25 ms of requests).
            worker = await store.workers.register(
                campaign.id, "bench", datetime.now(UTC), 10.0, exclusive=False
            )
            dispatcher = SendLoop(
                worker_id=worker,
                store=store,
                client=client,
                campaign=campaign,
                channel="SMS",
                template=rendering.MessageTemplate.compile(MESSAGE),
                send_fields={},
                settings=SendSettings(rate=rate, max_in_flight=in_flight, retry=RetryPolicy()),
                stop=asyncio.Event(),
            )
            samples: list[tuple[float, int]] = []

            async def sample() -> None:
                while True:
                    samples.append((time.perf_counter(), dispatcher.stats.requests))
                    await asyncio.sleep(0.25)

            sampler = asyncio.create_task(sample())
            with Timer() as timer:
                finished = await dispatcher.run()
            sampler.cancel()
        assert finished
        counts = await store.recipients.counts(campaign.id)
    finally:
        await store.close()
    return {
        "seconds": timer.seconds,
        "sent": dispatcher.stats.sent,
        "rate": dispatcher.stats.sent / timer.seconds,
        "steady": steady_rate(samples, rows),
        "queued": counts.get(Status.QUEUED, 0),
    }


def steady_rate(samples: list[tuple[float, int]], total: int) -> float:
    """Requests per second between 10% and 90% of the run (no ramp-up, no tail)."""
    start = next(s for s in samples if s[1] >= total * 0.1)
    end = next(s for s in samples if s[1] >= total * 0.9)
    return (end[1] - start[1]) / (end[0] - start[0])


async def bare_run(url: str, rows: int, in_flight: int) -> dict[str, float]:
    """The floor to compare with: prebuilt bodies, one session, a semaphore, nothing else."""
    config = sinch_config(url)
    template = rendering.MessageTemplate.compile(MESSAGE)
    bodies = [
        orjson.dumps(
            {
                "app_id": config.app_id,
                **wire.individual_body(
                    channel="SMS",
                    identity=f"+1201{3000000 + i:07d}",
                    message=template.render({"first_name": f"N{i}", "code": f"{i:06d}"}),
                    key=f"BARE-{i}",
                    send={},
                ),
            }
        )
        for i in range(rows)
    ]
    send_url = f"{url}/v1/projects/{config.project_id}/messages:send"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=in_flight)) as session:
        async with session.post(
            f"{url}/oauth2/token",
            data={"grant_type": "client_credentials"},
            headers={
                "Authorization": aiohttp.encode_basic_auth(
                    config.key_id, config.key_secret.reveal()
                )
            },
        ) as answer:
            token = (await answer.json())["access_token"]
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        gate = asyncio.Semaphore(in_flight)
        ok = 0

        async def one(body: bytes) -> None:
            nonlocal ok
            async with gate, session.post(send_url, data=body, headers=headers) as response:
                await response.read()
                ok += response.status == 200

        with Timer() as timer:
            await asyncio.gather(*(one(b) for b in bodies))
    return {"seconds": timer.seconds, "sent": ok, "rate": ok / timer.seconds}


def arrivals(url: str) -> list[tuple[float, int]]:
    """(arrival, status) of every request to the API that the sandbox process timed."""
    answer = requests.get(f"{url}/_sandbox/requests", timeout=60).json()
    return [(r["arrived"], r["status"]) for r in answer["requests"] if "/messages" in r["path"]]


def at_arrival(timed: list[tuple[float, int]]) -> str:
    """The figures of a run as the sandbox timed it: requests, the rate from the first to the
    last arrival, the largest sliding second, 429s."""
    moments = [t for t, _ in timed]
    whole = (len(moments) - 1) / (max(moments) - min(moments))
    limited = sum(1 for _, status in timed if status == 429)
    return (
        f"{len(moments):,} requests, whole run {whole:6.1f} requests/s at arrival, "
        f"largest sliding second {largest_second(moments)}, 429s {limited}"
    )


def largest_second(moments: list[float]) -> int:
    """The most arrivals in any sliding second."""
    moments = sorted(moments)
    largest = start = 0
    for end, moment in enumerate(moments):
        while moments[start] <= moment - 1.0:
            start += 1
        largest = max(largest, end - start + 1)
    return largest


def held_rate(workdir: Path, rows: int, run: int) -> None:
    """(a): one run at 800/s against 200 +- 20 ms, measured where the sandbox (its own
    process) counts arrivals: the whole run, first to last arrival."""
    with sandbox_process("--latency-ms", "200", "--jitter-ms", "20", history=True) as url:
        rate = 800.0
        result = asyncio.run(
            engine_run(url, workdir, rows, rate, estimate.default_max_in_flight(rate))
        )
        timed = arrivals(url)
    print(
        f"(a) {rows:>7,} recipients, run {run}: {at_arrival(timed)}, "
        f"sender's steady {result['steady']:.1f}/s, all queued {result['queued'] == rows}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", choices=["a", "b"])
    parser.add_argument(
        "--rows", type=int, nargs="+", default=[8_000, 100_000], help="rows for (a), each size"
    )
    parser.add_argument("--runs", type=int, default=3, help="runs of (a) for each size")
    parser.add_argument("--ceiling-rows", type=int, default=30_000, help="rows for (b)")
    args = parser.parse_args()
    print(f"command: {' '.join([sys.executable, *sys.argv])}")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if args.only in (None, "a"):
            for rows in args.rows:
                for run in range(1, args.runs + 1):
                    held_rate(workdir, rows, run)
        if args.only in (None, "b"):
            rows = args.ceiling_rows
            with sandbox_process("--rate-limit", "0") as url:
                bare = asyncio.run(bare_run(url, rows, 200))
            with sandbox_process("--rate-limit", "0") as url:
                engine = asyncio.run(engine_run(url, workdir, rows, None, 200))
            print(f"(b) ceiling, {rows:,} recipients, no limit, no latency, 200 in flight")
            print(f"    bare aiohttp loop   {bare['rate']:,.0f} requests/s")
            print(f"    engine (tracked)    {engine['rate']:,.0f} requests/s")
            print(f"    ratio               {engine['rate'] / bare['rate']:.2f}")


if __name__ == "__main__":
    main()
