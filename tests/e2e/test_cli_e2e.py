"""End to end: the `campaign` command, as a user runs it, against a sandbox it talks to over HTTP.

The sandbox runs in this test process (so the test can see exactly what "Sinch" received) and
the CLI runs as a real subprocess configured like a production deployment: `sandbox = false`,
URLs in config.toml, credentials in the environment.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import requests

from campaign import config, descriptors
from campaign.sandbox import SandboxSettings, ThreadedSandbox
from campaign.store.repository import Store
from tests.runs import fd_table_size

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data"
SMS_TEXT = "Hi {first_name}, your code is {code}. Reply STOP to opt out."


@pytest.fixture
def sandbox() -> Iterator[ThreadedSandbox]:
    with ThreadedSandbox(SandboxSettings(seed=5)) as running:
        yield running


class Cli:
    def __init__(self, tmp: Path, sandbox: ThreadedSandbox) -> None:
        self.tmp = tmp
        self.sandbox = sandbox
        self.db = tmp / "campaign.db"
        self.config = tmp / "config.toml"
        self.config.write_text(
            f"""
[sinch]
auth_url = "{sandbox.url}/oauth2/token"
conversation_url = "{sandbox.url}"
batch_url = "{sandbox.url}"
sandbox = false

[database]
url = "sqlite:///{self.db}"

