"""End to end: `campaign retry`, `pause` and `resume`, as a user runs them, against the sandbox
over HTTP (the `Cli` of test_cli_e2e): failed recipients sent again, each once; a paused run
drains and exits 0, from another process, with one worker and with two."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from collections import Counter
from pathlib import Path

import psycopg
import pytest

from tests.e2e.test_cli_e2e import Cli, cli, read_report, sandbox

__all__ = ["cli", "sandbox"]  # the fixtures, imported to be used here

PAUSED = "e2e: paused by `campaign pause`; `campaign resume e2e` then run again"


def _numbers(cli: Cli, rows: int) -> Path:
    path = cli.tmp / "numbers.csv"
    path.write_text(
        "phone,first_name,code\n" + "".join(f"+1201{2000000 + i:07d},A,{i}\n" for i in range(rows))
    )
    return path


def _config(cli: Cli, **sending: object) -> None:
    """Settings added to config.toml's [sending] (after its requests_per_second)."""
    text = cli.config.read_text()
    for key, value in sending.items():
        if key == "requests_per_second":
            text = text.replace("requests_per_second = 800", f"requests_per_second = {value}")
        else:
            text = text.replace("[sending]\n", f"[sending]\n{key} = {value}\n")
    cli.config.write_text(text)


def _status(cli: Cli) -> dict[str, object]:
    result = cli.run("status", "e2e", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def _failed(cli: Cli) -> set[str]:
    report = cli.tmp / "report.csv"
    assert cli.run("report", "e2e", "-o", str(report)).returncode == 0
    return {r["identity"] for r in read_report(report) if r["status"] == "FAILED"}


@pytest.mark.parametrize("mode", ["individual", "batch"])
def test_retry_sends_the_failed_recipients_again_each_once(
    cli: Cli, mode: str, database_url: str
) -> None:
    cli.use_database(database_url)
    if mode == "individual":  # a quarter of the requests answered 503, none retried
        _config(cli, max_attempts=1)
        cli.patch_sandbox(error_rate_503=0.25)
        rows = 300
    else:  # batches refused whole while they hold these numbers: bisected, they alone FAIL
        cli.patch_sandbox(refuse_batches_with=r"(13|57)$")
        rows = 200
    campaign = str(cli.campaign_file(recipients=_numbers(cli, rows), mode=f'"{mode}"'))
    first = cli.run("run", campaign)
    assert first.returncode == 1, first.stderr  # some recipients did not make it
    failed = _failed(cli)
    sent_first = Counter(m["identity"] for m in cli.sent())
    assert failed and not failed & set(sent_first)
    assert len(failed) + len(sent_first) == rows
    assert "already finished" in cli.run("run", campaign).stdout  # DONE until the retry

    cli.patch_sandbox(error_rate_503=0.0, refuse_batches_with=None)
    retried = cli.run("retry", "e2e")
    assert retried.returncode == 0, retried.stderr
    assert retried.stdout.splitlines() == [
        f"e2e: {len(failed):,} FAILED recipients put back",
        "e2e: `campaign run` sends them",
    ]
    assert _status(cli)["state"] == "READY"
    again = cli.run("run", campaign)
    assert again.returncode == 0, again.stderr
    sent = [m["identity"] for m in cli.sent()]
    assert Counter(sent[sum(sent_first.values()) :]) == Counter(failed)  # those, each once
    assert max(Counter(sent).values()) == 1 and len(sent) == rows
    status = _status(cli)
    assert status["state"] == "DONE"
    assert status["counts"]["QUEUED"] == rows  # type: ignore[index]
    # Nothing is left to put back: a second retry changes nothing, the campaign stays DONE.
    assert cli.run("retry", "e2e").stdout.startswith("e2e: 0 FAILED recipients put back")
    assert _status(cli)["state"] == "DONE"


def test_retry_refuses_a_cancelled_campaign_and_an_unknown_one(cli: Cli) -> None:
    campaign = str(cli.campaign_file(recipients=_numbers(cli, 3)))
    assert cli.run("run", campaign).returncode == 0
    assert cli.run("cancel", "e2e").returncode == 0
    refused = cli.run("retry", "e2e")
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        "campaign: error: e2e: the campaign was cancelled; its recipients are not sent again"
    ]
    for command in ("retry", "pause", "resume"):
        missing = cli.run(command, "nope")
        assert missing.returncode == 2, command
        assert missing.stderr.strip() == "campaign: error: no campaign named 'nope'"
    bad = cli.run("retry", "e2e", "--status", "QUEUED")
    assert bad.returncode == 2 and "invalid choice: 'QUEUED'" in bad.stderr


