"""The sandbox's own CPU per Batch API request: how much of the 2-core machine it takes.

Reproduce:  .venv/bin/python bench/bench_sandbox.py                   (300 batches, ~10 s)
            .venv/bin/python bench/bench_sandbox.py --batches 1000

``campaign sandbox --no-history --latency-ms 0`` runs in its own process with a rate limit high
enough never to answer 429. This process builds ``--batches`` bodies of 1,000 recipients each
beforehand (the entries ``campaign run`` sends: an SMS number, two parameters, a key), then
posts them, 8 at a time. It prints the sandbox's CPU (user + system, from /proc) per batch; run
it on two commits in turns to compare them.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import sys
import time
from pathlib import Path

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import sandbox_with_pid
from campaign import config
from campaign.sinch import wire

CONCURRENCY = 8


def cpu_seconds(pid: int) -> float:
    """User + system CPU of process ``pid`` so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bodies(count: int) -> list[bytes]:
    key = "01KAAAAAAAAAAAAAAAAAAAAAAA"
    made = []
    for b in range(count):
        entries = wire.batch_entries(
            "SMS",
            (
                (
                    f"+1201{2_000_000 + b * 1000 + i}",
                    orjson.dumps({"first_name": f"Name{i}", "code": f"{i:06d}"}).decode(),
                    wire.recipient_key(key, b * 1000 + i),
                )
                for i in range(1000)
            ),
        )
        body = wire.batch_body(
            message={"text_message": {"text": "Hi ${first_name}, your code is ${code}"}},
            entries=entries,
            campaign_key=key,
            tag=f"{key}:{b}",
            send={},
        )
        made.append(orjson.dumps({"app_id": config.SANDBOX_APP_ID, **body}))
    return made


async def replay(url: str, pid: int, payloads: list[bytes]) -> tuple[float, float]:
    """(wall seconds, sandbox CPU seconds) to have every batch accepted."""
    async with aiohttp.ClientSession() as session:
        pair = f"{config.SANDBOX_KEY_ID}:{config.SANDBOX_KEY_SECRET}".encode()
        async with session.post(
            f"{url}/oauth2/token",
            data={"grant_type": "client_credentials"},
            headers={"Authorization": "Basic " + base64.b64encode(pair).decode()},
        ) as answer:
            token = (await answer.json())["access_token"]
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        target = f"{url}/v1/projects/{config.SANDBOX_PROJECT_ID}/messages"
        room = asyncio.Semaphore(CONCURRENCY)

        async def post(payload: bytes) -> None:
            async with room, session.post(target, data=payload, headers=headers) as answer:
                if answer.status != 200:
                    raise RuntimeError(
                        f"the sandbox answered {answer.status}: {await answer.text()}"
                    )
                await answer.read()

        cpu, started = cpu_seconds(pid), time.perf_counter()
        await asyncio.gather(*(post(payload) for payload in payloads))
        return time.perf_counter() - started, cpu_seconds(pid) - cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=300)
    args = parser.parse_args()
    print(f"command: {' '.join([sys.executable, *sys.argv])}")
    payloads = bodies(args.batches)
    sandbox = sandbox_with_pid("--latency-ms", "0", "--jitter-ms", "0", "--rate-limit", "1000000")
    with sandbox as (url, pid):
        wall, cpu = asyncio.run(replay(url, pid, payloads))
    n = args.batches
    print(f"{n:,} batches of 1,000 recipients, {CONCURRENCY} at a time")
    print(f"    wall            {wall:.2f} s ({n / wall:,.0f} batches/s)")
    print(f"    sandbox CPU     {cpu:.2f} s = {cpu / n * 1000:.2f} ms per batch")


if __name__ == "__main__":
    main()