[sending]
requests_per_second = 800
"""
        )
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("SINCH_", "CAMPAIGN_"))},
            "SINCH_PROJECT_ID": config.SANDBOX_PROJECT_ID,
            "SINCH_APP_ID": config.SANDBOX_APP_ID,
            "SINCH_KEY_ID": config.SANDBOX_KEY_ID,
            "SINCH_KEY_SECRET": config.SANDBOX_KEY_SECRET,
            "CAMPAIGN_CONFIG": str(self.config),
        }

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "campaign", *args]

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.tmp,
        )

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(*args),
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=self.tmp,
        )

    def campaign_file(
        self, name: str = "e2e", recipients: Path | None = None, **extra: str
    ) -> Path:
        path = self.tmp / f"{name}.toml"
        lines = [
            f'name = "{name}"',
            f'recipients = "{recipients or SAMPLE / "recipients.csv"}"',
            *([] if "mode" in extra else ['mode = "individual"']),
            'channel = "SMS"',
            'identity_column = "phone"',
            'default_country = "US"',
            *(f"{k} = {v}" for k, v in extra.items()),
            "[message]",
            f'text_message = {{ text = "{SMS_TEXT.replace("{", "${")}" }}',
            "[send]",
            'channel_properties = { SMS_SENDER = "+15550000000" }',
            "[defaults]",
            'first_name = "there"',
        ]
        path.write_text("\n".join(lines) + "\n")
        return path

    def people(self, rows: int, *, first: int = 0) -> Path:
        """``people.csv``: ``rows`` US numbers from ``+1201555{first:04d}``, each with a
        ``first_name`` ("Name 7") and a ``code`` ("C7")."""
        path = self.tmp / "people.csv"
        numbers = range(first, first + rows)
        path.write_text(
            "phone,first_name,code\n" + "".join(f"+1201555{i:04d},Name {i},C{i}\n" for i in numbers)
        )
        return path

    def sent(self) -> list[dict[str, Any]]:
        """What the sandbox accepted, in its inspection form."""
        return [m.to_json() for m in list(self.sandbox.state.messages)]

    def use_database(self, url: str) -> None:
        """Every command from now on works on the database at ``url`` (the config names a
        SQLite file; ``CAMPAIGN_DATABASE_URL`` wins over it), migrated first."""
        self.env["CAMPAIGN_DATABASE_URL"] = url
        upgraded = self.run("db", "upgrade")
        assert upgraded.returncode == 0, upgraded.stderr

    def receive_callbacks(self, **sandbox: Any) -> int:
        """A run with ``--wait-for-delivery`` receives the sandbox's signed callbacks on a
        free port (the sandbox's ``callback_url``), with ``sandbox`` settings patched too."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        self.config.write_text(self.config.read_text() + f"\n[receiver]\nport = {port}\n")
        self.env["SINCH_WEBHOOK_SECRET"] = config.SANDBOX_WEBHOOK_SECRET
        self.patch_sandbox(callback_url=f"http://127.0.0.1:{port}/sinch/callbacks", **sandbox)
        return port

    def patch_sandbox(self, **settings: Any) -> None:
        answer = requests.patch(f"{self.sandbox.url}/_sandbox/settings", json=settings, timeout=5)
        assert answer.status_code == 200, answer.text


@pytest.fixture
def cli(tmp_path: Path, sandbox: ThreadedSandbox) -> Cli:
    return Cli(tmp_path, sandbox)


def read_report(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def sample_rows() -> list[dict[str, str]]:
    return read_report(SAMPLE / "recipients.csv")


def test_run_sends_every_valid_row_once_and_reports_every_row(cli: Cli) -> None:
    result = cli.run("run", str(cli.campaign_file()))
    assert result.returncode == 1, result.stderr  # the sample has invalid rows: exit 1
    assert "summary: e2e" in result.stdout
    report = cli.tmp / "report.csv"
    assert cli.run("report", "e2e", "--output", str(report)).returncode == 0
    rows = read_report(report)
    inputs = sample_rows()
    assert [int(r["row"]) for r in rows] == list(range(1, len(inputs) + 1))
    statuses = Counter(r["status"] for r in rows)
    assert set(statuses) == {"QUEUED", "REJECTED", "DUPLICATE"}
    sent = cli.sent()
    assert len(sent) == statuses["QUEUED"]
    by_identity = Counter(m["identity"] for m in sent)
    assert max(by_identity.values()) == 1  # nobody twice
    queued = {
        r["identity"]: (r, inputs[int(r["row"]) - 1]) for r in rows if r["status"] == "QUEUED"
    }
    assert set(by_identity) == set(queued)
    for message in sent:
        row, source = queued[message["identity"]]
        expected = SMS_TEXT.format(first_name=source["first_name"] or "there", code=source["code"])
        assert message["message"] == {"text_message": {"text": expected}}
        assert row["message_id"] == message["message_id"]
        assert row["sent_at"].endswith("Z")
    for row in rows:
        if row["status"] == "REJECTED":
            assert row["error_description"]
        if row["status"] == "DUPLICATE":  # names the earlier row that holds its identity
            original = rows[int(row["error_description"].rsplit(" ", 1)[1]) - 1]
            assert original["status"] == "QUEUED"
            assert int(row["row"]) > int(original["row"])
            assert row["identity"] == inputs[int(row["row"]) - 1]["phone"]  # the raw cell


def test_a_finished_campaign_does_nothing(cli: Cli) -> None:
    path = cli.campaign_file(recipients=cli.tmp / "few.csv")
    (cli.tmp / "few.csv").write_text("phone,first_name,code\n+12015550101,A,1\n+12015550102,B,2\n")
    assert cli.run("run", str(path)).returncode == 0
    again = cli.run("run", str(path))
    assert again.returncode == 0
    assert "already finished" in again.stdout
    assert len(cli.sent()) == 2


def test_sigterm_stops_cleanly_and_the_next_run_resumes(cli: Cli) -> None:
    cli.patch_sandbox(latency_ms=30.0)
    path = cli.campaign_file()
    cli.config.write_text(cli.config.read_text().replace("= 800", "= 400"))
    process = cli.popen("run", str(path))
    deadline = time.monotonic() + 60
    while len(cli.sent()) < 1500 and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 3, stderr
    interrupted_at = len(cli.sent())
    assert 1500 <= interrupted_at < 8000
    cli.patch_sandbox(latency_ms=0.0)  # the rest at the full rate
    cli.config.write_text(cli.config.read_text().replace("= 400", "= 800"))
    resumed = cli.run("run", str(path))
    assert resumed.returncode == 1, resumed.stderr
    sent = cli.sent()
    identities = Counter(m["identity"] for m in sent)
    assert max(identities.values()) == 1  # no recipient sent twice across the two runs
    status = json.loads(cli.run("status", "e2e", "--json").stdout)
    assert status["counts"]["QUEUED"] == len(sent)  # none left out
    assert status["counts"]["PENDING"] == status["counts"]["IN_FLIGHT"] == 0
    assert status["counts"]["IN_DOUBT"] == 0  # the stop drained what was in flight


@pytest.mark.parametrize("mode", ["batch", "individual"])
def test_sigterm_while_loading_stops_and_the_next_run_resumes_the_load(cli: Cli, mode: str) -> None:
    rows = 300_000
    path = cli.tmp / "big.csv"
    path.write_text(
        "phone,first_name,code\n" + "".join(f"+1201{2000000 + i:07d},A,1\n" for i in range(rows))
    )
    campaign = str(cli.campaign_file(recipients=path, mode=f'"{mode}"'))
    process = cli.popen("run", campaign)
    deadline = time.monotonic() + 60
    while not cli.db.exists() or not _campaign_state(cli):
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)  # the first pass over the file is not even over
    out, err = process.communicate(timeout=60)
    assert process.returncode == 3, err
    assert "interrupted; run the same command again to resume" in out
    assert _campaign_state(cli) == "LOADING"
    assert cli.sent() == []
    if mode == "individual":
        return  # 300,000 requests: batch mode shows the resumed load well enough
    resumed = cli.run("run", campaign, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    sent = Counter(m["identity"] for m in cli.sent())
    assert len(sent) == rows and set(sent.values()) == {1}


def _campaign_state(cli: Cli) -> str | None:
    with sqlite3.connect(cli.db) as conn:
        try:
            row = conn.execute("SELECT state FROM campaigns WHERE name = 'e2e'").fetchone()
        except sqlite3.OperationalError:  # not migrated yet
            return None
    return None if row is None else str(row[0])


def test_dry_run_plans_and_sends_nothing(cli: Cli) -> None:
    result = cli.run("run", str(cli.campaign_file()), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "rows          10,000" in result.stdout
    assert "invalid phone number" in result.stdout
    assert "requests" in result.stdout
    assert cli.sent() == []
    assert not cli.db.exists()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda tmp: (tmp / "nope.csv", None), "nope.csv"),
        (lambda tmp: (tmp / "r.csv", "name,code\nA,1\n"), "phone"),
        (lambda tmp: (tmp / "r.csv", "phone,first_name\n+12015550101,A\n"), "code"),
        (lambda tmp: (tmp / "dir", "DIR"), "dir"),
    ],
    ids=["missing-file", "no-identity-column", "missing-parameter-column", "a-directory"],
)
def test_bad_recipient_files_exit_2_with_one_clear_line(cli: Cli, setup: Any, message: str) -> None:
    path, content = setup(cli.tmp)
    if content == "DIR":
        path.mkdir()
    elif content is not None:
        path.write_text(content)
    result = cli.run("run", str(cli.campaign_file(recipients=path)))
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("campaign: error: ")
    assert message in lines[0]
    assert cli.sent() == []
    assert not cli.db.exists()  # nothing written


