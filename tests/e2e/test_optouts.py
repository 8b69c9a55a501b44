"""Opt-outs through the CLI, on SQLite and Postgres: the sandbox's recipients reply STOP, the
receiver puts them on the suppression list, and a second campaign over the same file sends them
nothing and reports them SUPPRESSED; `suppress remove` makes one sendable again; a forged or
replayed reply changes nothing."""

from __future__ import annotations

import signal
import subprocess
import time
from typing import Any

import orjson
import requests

from campaign import config
from campaign.sinch import signature
from tests.e2e.test_cli_e2e import Cli, read_report
from tests.e2e.test_cli_e2e import cli as cli
from tests.e2e.test_cli_e2e import sandbox as sandbox

ROWS = 8
STOPPERS = {"+12015550001", "+12015550002"}  # the sandbox has them reply STOP


def _suppressed(cli: Cli) -> set[str]:
    listed = cli.run("suppress", "list")
    assert listed.returncode == 0, listed.stderr
    return {line.split("\t")[0] for line in listed.stdout.splitlines() if "\t" in line}


def _sent_to(cli: Cli) -> list[str]:
    return [m["identity"] for m in cli.sent()]


def _report(cli: Cli, name: str) -> dict[str, dict[str, str]]:
    path = cli.tmp / f"{name}.csv"
    done = cli.run("report", name, "-o", str(path))
    assert done.returncode == 0, done.stderr
    return {r["identity"]: r for r in read_report(path)}


def _inbound(text: str, identity: str) -> bytes:
    return orjson.dumps(
        {
            "app_id": config.SANDBOX_APP_ID,
            "event_time": "2026-12-05T09:00:00Z",
            "message": {
                "id": "MO-FORGED",
                "channel_identity": {"channel": "SMS", "identity": identity},
                "contact_message": {"text_message": {"text": text}},
            },
        }
    )


def test_stop_replies_suppress_the_next_campaign_and_remove_undoes_it(
    cli: Cli, database_url: str
) -> None:
    cli.use_database(database_url)
    port = cli.receive_callbacks(
        inbound_pattern="555000[12]$",
        inbound_delay_s=0.05,
        delivered_delay_s=0.05,
        delivered_jitter_s=0.02,
        read_delay_s=600.0,
    )
    people = cli.people(ROWS, first=1)
    receiver = cli.popen("receiver")
    try:
        assert receiver.stdout is not None
        assert "Receiving Sinch callbacks on" in receiver.stdout.readline()
        url = f"http://127.0.0.1:{port}/sinch/callbacks"

        first = cli.run("run", str(cli.campaign_file("first", people)))
        assert "Traceback" not in first.stderr, first.stderr
        assert first.returncode == 0, first.stdout + first.stderr
        assert sorted(_sent_to(cli)) == sorted(f"+1201555{i:04d}" for i in range(1, ROWS + 1))
        deadline = time.monotonic() + 20
        while _suppressed(cli) != STOPPERS:
            assert time.monotonic() < deadline, _suppressed(cli)
            time.sleep(0.2)

        # A forged reply (wrong secret) and a replayed one change nothing.
        body = _inbound("STOP", "12015550005")
        forged = signature.sign("not-the-secret", body, timestamp=int(time.time()))
        assert requests.post(url, data=body, headers=forged, timeout=5).status_code == 401
        good = signature.sign(config.SANDBOX_WEBHOOK_SECRET, body, timestamp=int(time.time()))
        assert requests.post(url, data=body, headers=good, timeout=5).status_code == 200
        assert cli.run("suppress", "remove", "+12015550005", "--by", "test").returncode == 0
        assert requests.post(url, data=body, headers=good, timeout=5).status_code == 401
        assert _suppressed(cli) == STOPPERS

        second = cli.run("run", str(cli.campaign_file("second", people)))
        assert "Traceback" not in second.stderr, second.stderr
        report = _report(cli, "second")
        assert len(report) == ROWS
        for identity in STOPPERS:
            assert report[identity]["status"] == "SUPPRESSED"
            assert report[identity]["error_code"] == "OPTED_OUT"
        sent = _sent_to(cli)
        assert all(sent.count(i) == 1 for i in STOPPERS)  # the first campaign only
        assert sent.count("+12015550003") == 2
        status = cli.run("status", "second")
        assert "SUPPRESSED" in status.stdout or "suppressed" in status.stdout, status.stdout

        removed = cli.run("suppress", "remove", "+1 201 555 0001", "--by", "ops")
        assert removed.returncode == 0 and "1 removed" in removed.stdout, removed.stdout
        cli.patch_sandbox(inbound_pattern=None)
        third = cli.run("run", str(cli.campaign_file("third", people)))
        assert "Traceback" not in third.stderr, third.stderr
        sent = _sent_to(cli)
        assert sent.count("+12015550001") == 2 and sent.count("+12015550002") == 1
        assert _report(cli, "third")["+12015550002"]["status"] == "SUPPRESSED"
    finally:
        receiver.send_signal(signal.SIGTERM)
        receiver.wait(timeout=20)


