"""Pacing by the app's MT queue: a campaign larger than the queue goes through it with no
queue-full refusal and no recipient failed for one. The sandbox's app drains at 500 messages/s
and holds 1,000; the campaign is submitted at up to 800 requests/s, so without pacing the
queue fills in about three seconds and every send after that is refused."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import requests

from tests.e2e.test_cli_e2e import Cli, read_report
from tests.e2e.test_cli_e2e import cli as cli
from tests.e2e.test_cli_e2e import sandbox as sandbox

ROWS = 3_000
OUTBOUND = 500
LIMIT = 1_000


def _recipients(cli: Cli) -> str:
    path = cli.tmp / "many.csv"
    path.write_text(
        "phone,first_name,code\n"
        + "".join(f"+1201{2000000 + i:07d},N{i},{i:06d}\n" for i in range(ROWS))
    )
    return str(path)


@pytest.mark.parametrize("mode", ["individual", "batch"])
def test_a_campaign_larger_than_the_queue_never_fills_it(
    cli: Cli, mode: str, database_url: str
) -> None:
    cli.use_database(database_url)
    cli.patch_sandbox(outbound_rate=OUTBOUND, queue_limit=LIMIT)
    with cli.config.open("a") as config:  # [sending] is its last table
        config.write("batch_size = 50\n")
    campaign = cli.campaign_file(recipients=cli.tmp / "many.csv", mode=f'"{mode}"')
    _recipients(cli)
    result = cli.run("run", str(campaign))
    assert result.returncode == 0, result.stderr
    stats = requests.get(f"{cli.sandbox.url}/_sandbox/stats", timeout=10).json()
    assert stats["queue_full"] == 0
    report = cli.tmp / "report.csv"
    assert cli.run("report", "e2e", "-o", str(report)).returncode == 0
    assert Counter(r["status"] for r in read_report(report)) == {"QUEUED": ROWS}
    identities = [m["identity"] for m in cli.sent()]
    assert len(identities) == len(set(identities)) == ROWS


@pytest.mark.parametrize("mode", ["individual", "batch"])
def test_a_full_queue_holds_sends_back_and_fails_nobody(
    cli: Cli, mode: str, database_url: str
) -> None:
    """The same campaign with ``queue_share = 0`` (the queue not read): Sinch refuses sends
    once the queue is full. Each refusal is back-pressure: the send waits and goes again,
    its attempt not counted (two attempts in all would fail anybody refused twice), never
    as the request rate's 429; everyone is sent exactly once."""
    cli.use_database(database_url)
    rows = 1_000
    cli.patch_sandbox(outbound_rate=400, queue_limit=200)
    with cli.config.open("a") as config:
        config.write("queue_share = 0\nmax_attempts = 2\nbatch_size = 50\n")
    path = cli.tmp / "many.csv"
    path.write_text(
        "phone,first_name,code\n"
        + "".join(f"+1201{2000000 + i:07d},N{i},{i:06d}\n" for i in range(rows))
    )
    campaign = cli.campaign_file(recipients=path, mode=f'"{mode}"')
    result = cli.run("run", str(campaign))
    assert result.returncode == 0, result.stderr
    stats = requests.get(f"{cli.sandbox.url}/_sandbox/stats", timeout=10).json()
    assert stats["queue_full"] > 0 and stats["rate_limited"] == 0
    assert "refused for a full queue" in result.stderr
    report = cli.tmp / "report.csv"
    assert cli.run("report", "e2e", "-o", str(report)).returncode == 0
    assert Counter(r["status"] for r in read_report(report)) == {"QUEUED": rows}
    identities = [m["identity"] for m in cli.sent()]
    assert len(identities) == len(set(identities)) == rows


def test_what_would_leave_the_queue_after_the_deadline_is_held_back_not_expired(
    cli: Cli,
) -> None:
    """The app drains 20 messages/s and the deadline is 8 s away: a message sent once the
    queue holds 8 s of messages would leave it after the deadline, its ttl (capped at the
    deadline) spent in the queue. The run holds the rest back (CANCELLED at the deadline)
    instead: every message sent leaves the queue in time, none expires there."""
    rows = 500
    cli.patch_sandbox(outbound_rate=20, queue_limit=1_000)
    path = cli.tmp / "few.csv"
    path.write_text(
        "phone,first_name,code\n"
        + "".join(f"+1201{3000000 + i:07d},N{i},{i:06d}\n" for i in range(rows))
    )
    ends = datetime.now(UTC) + timedelta(seconds=8)
    stamp = ends.isoformat(timespec="seconds").replace("+00:00", "Z")
    campaign = cli.campaign_file(recipients=path, deadline=f'"{stamp}"')
    result = cli.run("run", str(campaign))
    assert result.returncode == 0, result.stderr
    assert "could not reach the channels before the deadline" in result.stdout
    report = cli.tmp / "report.csv"
    assert cli.run("report", "e2e", "-o", str(report)).returncode == 0
    counts = Counter(r["status"] for r in read_report(report))
    assert counts["CANCELLED"] > 0 and counts["QUEUED"] + counts["CANCELLED"] == rows
    assert counts["QUEUED"] <= 200  # what leaves in 8 s at 20/s, and a margin
    time.sleep(max(0.0, (ends - datetime.now(UTC)).total_seconds()) + 1.5)
    stats = requests.get(f"{cli.sandbox.url}/_sandbox/stats", timeout=10).json()
    assert stats["expired_in_queue"] == 0
