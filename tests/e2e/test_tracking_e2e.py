"""End to end: Sinch's callbacks (duplicated, reordered) through a real `campaign receiver`.

The sandbox runs in the test process; `campaign receiver` and `campaign run` are subprocesses
configured like production (sandbox = false, URLs in config.toml, secrets in the environment).
Every recipient must end in the status that the sandbox last reported for it.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from campaign import config
from campaign.sandbox import FailureRule, SandboxSettings, ThreadedSandbox

SECRET = "e2e-webhook-secret"
RANK = {"QUEUED_ON_CHANNEL": 1, "SWITCHING_CHANNEL": 1, "DELIVERED": 2, "READ": 3, "FAILED": 4}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str], ThreadedSandbox, int]]:
    port = free_port()
    settings = SandboxSettings(
        callback_url=f"http://127.0.0.1:{port}/sinch/callbacks",
        webhook_secret=SECRET,
        queued_delay_s=0.05,
        queued_jitter_s=0.05,
        delivered_delay_s=0.1,
        delivered_jitter_s=0.1,
        read_delay_s=0.1,
        read_jitter_s=0.2,
        duplicate_callback_rate=0.3,
        reorder=True,
        failure_rules=(FailureRule(pattern=r"3$", code="RECIPIENT_NOT_REACHABLE"),),
        callback_retry_base_s=0.1,
        callback_max_attempts=20,  # the receiver starts a moment after the sandbox
        seed=11,
    )
    with ThreadedSandbox(settings) as sandbox:
        db = tmp_path / "campaign.db"
        cfg = tmp_path / "config.toml"
        cfg.write_text(
            f"""
[sinch]
auth_url = "{sandbox.url}/oauth2/token"
conversation_url = "{sandbox.url}"
batch_url = "{sandbox.url}"
sandbox = false
[database]
url = "sqlite:///{db}"
[receiver]
host = "127.0.0.1"
port = {port}
external = true
"""
        )
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("SINCH_", "CAMPAIGN_"))},
            "SINCH_PROJECT_ID": config.SANDBOX_PROJECT_ID,
            "SINCH_APP_ID": config.SANDBOX_APP_ID,
            "SINCH_KEY_ID": config.SANDBOX_KEY_ID,
            "SINCH_KEY_SECRET": config.SANDBOX_KEY_SECRET,
            "SINCH_WEBHOOK_SECRET": SECRET,
            "CAMPAIGN_CONFIG": str(cfg),
        }
        yield tmp_path, env, sandbox, port


def cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "campaign", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def last_reported(sandbox: ThreadedSandbox) -> dict[str, str]:
    """For each message, the status of the delivery event that happened last on the channel."""
    callbacks = requests.get(f"{sandbox.url}/_sandbox/callbacks", timeout=10).json()["callbacks"]
    latest: dict[str, tuple[datetime, int, str]] = {}
    for entry in callbacks:
        body = entry["body"] if isinstance(entry["body"], dict) else json.loads(entry["body"])
        report = body.get("message_delivery_report")
        if report is None:
            continue
        at = datetime.fromisoformat(body["event_time"].replace("Z", "+00:00"))
        key = (at, RANK[report["status"]], report["status"])
        if report["message_id"] not in latest or key > latest[report["message_id"]]:
            latest[report["message_id"]] = key
    return {message_id: status for message_id, (_, _, status) in latest.items()}


def test_every_recipient_ends_in_the_status_the_sandbox_last_reported(
    setup: tuple[Path, dict[str, str], ThreadedSandbox, int],
) -> None:
    tmp, env, sandbox, _port = setup
    (tmp / "r.csv").write_text(
        "phone,name\n" + "".join(f"+1201555{i:04d},N{i}\n" for i in range(1, 201))
    )
    (tmp / "c.toml").write_text(
        'name = "track"\nrecipients = "r.csv"\nmode = "individual"\nchannel = "WHATSAPP"\n'
        'identity_column = "phone"\n[message]\ntext_message = { text = "Hi ${name}" }\n'
    )
    receiver = subprocess.Popen(
        [sys.executable, "-m", "campaign", "receiver"],
        env=env,
        cwd=tmp,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert receiver.stdout is not None
        assert "Receiving Sinch callbacks on" in receiver.stdout.readline()
        run = cli(env, tmp, "run", "c.toml", "--wait-for-delivery", "60")
        assert run.returncode == 1, run.stderr  # some recipients FAILED (unreachable)
        deadline = time.monotonic() + 60
        while requests.get(f"{sandbox.url}/_sandbox/stats", timeout=5).json()["callbacks_pending"]:
            assert time.monotonic() < deadline, "the sandbox did not finish its callbacks"
            time.sleep(0.1)
        expected = last_reported(sandbox)
        assert len(expected) == 200
        report: list[dict[str, Any]] = []
        while time.monotonic() < deadline:  # the receiver applies what it stored, shortly
            assert cli(env, tmp, "report", "track", "-o", str(tmp / "report.csv")).returncode == 0
            with (tmp / "report.csv").open() as handle:
                report = list(csv.DictReader(handle))
            if all(expected[row["message_id"]] == row["status"] for row in report):
                break
            time.sleep(0.3)
        mismatched = [
            (r["row"], r["status"], expected[r["message_id"]])
            for r in report
            if expected[r["message_id"]] != r["status"]
        ]
        assert mismatched == []
        statuses = {r["status"] for r in report}
        assert statuses <= {"READ", "FAILED"}
        assert "FAILED" in statuses
        failed = [r for r in report if r["status"] == "FAILED"]
        assert all(r["error_code"] == "RECIPIENT_NOT_REACHABLE" for r in failed)
        assert all(r["identity"].endswith("3") for r in failed)
        assert all(
            r["status_at"].endswith("Z") and r["delivery_channel"] == "WHATSAPP" for r in report
        )
        status = json.loads(cli(env, tmp, "status", "track", "--json").stdout)
        assert status["accepted"] == 200
        assert status["read_rate"] == pytest.approx(
            len([r for r in report if r["status"] == "READ"]) / 200
        )
    finally:
        receiver.send_signal(signal.SIGTERM)
        receiver.wait(timeout=20)
    assert receiver.returncode == 0
    stats = requests.get(f"{sandbox.url}/_sandbox/stats", timeout=5).json()
    import sqlite3

    with sqlite3.connect(tmp / "campaign.db") as db:
        stored = db.execute("SELECT count(*) FROM events").fetchone()[0]
    assert stored == stats["callbacks_sent"]  # every acknowledged callback is in the table