def test_import_and_export_and_a_running_campaign_stops_for_an_opt_out(
    cli: Cli, database_url: str
) -> None:
    cli.use_database(database_url)
    people = cli.people(ROWS, first=1)
    other = cli.tmp / "from-elsewhere.csv"
    other.write_text("msisdn\n(201) 555-0003\n+12015550004\n+12015550004\n")
    imported = cli.run("suppress", "import", str(other), "--default-country", "US")
    assert imported.returncode == 0, imported.stderr
    assert "2 added" in imported.stdout
    again = cli.run("suppress", "import", str(other), "--default-country", "US")
    assert "0 added, 2 already on it" in again.stdout
    exported = cli.tmp / "list.parquet"
    assert cli.run("suppress", "export", str(exported)).returncode == 0
    import polars as pl

    assert sorted(pl.read_parquet(exported)["identity"].to_list()) == [
        "+12015550003",
        "+12015550004",
    ]
    # A slow campaign: an opt-out while it runs stops the recipient's pending send.
    cli.config.write_text(
        cli.config.read_text().replace("requests_per_second = 800", "requests_per_second = 2")
    )
    running: subprocess.Popen[str] = cli.popen("run", str(cli.campaign_file("slow", people)))
    try:
        deadline = time.monotonic() + 20
        while not _sent_to(cli):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        added = cli.run("suppress", "add", f"+1201555{ROWS:04d}", "--by", "test")
        assert added.returncode == 0, added.stderr
        assert "1 pending recipients will not be sent" in added.stdout, added.stdout
        out: Any = running.communicate(timeout=60)
        assert "Traceback" not in out[1], out[1]
    finally:
        if running.poll() is None:
            running.kill()
    sent = _sent_to(cli)
    assert f"+1201555{ROWS:04d}" not in sent
    assert "+12015550003" not in sent and "+12015550004" not in sent
    report = _report(cli, "slow")
    assert report[f"+1201555{ROWS:04d}"]["status"] == "SUPPRESSED"
    assert len(sent) == ROWS - 3


def test_the_dry_run_counts_who_is_on_the_list_and_writes_nothing(
    cli: Cli, database_url: str
) -> None:
    path = cli.campaign_file("dry", cli.people(ROWS, first=1))
    if database_url.startswith("sqlite"):
        first = cli.run("run", str(path), "--dry-run")
        assert first.returncode == 0, first.stderr
        assert "suppressed" not in first.stdout  # no database yet: no list, and none is made
        assert not cli.db.exists()
    else:
        cli.use_database(database_url)
    listed = [*sorted(STOPPERS), "+19999999999"]  # one that is not in the file
    assert cli.run("suppress", "add", *listed).returncode == 0
    dry = cli.run("run", str(path), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    line = next(line for line in dry.stdout.splitlines() if line.startswith("suppressed"))
    assert line.split()[1] == "2", dry.stdout
    valid = next(line for line in dry.stdout.splitlines() if line.startswith("valid"))
    assert valid.split()[1] == str(ROWS - 2)
    assert cli.sent() == []
