"""Outages around `campaign run`: the token endpoint down or refusing at start, and the SQLite
database locked by another process or out of space while a campaign sends.
"""

from __future__ import annotations

import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from campaign import config
from campaign.sandbox import SandboxSettings, ThreadedSandbox
from tests.runs import RECIPIENTS, Runs, check_accounted_for

pytestmark = pytest.mark.crash


@pytest.fixture
def sandbox() -> Iterator[ThreadedSandbox]:
    with ThreadedSandbox(SandboxSettings(seed=9, rate_limit=1_000)) as running:
        yield running


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- the token endpoint ------------------------------------------------------------------------


@pytest.mark.parametrize("cause", ["refused", "500", "401"])
def test_no_token_at_start_exits_2_with_one_line_and_sends_nothing(
    tmp_path: Path, sandbox: ThreadedSandbox, cause: str
) -> None:
    auth_url = f"http://127.0.0.1:{_closed_port()}/oauth2/token" if cause == "refused" else None
    runs = Runs(tmp_path, sandbox, f"sqlite:///{tmp_path / 'c.db'}", rows=50, auth_url=auth_url)
    if cause == "500":
        answer = requests.patch(
            f"{sandbox.url}/_sandbox/settings",
            json={"faults_on_token": True, "error_rate_500": 1.0},
            timeout=5,
        )
        assert answer.status_code == 200
    if cause == "401":
        runs.env["SINCH_KEY_SECRET"] = "not-the-secret-0123456789"
    try:
        result = runs.run(timeout=60)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2, result.stderr
        assert len(lines) == 1 and lines[0].startswith("campaign: error: "), lines
        expected = {
            "refused": "token endpoint",
            "500": "HTTP 500",
            "401": "refused the credentials",
        }[cause]
        assert expected in lines[0]
        for secret in (config.SANDBOX_KEY_SECRET, "not-the-secret-0123456789"):
            assert secret not in result.stderr + result.stdout
        assert runs.accepted() == 0 and sandbox.state.stats.requests == 0  # nothing reached it
        # Nothing is marked sent: the campaign was not even written.
        assert runs.query(f"SELECT status FROM {RECIPIENTS} WHERE status <> 'PENDING'") == []
    finally:
        runs.close()


# --- the database ------------------------------------------------------------------------------

ROWS = 6_000
# How long a stopping run keeps retrying the write of its last answers (30 s by default).
DRAIN = "drain_timeout = 3\n"
LOCK_S = 4.0  # longer than the run's busy timeout (1 s, from the URL)