def test_bad_campaign_file_exits_2(cli: Cli) -> None:
    path = cli.tmp / "bad.toml"
    path.write_text('name = "x"\nrecipients = "r.csv"\nchanel = "SMS"\n')
    result = cli.run("run", str(path))
    assert result.returncode == 2
    assert "unknown key 'chanel'" in result.stderr


def test_status_and_parquet_report(cli: Cli) -> None:
    (cli.tmp / "few.csv").write_text("phone,first_name,code\n+12015550101,A,1\nbad,B,2\n")
    assert cli.run("run", str(cli.campaign_file(recipients=cli.tmp / "few.csv"))).returncode == 1
    text = cli.run("status")
    assert "e2e" in text.stdout
    assert "QUEUED 1" in text.stdout
    out = cli.tmp / "r.parquet"
    assert cli.run("report", "e2e", "-o", str(out)).returncode == 0
    frame = pl.read_parquet(out)
    assert frame["status"].to_list() == ["QUEUED", "REJECTED"]
    assert frame["identity"].to_list() == ["+12015550101", "bad"]
    missing = cli.run("report", "nope", "-o", str(out))
    assert missing.returncode == 2
    assert "no campaign named 'nope'" in missing.stderr
    # Reading the database needs no Sinch credential: an analyst's shell has none.
    cli.env = {k: v for k, v in cli.env.items() if not k.startswith("SINCH_")}
    assert cli.run("status").returncode == 0
    assert cli.run("report", "e2e", "-o", str(cli.tmp / "again.csv")).returncode == 0
    assert len(read_report(cli.tmp / "again.csv")) == 2
    refused = cli.run("run", str(cli.campaign_file(recipients=cli.tmp / "few.csv")))
    assert refused.returncode == 2 and "not set in the environment" in refused.stderr


