"""The webhook receiver under load: signed callbacks/s sustained, latency, none lost.

Reproduce:  .venv/bin/python bench/bench_receiver.py                 (40,000 callbacks, ~20 s)
            .venv/bin/python bench/bench_receiver.py --count 100000 --connections 128
            .venv/bin/python bench/bench_receiver.py --no-recipients  (events match nobody)
            .venv/bin/python bench/bench_receiver.py --profile        (cProfile of the receiver)

The receiver runs in this process on a SQLite file in a temporary directory, with a campaign
whose recipients were sent (QUEUED with message ids), so every callback is also applied to a
recipient. The load generator is another process: it signs every MESSAGE_DELIVERY callback
beforehand (unique nonces, current timestamps), then posts them over ``--connections``
keep-alive HTTP/1.1 connections, one request in flight on each, with a minimal asyncio client
(so that the generator, not the receiver, stays the cheap side on a 2-core machine). It
reports the sustained rate and the latency of every request; this process then counts the
rows in the event table: sent must equal stored.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from campaign.receiver import ReceiverServer, ReceiverSettings
from campaign.secrets import Secret
from campaign.sinch import signature, wire
from campaign.store import repository as repo

CAMPAIGN_KEY = "BENCH"
SECRET_ENV = "BENCH_RECEIVER_SECRET"


# --- the load generator (its own process) ------------------------------------------------------


def callback(i: int, with_key: bool) -> bytes:
    """MESSAGE_DELIVERY number ``i``: about 560 bytes, like Sinch's."""
    key = wire.recipient_key(CAMPAIGN_KEY, i + 1) if with_key else ""
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return orjson.dumps(
        {
            "app_id": "01EB37HMH1M6SV18BSNS3G135H",
            "accepted_time": stamp,
            "event_time": stamp,
            "project_id": "c36f3d3d-1513-4edd-ae42-11995557ff61",
            "message_metadata": key,
            "correlation_id": key,
            "message_delivery_report": {
                "message_id": f"01BENCH{i:019d}",
                "conversation_id": "",
                "status": "DELIVERED",
                "channel_identity": {
                    "channel": "SMS",
                    "identity": f"1201{2000000 + i:07d}",
                    "app_id": "",
                },
                "contact_id": "",
                "metadata": key,
                "processing_mode": "DISPATCH",
            },
        }
    )


def requests(host: str, path: str, count: int, secret: str, with_key: bool) -> list[bytes]:
    """Every request, complete on the wire: headers (signed now) and body."""
    out = []
    now = int(time.time())
    for i in range(count):
        body = callback(i, with_key)
        headers = signature.sign(
            secret, body, timestamp=now, nonce=f"N{i:012d}{secrets.token_hex(6)}"
        )
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            + "\r\n"
        )
        out.append(head.encode() + body)
    return out


