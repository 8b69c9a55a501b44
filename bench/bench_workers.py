"""Two `campaign run` processes sharing one campaign on Postgres, at 800 requests/s together.

Reproduce:  .venv/bin/python bench/bench_workers.py            (3 runs of 20,000 recipients)
            .venv/bin/python bench/bench_workers.py --rows 50000 --runs 1

Each worker holds its share (400/s) in its own sliding window of writes; the sandbox (its own
process, 200 +- 20 ms latency) times every arrival: the rate over the whole run (first to last
arrival), the largest sliding second, and 429s. Needs Postgres at CAMPAIGN_TEST_POSTGRES_URL
(default postgresql://postgres@127.0.0.1:5432/test); each run gets a database of its own.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_dispatch import arrivals, at_arrival
from bench.common import sandbox_process, write_recipients
from campaign import config

ADMIN = os.environ.get("CAMPAIGN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def one_run(
    workdir: Path, rows: int, workers: int, run: int, rate: int, profile: bool = False
) -> None:
    name = f"bench_workers_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = ADMIN.rsplit("/", 1)[0] + f"/{name}"
    try:
        with sandbox_process("--latency-ms", "200", "--jitter-ms", "20", history=True) as sandbox:
            subprocess.run(
                [sys.executable, "-m", "campaign", "--database", url, "db", "upgrade"],
                check=True,
                capture_output=True,
            )
            conf = workdir / "config.toml"
            conf.write_text(
                f'[sinch]\nauth_url = "{sandbox}/oauth2/token"\nconversation_url = "{sandbox}"\n'
                f'batch_url = "{sandbox}"\nsandbox = false\n[database]\nurl = "{url}"\n'
                f"[sending]\nrequests_per_second = {rate}\n"
            )
            recipients = workdir / f"r{rows}.csv"
            if not recipients.exists():
                write_recipients(recipients, rows)
            campaign = workdir / "campaign.toml"
            campaign.write_text(
                f'name = "workers"\nrecipients = "{recipients}"\nmode = "individual"\n'
                'channel = "SMS"\nidentity_column = "phone"\n'
                '[message]\ntext_message = { text = "Hi ${first_name}, ${code}" }\n'
            )
            env = {
                **{
                    k: v for k, v in os.environ.items() if not k.startswith(("SINCH_", "CAMPAIGN_"))
                },
                "SINCH_PROJECT_ID": config.SANDBOX_PROJECT_ID,
                "SINCH_APP_ID": config.SANDBOX_APP_ID,
                "SINCH_KEY_ID": config.SANDBOX_KEY_ID,
                "SINCH_KEY_SECRET": config.SANDBOX_KEY_SECRET,
                "CAMPAIGN_CONFIG": str(conf),
            }
            command = [sys.executable, "-m", "campaign", "run", str(campaign)]
            processes = [
                subprocess.Popen(command, env=env, cwd=workdir,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                for _ in range(workers)
            ]  # fmt: skip
            codes = [p.wait(timeout=600) for p in processes]
            timed = arrivals(sandbox)
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(
        f"{workers} workers at {rate}/s, {rows:,} recipients, run {run}: exit codes {codes}, "
        f"{at_arrival(timed)}"
    )
    if profile:
        print("    arrivals per second:", per_second(timed))
        print(f"    largest sliding second ends {largest_at(timed):.2f} s after the first arrival")


def per_second(timed: list[tuple[float, int]]) -> list[int]:
    """Arrivals in each whole second from the first."""
    first = min(t for t, _ in timed)
    counts = [0] * (int(max(t for t, _ in timed) - first) + 1)
    for t, _ in timed:
        counts[int(t - first)] += 1
    return counts


def largest_at(timed: list[tuple[float, int]]) -> float:
    """When the sliding second with the most arrivals ends, from the first arrival."""
    moments = sorted(t for t, _ in timed)
    best = start = 0
    at = moments[0]
    for end, moment in enumerate(moments):
        while moments[start] <= moment - 1.0:
            start += 1
        if end - start + 1 > best:
            best, at = end - start + 1, moment
    return at - moments[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate", type=int, default=800, help="requests/s, all workers")
    parser.add_argument("--profile", action="store_true", help="print arrivals per second")
    args = parser.parse_args()
    print(f"command: {' '.join([sys.executable, *sys.argv])}")
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(1, args.runs + 1):
            started = time.monotonic()
            one_run(Path(tmp), args.rows, args.workers, run, args.rate, args.profile)
            print(f"    ({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