def sandbox_command() -> tuple[subprocess.Popen[str], str]:
    """`campaign sandbox` on a free port, and its URL (read off its banner)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "campaign", "sandbox", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    banner = [process.stdout.readline() for _ in range(3)]
    url = next(word for line in banner for word in line.split() if word.startswith("http://"))
    return process, url


def test_sandbox_command_serves_the_seed_curl_examples(tmp_path: Path) -> None:
    process, url = sandbox_command()
    try:
        token = json.loads(
            subprocess.run(
                [
                    "curl",
                    "-s",
                    f"{url}/oauth2/token",
                    "-d",
                    "grant_type=client_credentials",
                    "--user",
                    f"{config.SANDBOX_KEY_ID}:{config.SANDBOX_KEY_SECRET}",
                ],
                capture_output=True,
                text=True,
                check=True,
                timeout=10,
            ).stdout
        )
        assert set(token) == {"access_token", "token_type", "expires_in", "scope"}
        body = {
            "app_id": config.SANDBOX_APP_ID,
            "recipient": {
                "identified_by": {
                    "channel_identities": [{"channel": "SMS", "identity": "+15551234567"}]
                }
            },
            "message": {"text_message": {"text": "Hello from Sinch Conversation API!"}},
            "channel_properties": {"SMS_SENDER": "+15550000000"},
        }
        sent = subprocess.run(
            [
                "curl",
                "-s",
                "-X",
                "POST",
                f"{url}/v1/projects/{config.SANDBOX_PROJECT_ID}/messages:send",
                "-H",
                f"Authorization: Bearer {token['access_token']}",
                "-H",
                "Content-Type: application/json",
                "-d",
                json.dumps(body),
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
        answer = json.loads(sent.stdout)
        assert len(answer["message_id"]) == 26
        assert answer["accepted_time"].endswith("Z")
        apps = subprocess.run(
            [
                "curl",
                "-s",
                f"{url}/v1beta/projects/{config.SANDBOX_PROJECT_ID}/apps",
                "--user",
                f"{config.SANDBOX_KEY_ID}:{config.SANDBOX_KEY_SECRET}",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
        assert json.loads(apps.stdout)["apps"][0]["id"] == config.SANDBOX_APP_ID
        # Its table of descriptors was grown at start, not while it serves (campaign.descriptors).
        table = fd_table_size(process.pid)
        assert table is None or table >= descriptors.RESERVED
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)
    assert process.returncode == 0


def test_batch_mode_25000_rows_in_25_requests(cli: Cli) -> None:
    rows = 25_000
    path = cli.tmp / "big.csv"
    path.write_text(
        "phone,first_name,code\n"
        + "".join(f"+1201{2000000 + i:07d},Nö{i},{i:06d}\n" for i in range(rows))
    )
    result = cli.run("run", str(cli.campaign_file(recipients=path)), "--mode", "batch")
    assert result.returncode == 0, result.stderr
    stats = requests.get(f"{cli.sandbox.url}/_sandbox/stats", timeout=10).json()
    assert stats["batches"] == 25
    posts = [a for a in list(cli.sandbox.state.arrivals) if a.method == "POST"]
    assert len(posts) == 25  # the batches (the preflight read the app with a GET)
    report = cli.tmp / "report.csv"
    assert cli.run("report", "e2e", "-o", str(report)).returncode == 0
    statuses = Counter(r["status"] for r in read_report(report))
    assert statuses == {"QUEUED": rows}
    sent = cli.sent()
    assert len(sent) == rows
    for message in sent:
        i = int(message["identity"][5:]) - 2000000
        expected = SMS_TEXT.format(first_name=f"Nö{i}", code=f"{i:06d}")
        assert message["message"] == {"text_message": {"text": expected}}
    # the campaign stays in batch mode unless forced
    switched = cli.run("run", str(cli.campaign_file(recipients=path)), "--mode", "individual")
    assert switched.returncode == 2
    assert "--force-mode" in switched.stderr


def test_two_runs_at_once_send_each_number_once_when_the_file_repeats_them(cli: Cli) -> None:
    """Duplicates are decided over the whole file, across its slices (50,000 rows), and two
    runs that load it at the same time decide the same."""
    distinct = 60_000
    numbers = [2000000 + i for i in range(distinct)]
    order = [*numbers, *numbers]
    random.Random(11).shuffle(order)
    seen: set[int] = set()
    lines = []
    for n in order:  # a number's second row is written another way
        lines.append(f"(201) {str(n)[:3]}-{str(n)[3:]}" if n in seen else f"+1201{n}")
        seen.add(n)
    path = cli.tmp / "repeats.csv"
    path.write_text("phone,first_name,code\n" + "".join(f"{p},A,1\n" for p in lines))
    campaign = str(cli.campaign_file(recipients=path, mode='"batch"'))
    runs = [cli.popen("run", campaign) for _ in range(2)]
    for process in runs:
        _, err = process.communicate(timeout=180)
        assert process.returncode == 0, err
    sent = Counter(message["identity"] for message in cli.sent())
    assert len(sent) == distinct and set(sent.values()) == {1}
    report = cli.tmp / "report.csv"
    assert cli.run("report", "e2e", "-o", str(report)).returncode == 0
    rows = read_report(report)
    assert Counter(r["status"] for r in rows) == {"QUEUED": distinct, "DUPLICATE": distinct}
    first_of = {r["identity"]: int(r["row"]) for r in rows if r["status"] == "QUEUED"}
    for row in rows:
        if row["status"] == "DUPLICATE":
            first = int(row["error_description"].removeprefix("same identity as row "))
            number = "+1201" + "".join(c for c in row["identity"] if c.isdigit())[-7:]
            assert first_of[number] == first < int(row["row"])


def test_a_load_resumes_only_over_the_file_it_began_with(cli: Cli) -> None:
    path = cli.tmp / "r.csv"
    original = "phone,first_name,code\n+12015550101,Ann,1\n+12015550102,Bob,2\n"
    path.write_text(original)
    digest = hashlib.sha256(original.encode()).hexdigest()

    async def began_loading() -> None:  # what a run killed while loading leaves
        store = await Store.open(f"sqlite:///{cli.db}")
        try:
            await store.campaigns.create(
                name="e2e",
                key="KE2E",
                mode="individual",
                channel="SMS",
                definition="{}",
                source=str(path),
                source_digest=digest,
                now=datetime.now(UTC),
            )
        finally:
            await store.close()

    asyncio.run(began_loading())
    path.write_text(original + "+12015550103,Cy,3\n")
    changed = cli.run("run", str(cli.campaign_file(recipients=path)))
    assert changed.returncode == 2
    assert changed.stderr.strip().splitlines()[-1].startswith("campaign: error: e2e: ")
    assert "is not the file this campaign began loading" in changed.stderr
    assert cli.sent() == []
    path.write_text(original)
    resumed = cli.run("run", str(cli.campaign_file(recipients=path)))
    assert resumed.returncode == 0, resumed.stderr
    assert sorted(m["identity"] for m in cli.sent()) == ["+12015550101", "+12015550102"]


def test_cancel_scheduled_batches(cli: Cli) -> None:
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3 * 3600))
    path = cli.tmp / "few.csv"
    path.write_text(
        "phone,first_name,code\n" + "".join(f"+1201555{i:04d},A,{i}\n" for i in range(30))
    )
    campaign = cli.campaign_file(recipients=path, mode='"batch"')
    campaign.write_text(campaign.read_text().replace("[send]", f'[send]\nsend_after = "{later}"'))
    assert cli.run("run", str(campaign)).returncode == 0
    status = json.loads(cli.run("status", "e2e", "--json").stdout)
    assert status["counts"]["QUEUED"] == 30
    cancelled = cli.run("cancel", "e2e")
    assert cancelled.returncode == 0, cancelled.stderr
    assert "30 in 1 scheduled batches" in cancelled.stdout
    status = json.loads(cli.run("status", "e2e", "--json").stdout)
    assert status["counts"]["CANCELLED"] == 30
    assert status["state"] == "CANCELLED"
    assert cli.sent() == []  # the batch never went out


@pytest.mark.parametrize("mode", ["batch", "individual"])
def test_a_text_over_the_channel_limit_is_rejected_and_not_sent(cli: Cli, mode: str) -> None:
    path = cli.tmp / "long.csv"
    path.write_text(f"phone,first_name,code\n+12015550001,Ann,1\n+12015550002,{'x' * 1600},2\n")
    result = cli.run("run", str(cli.campaign_file(recipients=path, mode=f'"{mode}"')))
    assert result.returncode == 1, result.stderr  # a row REJECTED: exit 1
    report = cli.tmp / "report.csv"
    assert cli.run("report", "e2e", "-o", str(report)).returncode == 0
    rows = {r["row"]: r for r in read_report(report)}
    assert rows["1"]["status"] == "QUEUED"
    assert rows["2"]["status"] == "REJECTED"
    assert rows["2"]["error_code"] == "MESSAGE_TOO_LONG"
    assert "over the SMS limit of 1600" in rows["2"]["error_description"]
    assert [m["identity"] for m in cli.sent()] == ["+12015550001"]


def test_an_exclusive_campaign_refuses_a_second_run_with_exit_4(cli: Cli) -> None:
    cli.patch_sandbox(latency_ms=20.0)
    cli.config.write_text(cli.config.read_text().replace("= 800", "= 200"))
    path = cli.campaign_file(exclusive="true")
    first = cli.popen("run", str(path))
    deadline = time.monotonic() + 60
    while not cli.sent() and time.monotonic() < deadline:
        time.sleep(0.05)
    before = len(cli.sent())
    second = cli.run("run", str(path))
    assert second.returncode == 4, second.stderr
    assert "exclusive" in second.stderr and len(second.stderr.strip().splitlines()) == 1
    first.send_signal(signal.SIGTERM)
    _, stderr = first.communicate(timeout=60)
    assert first.returncode == 3, stderr
    identities = Counter(m["identity"] for m in cli.sent())
    assert max(identities.values()) == 1 and len(identities) >= before


def test_a_campaign_not_due_yet_exits_0_and_sends_nothing(cli: Cli) -> None:
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    path = cli.campaign_file(send_after=f'"{later}"')
    for _ in range(3):  # cron may call it as often as it likes
        result = cli.run("run", str(path))
        assert result.returncode == 0, result.stderr
        assert f"not due yet; it may send from {later}" in result.stdout
    assert cli.sent() == []
    # Only the campaign is recorded (SCHEDULED, for `campaign status`): no recipient.
    status = json.loads(cli.run("status", "e2e", "--json").stdout)
    assert status["state"] == "SCHEDULED" and status["rows"] == 0


def test_wait_sends_once_the_campaign_is_due(cli: Cli) -> None:
    # Far enough ahead that the process is still early once it has started on a busy CI
    # machine (whole seconds: the time is truncated, so this is 5-6 s away).
    soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 6))
    few = cli.tmp / "few.csv"  # the wait is the point, not 10,000 sends after it
    few.write_text("".join((SAMPLE / "recipients.csv").read_text().splitlines(True)[:201]))
    path = cli.campaign_file(recipients=few, send_after=f'"{soon}"')
    started = time.monotonic()
    result = cli.run("run", str(path), "--wait")
    assert result.returncode in (0, 1), result.stderr
    assert "waiting until" in result.stdout
    assert cli.sent()
    assert time.monotonic() - started >= 4.0


def test_after_the_deadline_nothing_is_sent_and_the_rest_is_cancelled(cli: Cli) -> None:
    path = cli.campaign_file(deadline='"2020-01-01T00:00:00Z"')
    result = cli.run("run", str(path))
    assert result.returncode in (0, 1), result.stderr
    assert "the deadline passed" in result.stdout
    assert cli.sent() == []
    report = cli.tmp / "report.csv"
    assert cli.run("report", "e2e", "-o", str(report)).returncode == 0
    rows = read_report(report)
    cancelled = [r for r in rows if r["status"] == "CANCELLED"]
    assert cancelled and all(r["error_code"] == "DEADLINE" for r in cancelled)
    assert {r["status"] for r in rows} <= {"CANCELLED", "REJECTED", "DUPLICATE"}


def test_dry_run_shows_the_window_and_what_fits_before_the_deadline(cli: Cli) -> None:
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3605))
    path = cli.campaign_file(send_after=f'"{later}"', deadline=f'"{soon}"')
    result = cli.run("run", str(path), "--dry-run")
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("window"))
    assert f"from {later} until {soon}: only about" in line
    assert "of the sends fit before the deadline" in line


def _quiet_now_in_utc_plus_2() -> tuple[str, datetime]:
    """Quiet hours that hold now in UTC+2 (Etc/GMT-2) but not in UTC, and when they end (UTC)."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    start, end = now + timedelta(hours=1), now + timedelta(hours=3)  # UTC+2 wall times
    return f'"{start:%H:%M}-{end:%H:%M}"', end - timedelta(hours=2)