def _locker(db: Path) -> subprocess.Popen[str]:
    """Another process holding SQLite's write lock on ``db`` for :data:`LOCK_S` seconds."""
    code = (
        "import sqlite3, sys, time\n"
        f"c = sqlite3.connect({str(db)!r}, isolation_level=None)\n"
        "c.execute('BEGIN EXCLUSIVE')\n"
        "print('locked', flush=True)\n"
        f"time.sleep({LOCK_S})\n"
        "c.execute('ROLLBACK')\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "locked"
    return process


def _wait_for_sends(runs: Runs, process: subprocess.Popen[str], count: int) -> None:
    deadline = time.monotonic() + 60
    while runs.accepted() < count and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert process.poll() is None, process.communicate()[1]


@pytest.mark.parametrize("mode", ["individual", "batch"])
def test_a_database_locked_past_the_busy_timeout_stops_the_run_cleanly(
    tmp_path: Path, sandbox: ThreadedSandbox, mode: str
) -> None:
    db = tmp_path / "c.db"
    rate = 1_000 if mode == "individual" else 30
    runs = Runs(
        tmp_path,
        sandbox,
        f"sqlite:///{db}?timeout=1",
        rows=ROWS,
        mode=mode,
        rate=rate,
        batch_size=100,
    )
    try:
        process = runs.start()
        _wait_for_sends(runs, process, ROWS // 3)
        locker = _locker(db)
        _, stderr = process.communicate(timeout=60)
        locker.wait(timeout=30)
        # Stopped part-way, after sending: exit 3, resumable, one line saying why.
        assert process.returncode == 3, stderr
        error = [line for line in stderr.splitlines() if line.startswith("campaign: error:")]
        assert error == [
            "campaign: error: the database failed while sending (database is locked); "
            "stopped, run the same command again to resume"
        ]
        # Nothing recorded wrongly: QUEUED only what the sandbox accepted, and every answer
        # it gave was recorded once the lock went (the last flush waits for it).
        sent = runs.sent()
        queued = {
            i for (i,) in runs.query(f"SELECT identity FROM {RECIPIENTS} WHERE status = 'QUEUED'")
        }
        assert queued == set(sent)
        result = runs.run(timeout=90)
        assert result.returncode == 0, result.stderr
        report, sent = check_accounted_for(runs)
        assert {r["status"] for r in report} == {"QUEUED"}  # none IN_DOUBT: exact
        assert len(sent) == ROWS  # everyone, once
    finally:
        runs.close()


def _no_bigger_than(limit: int) -> None:
    """In the child: writes past ``limit`` bytes fail with EFBIG instead of killing it."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_a_full_disk_stops_the_run_cleanly_and_a_rerun_finishes(
    tmp_path: Path, sandbox: ThreadedSandbox
) -> None:
    db = tmp_path / "c.db"
    # The stopping run retries its last write for drain_timeout: the disk stays full here.
    runs = Runs(tmp_path, sandbox, f"sqlite:///{db}", rows=ROWS, rate=1_000, extra_sending=DRAIN)
    try:
        # Files capped at 3 MB: loading fits (the database is 1.5 MB with 6,000 rows), but the
        # write-ahead log grows by about 1 MB per 1,000 sends and fills it part-way.
        started = time.monotonic()
        process = runs.start(preexec_fn=lambda: _no_bigger_than(3 * 1024 * 1024))
        _, stderr = process.communicate(timeout=90)
        accepted = runs.accepted()
        assert process.returncode == 3, stderr
        assert time.monotonic() - started < 25  # not the default drain_timeout of 30 s
        error = [line for line in stderr.splitlines() if line.startswith("campaign: error:")]
        # SQLite says "disk I/O error" for a write refused with EFBIG, "database or disk is
        # full" for ENOSPC.
        assert len(error) == 1
        assert error[0] in {
            f"campaign: error: the database failed while sending ({reason}); "
            "stopped, run the same command again to resume"
            for reason in ("disk I/O error", "database or disk is full")
        }
        assert 0 < accepted < ROWS
        result = runs.run(timeout=90)  # the space is back (no cap)
        assert result.returncode in (0, 1), result.stderr
        report, sent = check_accounted_for(runs)  # nobody twice
        # IN_DOUBT: the answers that the full disk kept from being recorded (sent once), and
        # rows claimed again after a refusal, below the write-ahead mark, that the stopping run
        # could neither send nor give back (README, "Safe to re-run"): at most its two claims
        # of a quarter second each, the one being paced out and the next one, taken ahead.
        in_doubt = {r["identity"] for r in report if r["status"] == "IN_DOUBT"}
        never_left = [i for i in in_doubt if not sent[i]]
        print(
            f"\ndisk full after {accepted} sends: {len(in_doubt)} IN_DOUBT, {len(never_left)} unsent"
        )
        assert len(never_left) <= 2 * 250
        assert len(sent) + len(never_left) == ROWS  # everyone else, once
    finally:
        runs.close()


# --- Postgres going away under a run -----------------------------------------------------------


@pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_postgres_dropping_every_connection_is_one_line_and_a_rerun_finishes(
    tmp_path: Path, sandbox: ThreadedSandbox, database_url: str
) -> None:
    """The server closes every connection of the campaign's database until the run stops, as a
    restart does: exit 3 with one error line (the driver's message of several lines joined; no
    traceback, no "Task exception was never retrieved"), and the next run resumes and
    finishes, nobody sent twice."""
    import psycopg
    from sqlalchemy.engine import make_url

    name = make_url(database_url).database
    runs = Runs(tmp_path, sandbox, database_url, rows=ROWS, rate=1_000, extra_sending=DRAIN)
    try:
        process = runs.start()
        while runs.accepted() < 2_000 and process.poll() is None:
            time.sleep(0.01)
        with psycopg.connect(database_url, autocommit=True) as admin:
            # Until the run gives up (a reconnect between two drops may carry it a while).
            ends = time.monotonic() + 30
            while process.poll() is None and time.monotonic() < ends:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (name,),
                )
                time.sleep(0.05)
        _, stderr = process.communicate(timeout=120)
        print(f"\nstopped {time.monotonic() - ends + 30:.1f} s after the first drop")
        assert process.returncode == 3, stderr
        errors = [line for line in stderr.splitlines() if line.startswith("campaign: error:")]
        assert len(errors) == 1, stderr
        assert "run the same command again to resume" in errors[0]
        assert stderr.strip().splitlines()[-1] == errors[0]  # nothing of it on further lines
        assert "Traceback" not in stderr and "never retrieved" not in stderr, stderr
        began = time.monotonic()
        result = runs.run(timeout=120)
        print(f"rerun {time.monotonic() - began:.1f} s")
        assert result.returncode in (0, 1), result.stderr
        check_accounted_for(runs)
    finally:
        runs.close()