async def post_all(url: str, wire: list[bytes], connections: int, seconds: float) -> dict[str, Any]:
    host_port = url.split("/")[2]
    host, port = host_port.rsplit(":", 1)
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    next_index = 0
    deadline = time.perf_counter() + seconds

    async def connection() -> None:
        nonlocal next_index
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while next_index < len(wire) and time.perf_counter() < deadline:
                request = wire[next_index]
                next_index += 1
                started = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = head[9:12].decode()
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    started = time.perf_counter()
    cpu_started = time.process_time()
    await asyncio.gather(*(connection() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    latencies.sort()
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {
        "sent": len(latencies),
        "statuses": statuses,
        "elapsed": elapsed,
        "cpu": cpu,
        "p50_ms": q[49] * 1000,
        "p99_ms": q[98] * 1000,
        "max_ms": latencies[-1] * 1000 if latencies else 0.0,
    }


def generate(args: argparse.Namespace) -> None:
    secret = os.environ[SECRET_ENV]
    path = "/" + args.url.split("/", 3)[3]
    wire = requests(args.url.split("/")[2], path, args.count, secret, not args.no_recipients)
    result = asyncio.run(post_all(args.url, wire, args.connections, args.seconds))
    print(orjson.dumps(result).decode(), flush=True)


# --- the receiver (this process) ---------------------------------------------------------------


async def sent_campaign(store: repo.Store, rows: int) -> None:
    """A campaign of ``rows`` recipients, all sent: QUEUED with the message ids the callbacks name."""
    now = datetime.now(UTC)
    campaign = await store.campaigns.create(
        name="bench",
        key=CAMPAIGN_KEY,
        mode="individual",
        channel="SMS",
        definition="{}",
        source="-",
        now=now,
    )
    identities = [f"+1201{2000000 + i:07d}" for i in range(rows)]
    frame = pl.DataFrame(
        {
            "row": pl.Series(range(1, rows + 1), dtype=pl.UInt64),
            "identity_raw": identities,
            "identity": identities,
            "reason": pl.Series([None] * rows, dtype=pl.String),
            "parameters": ["{}"] * rows,
        }
    )
    for start in range(0, rows, 20_000):
        await store.ingest.write(campaign.id, "SMS", frame.slice(start, 20_000), now)
    while claims := await store.recipients.claim(campaign.id, 5000, now):
        await store.recipients.record(
            [repo.Sent(c.id, f"01BENCH{c.position - 1:019d}") for c in claims], now
        )


async def run(args: argparse.Namespace, workdir: Path) -> int:
    secret = secrets.token_urlsafe(24)
    store = await repo.Store.open(f"sqlite:///{workdir / 'bench.db'}")
    try:
        if not args.no_recipients:
            await sent_campaign(store, args.count)
        settings = ReceiverSettings(secret=Secret(secret))
        profiler = cProfile.Profile() if args.profile else None
        async with ReceiverServer(store, settings) as receiver:
            generator = await asyncio.create_subprocess_exec(
                sys.executable,
                __file__,
                "--generate",
                receiver.url,
                "--count",
                str(args.count),
                "--connections",
                str(args.connections),
                "--seconds",
                str(args.seconds),
                *(["--no-recipients"] if args.no_recipients else []),
                env={**os.environ, SECRET_ENV: secret},
                stdout=subprocess.PIPE,
            )
            if profiler is not None:
                profiler.enable()
            cpu_started = time.process_time()
            out, _ = await generator.communicate()
            receiver_cpu = time.process_time() - cpu_started
            generator_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
            if profiler is not None:
                profiler.disable()
            result = orjson.loads(out)
            drain_started = time.perf_counter()
            while not args.no_recipients and receiver.stats.applied < receiver.stats.stored:
                if time.perf_counter() - drain_started > 120:
                    break
                await asyncio.sleep(0.05)
            apply_lag = time.perf_counter() - drain_started
        stats = receiver.stats
        stored = await store.events.count()
        waiting = await store.events.waiting()
    finally:
        await store.close()

    ok = result["statuses"].get("200", 0)
    rate = result["sent"] / result["elapsed"]
    lines = [
        f"callbacks sent          {result['sent']:,} over {args.connections} keep-alive connections",
        f"answers                 {dict(result['statuses'])}",
        f"sustained               {rate:,.0f} signed callbacks/s ({result['elapsed']:.2f} s)",
        f"latency                 p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, "
        f"max {result['max_ms']:.1f} ms",
        f"CPU while posting       receiver {receiver_cpu:.2f} s "
        f"({receiver_cpu / result['elapsed']:.0%} of a core, SQLite threads included), "
        f"generator {generator_cpu.ru_utime + generator_cpu.ru_stime:.2f} s ("
        f"{result['cpu']:.2f} s of it posting, the rest signing)",
        f"in the event table      {stored:,} ({'none lost' if stored == ok == result['sent'] else 'MISMATCH'})",
        f"group commits           {stats.commits:,} (avg {stats.stored / max(stats.commits, 1):.0f}, "
        f"largest {stats.largest_commit})",
        f"applied to recipients   {stats.applied:,} ({waiting:,} waiting; "
        f"{apply_lag:.2f} s after the last answer)",
        f"reproduce               .venv/bin/python bench/bench_receiver.py --count {args.count} "
        f"--connections {args.connections}" + (" --no-recipients" if args.no_recipients else ""),
    ]
    print("\n".join(lines))
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
    return 0 if stored == ok == result["sent"] else 1


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=40_000)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=120.0, help="stop posting after this long")
    parser.add_argument("--no-recipients", action="store_true", help="callbacks match no recipient")
    parser.add_argument("--profile", action="store_true", help="cProfile the receiver")
    parser.add_argument("--generate", metavar="URL", dest="url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.url:
        generate(args)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-receiver-") as workdir:
        return asyncio.run(run(args, Path(workdir)))


if __name__ == "__main__":
    sys.exit(main())