@pytest.mark.parametrize("mode", ["individual", "batch"])
def test_quiet_hours_defer_recipients_and_the_run_says_when_to_come_back(
    cli: Cli, mode: str
) -> None:
    hours, opens = _quiet_now_in_utc_plus_2()
    recipients = cli.tmp / "zoned.csv"
    lines = ["phone,first_name,code,timezone"]
    lines += [f"+1201555{i:04d},A{i},{i},UTC" for i in range(1, 6)]
    lines += [f"+1201555{i:04d},B{i},{i},Etc/GMT-2" for i in range(6, 9)]
    lines += ["+12015550009,C9,9,"]  # none given: from the number (New York, open now)
    recipients.write_text("\n".join(lines) + "\n")
    extra = {"quiet_hours": hours, "timezone": '"UTC"', "mode": f'"{mode}"'}
    path = cli.campaign_file(recipients=recipients, **extra)

    dry = cli.run("run", str(path), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "3 held back until " + opens.isoformat().replace("+00:00", "Z") in dry.stdout
    assert cli.sent() == []

    result = cli.run("run", str(path))
    assert result.returncode == 0, result.stderr
    expected = "the next window opens at " + opens.isoformat().replace("+00:00", "Z")
    assert "3 recipients wait for their sending hours" in result.stdout
    assert expected in result.stdout
    sent = {m["identity"] for m in cli.sent()}
    assert sent == {f"+1201555{i:04d}" for i in (1, 2, 3, 4, 5, 9)}
    # A message sent in UTC's window cannot outlive it: its ttl ends when quiet hours begin.
    utc_ttl = next(int(m["ttl"][:-1]) for m in cli.sent() if m["identity"] == "+12015550001")
    assert 3000 < utc_ttl <= 3600

    again = cli.run("run", str(path))  # cron, a minute later: still nothing due
    assert again.returncode == 0 and expected in again.stdout
    assert len(cli.sent()) == 6
    status = cli.run("status", "e2e")
    assert "PENDING" in status.stdout


def test_the_command_imports_no_server_it_does_not_start() -> None:
    """`campaign run` against real Sinch starts neither the sandbox nor the receiver: their
    servers (aiohttp.web and the rest) are imported only when started, or when named."""
    script = (
        "import sys\n"
        "from campaign import cli, run, sandbox, receiver\n"
        "from campaign.campaignfile import load\n"
        "servers = ['aiohttp.web', 'campaign.sandbox.app', 'campaign.receiver.app']\n"
        "assert not [m for m in servers if m in sys.modules], sys.modules.keys()\n"
        "assert sandbox.SandboxSettings.__name__ == 'SandboxSettings'\n"
        "assert receiver.ReceiverServer.__name__ == 'ReceiverServer'\n"
        "assert 'campaign.receiver.server' in sys.modules\n"
        "try:\n"
        "    sandbox.nothing\n"
        "except AttributeError as exc:\n"
        "    assert 'nothing' in str(exc)\n"
        "else:\n"
        "    raise AssertionError('no AttributeError')\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