def _wait_for_sent(cli: Cli, count: int, *processes: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while len(cli.sent()) < count:
        assert time.monotonic() < deadline, "the run sent too little"
        assert all(p.poll() is None for p in processes), "a run ended before the pause"
        time.sleep(0.02)


def _paused_exits(cli: Cli, *processes: subprocess.Popen[str]) -> None:
    """Pause from another process: every run exits 0 within a few seconds, saying so."""
    paused = cli.run("pause", "e2e")
    assert paused.returncode == 0, paused.stderr
    assert paused.stdout.startswith("e2e: paused;")
    started = time.monotonic()
    for process in processes:
        out, err = process.communicate(timeout=15)
        assert process.returncode == 0, err
        assert PAUSED in out
    assert time.monotonic() - started < 5.0


def _finish_after_resume(cli: Cli, campaign: str, rows: int) -> None:
    status = _status(cli)
    counts = status["counts"]
    assert counts["IN_FLIGHT"] == counts["IN_DOUBT"] == 0  # type: ignore[index]
    assert status["paused_at"]
    assert "PAUSED" in cli.run("status", "e2e").stdout
    before = len(cli.sent())
    assert counts["QUEUED"] == before < rows  # type: ignore[index]
    held = cli.run("run", campaign)
    assert held.returncode == 0, held.stderr
    assert "e2e: paused by `campaign pause` since" in held.stdout
    assert len(cli.sent()) == before
    resumed = cli.run("resume", "e2e")
    assert resumed.returncode == 0 and resumed.stdout.startswith("e2e: resumed")
    cli.patch_sandbox(latency_ms=0.0)
    _config(cli, requests_per_second=800)
    done = cli.run("run", campaign)
    assert done.returncode == 0, done.stderr
    identities = Counter(m["identity"] for m in cli.sent())
    assert len(identities) == rows and set(identities.values()) == {1}
    assert _status(cli)["paused_at"] is None


@pytest.mark.parametrize("mode", ["individual", "batch"])
def test_pause_stops_a_running_campaign_and_resume_carries_on(
    cli: Cli, mode: str, database_url: str
) -> None:
    cli.use_database(database_url)
    rows = 1500
    cli.patch_sandbox(latency_ms=30.0)
    # 300 messages/s either way: batches of 10 at 30 requests/s.
    rate = "= 300" if mode == "individual" else "= 30\nbatch_size = 10"
    cli.config.write_text(cli.config.read_text().replace("= 800", rate))
    campaign = str(cli.campaign_file(recipients=_numbers(cli, rows), mode=f'"{mode}"'))
    process = cli.popen("run", campaign)
    _wait_for_sent(cli, 200, process)
    _paused_exits(cli, process)
    _finish_after_resume(cli, campaign, rows)


def _live_workers(cli: Cli) -> int:
    query = "SELECT count(*) FROM workers WHERE stopped_at IS NULL"
    url = cli.env.get("CAMPAIGN_DATABASE_URL", "")
    if url.startswith("postgresql"):
        with psycopg.connect(url) as pg:
            row = pg.execute(query).fetchone()
    else:
        with sqlite3.connect(cli.db) as conn:
            try:
                row = conn.execute(query).fetchone()
            except sqlite3.OperationalError:  # not migrated yet
                return 0
    assert row is not None
    return int(row[0])


def test_pause_stops_every_worker_of_the_campaign(cli: Cli, database_url: str) -> None:
    cli.use_database(database_url)
    rows = 2000
    cli.patch_sandbox(latency_ms=30.0)
    # 100/s: 20 s of sending, so that the first run is still far from its end when the second
    # has started (seconds on a slow machine) and both have sent; at 300/s the first was
    # sometimes done with its rows by then, and exited without being paused.
    cli.config.write_text(cli.config.read_text().replace("= 800", "= 100"))
    campaign = str(cli.campaign_file(recipients=_numbers(cli, rows)))
    first = cli.popen("run", campaign)
    _wait_for_sent(cli, 50, first)
    second = cli.popen("run", campaign)
    deadline = time.monotonic() + 20
    while _live_workers(cli) < 2:
        assert time.monotonic() < deadline and second.poll() is None
        time.sleep(0.05)
    _wait_for_sent(cli, len(cli.sent()) + 200, first, second)  # both sending
    _paused_exits(cli, first, second)
    _finish_after_resume(cli, campaign, rows)
