"""Pacing by the app's MT queue: a campaign ten times larger than the queue, sent against a
sandbox whose app drains 500 messages/s and holds 5,000 (the mark, at queue_share 0.8: 4,000).

Reproduce:  .venv/bin/python bench/bench_queue.py                 (50,000 recipients, both modes)
            .venv/bin/python bench/bench_queue.py --rows 20000 --mode batch

The sandbox runs as its own process; the bench reads the app's queue (GET apps/{app}) and the
sandbox's counters four times a second. It prints, per mode: queue-full refusals and rate-limit
429s (both must be 0), the largest queue seen, the submission rate once the queue has reached
its mark (messages accepted per second, from the first reading at 90% of the mark to the
last submission) against the drain rate, and the wall time.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import sandbox_process, sandbox_stats, write_recipients
from campaign import config

OUTBOUND = 500
LIMIT = 5_000
MARK = 0.8 * LIMIT


def _token(url: str) -> str:
    answer = requests.post(
        f"{url}/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(config.SANDBOX_KEY_ID, config.SANDBOX_KEY_SECRET),
        timeout=10,
    )
    return str(answer.json()["access_token"])


def _watch(url: str, stop: threading.Event, samples: list[tuple[float, int, int]]) -> None:
    """(time, queue size, messages accepted) four times a second until ``stop``."""
    app = f"{url}/v1/projects/{config.SANDBOX_PROJECT_ID}/apps/{config.SANDBOX_APP_ID}"
    headers = {"Authorization": f"Bearer {_token(url)}"}
    while not stop.is_set():
        size = requests.get(app, headers=headers, timeout=10).json()["queue_stats"]
        accepted = sandbox_stats(url)["accepted_messages"]
        samples.append((time.monotonic(), int(size["outbound_size"]), int(accepted)))
        stop.wait(0.25)


def one_run(workdir: Path, rows: int, mode: str) -> None:
    args = ("--outbound-rate", str(OUTBOUND), "--queue-limit", str(LIMIT))
    with sandbox_process(*args) as url:
        conf = workdir / f"config-{mode}.toml"
        conf.write_text(
            f'[sinch]\nauth_url = "{url}/oauth2/token"\nconversation_url = "{url}"\n'
            f'batch_url = "{url}"\nsandbox = false\n[database]\n'
            f'url = "sqlite:///{workdir / f"{mode}.db"}"\n'
            "[sending]\nrequests_per_second = 800\nqueue_share = 0.8\n"
        )
        recipients = workdir / f"r{rows}.csv"
        if not recipients.exists():
            write_recipients(recipients, rows)
        campaign = workdir / f"{mode}.toml"
        campaign.write_text(
            f'name = "queue-{mode}"\nrecipients = "{recipients}"\nmode = "{mode}"\n'
            'channel = "SMS"\nidentity_column = "phone"\n'
            '[message]\ntext_message = { text = "Hi ${first_name}, ${code}" }\n'
        )
        env = {
            "PATH": "/usr/bin:/bin",
            "SINCH_PROJECT_ID": config.SANDBOX_PROJECT_ID,
            "SINCH_APP_ID": config.SANDBOX_APP_ID,
            "SINCH_KEY_ID": config.SANDBOX_KEY_ID,
            "SINCH_KEY_SECRET": config.SANDBOX_KEY_SECRET,
            "CAMPAIGN_CONFIG": str(conf),
        }
        samples: list[tuple[float, int, int]] = []
        stop = threading.Event()
        watcher = threading.Thread(target=_watch, args=(url, stop, samples), daemon=True)
        watcher.start()
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "campaign", "run", str(campaign)],
            env=env,
            cwd=workdir,
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.monotonic() - started
        stop.set()
        watcher.join()
        stats = sandbox_stats(url)
    print(f"{mode}: exit {done.returncode}, {rows:,} recipients, wall {wall:.1f} s")
    print(
        f"    queue-full refusals {stats['queue_full']}, rate-limit 429s {stats['rate_limited']},"
        f" messages accepted {stats['accepted_messages']:,}"
    )
    print(
        f"    largest queue seen {max(s[1] for s in samples):,} (mark {MARK:,.0f}, limit {LIMIT:,})"
    )
    _steady(samples, rows)


def _steady(samples: list[tuple[float, int, int]], rows: int) -> None:
    """The submission rate from the first reading at 90% of the mark to the last submission."""
    at_mark = next((i for i, s in enumerate(samples) if s[1] >= 0.9 * MARK), None)
    last = next((i for i, s in enumerate(samples) if s[2] >= rows), len(samples) - 1)
    if at_mark is None or last <= at_mark:
        print("    the queue never reached its mark: no steady state to measure")
        return
    (t0, _, a0), (t1, _, a1) = samples[at_mark], samples[last]
    rate = (a1 - a0) / (t1 - t0)
    sizes = sorted(s[1] for s in samples[at_mark:last])
    print(
        f"    at the mark: {rate:,.1f} messages/s submitted over {t1 - t0:.1f} s"
        f" ({rate / OUTBOUND:.3f} of the drain rate {OUTBOUND}/s), queue median"
        f" {sizes[len(sizes) // 2]:,}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--mode", choices=("individual", "batch"), action="append")
    args = parser.parse_args()
    print(f"command: {' '.join([sys.executable, *sys.argv])}")
    with tempfile.TemporaryDirectory() as tmp:
        for mode in args.mode or ["individual", "batch"]:
            one_run(Path(tmp), args.rows, mode)


if __name__ == "__main__":
    main()
