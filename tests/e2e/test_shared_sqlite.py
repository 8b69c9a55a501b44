"""One SQLite file, several processes: `campaign receiver` writes a flood of callbacks into it
while `cancel`, a run that meets its deadline, `status` and `report` work on the same file.

Every command must wait its turn for the write lock (the busy timeout), never fail with
"database is locked": a writer takes the lock when its transaction begins, since a transaction
that reads and then writes cannot wait for a lock that another process took in between.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from campaign.sandbox import SandboxSettings, ThreadedSandbox
from tests.e2e.test_tracking_e2e import free_port
from tests.runs import identities, sandbox_env

pytestmark = pytest.mark.crash

SECRET = "shared-sqlite-secret"
FLOOD = 6_000  # recipients whose callbacks (three or four each) arrive during the commands


class Shared:
    def __init__(self, tmp: Path, sandbox: ThreadedSandbox, port: int) -> None:
        self.tmp = tmp
        self.sandbox = sandbox
        self.db = tmp / "campaign.db"
        (tmp / "config.toml").write_text(
            "[sinch]\n"
            f'auth_url = "{sandbox.url}/oauth2/token"\n'
            f'conversation_url = "{sandbox.url}"\n'
            f'batch_url = "{sandbox.url}"\n'
            "sandbox = false\n"
            "[database]\n"
            f'url = "sqlite:///{self.db}"\n'
            "[sending]\n"
            "requests_per_second = 800\n"
            "batch_size = 100\n"
            "[receiver]\n"
            'host = "127.0.0.1"\n'
            f"port = {port}\n"
            "external = true\n"
        )
        self.env = sandbox_env(
            SINCH_WEBHOOK_SECRET=SECRET, CAMPAIGN_CONFIG=str(tmp / "config.toml")
        )

    def campaign(
        self, name: str, rows: list[str], mode: str, send: str = "", top: str = ""
    ) -> Path:
        recipients = self.tmp / f"{name}.csv"
        recipients.write_text("phone,name\n" + "".join(f"{p},N{i}\n" for i, p in enumerate(rows)))
        path = self.tmp / f"{name}.toml"
        path.write_text(
            f'name = "{name}"\nrecipients = "{recipients}"\nmode = "{mode}"\n'
            f'channel = "SMS"\nidentity_column = "phone"\n{top}'
            '[message]\ntext_message = { text = "Hi ${name}" }\n' + send
        )
        return path

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "campaign", *args],
            env=self.env,
            cwd=self.tmp,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "campaign", *args],
            env=self.env,
            cwd=self.tmp,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def counts(self, name: str) -> dict[str, int]:
        result = self.cli("status", name, "--json")
        assert result.returncode == 0, result.stderr
        return {k: v for k, v in json.loads(result.stdout)["counts"].items() if v}

    def callbacks_sent(self) -> int:
        return int(self.sandbox.state.stats_json()["callbacks_sent"])


@pytest.fixture
def shared(tmp_path: Path) -> Iterator[Shared]:
    port = free_port()
    settings = SandboxSettings(
        seed=13,
        callback_url=f"http://127.0.0.1:{port}/sinch/callbacks",
        webhook_secret=SECRET,
        queued_delay_s=0.2,
        queued_jitter_s=2.0,
        delivered_delay_s=0.5,
        delivered_jitter_s=4.0,
        read_delay_s=1.0,
        read_jitter_s=6.0,
        duplicate_callback_rate=0.2,
        callback_retry_base_s=0.1,
        callback_max_attempts=30,
        callback_concurrency=64,
    )
    with ThreadedSandbox(settings) as sandbox:
        state = Shared(tmp_path, sandbox, port)
        receiver = state.start("receiver")
        try:
            assert receiver.stdout is not None
            assert "Receiving Sinch callbacks on" in receiver.stdout.readline()
            yield state
        finally:
            receiver.send_signal(signal.SIGTERM)
            _, err = receiver.communicate(timeout=30)
        assert receiver.returncode == 0, err
        assert "locked" not in err


def _no_lock_errors(result: subprocess.CompletedProcess[str]) -> None:
    assert "locked" not in result.stderr + result.stdout, result.stderr


def test_commands_beside_a_receiver_under_callback_load_never_find_the_database_locked(
    shared: Shared,
) -> None:
    rows = identities(FLOOD + 3_000)
    later = (datetime.now(UTC) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    # Scheduled batches, to be cancelled at Sinch and in the database while callbacks arrive.
    scheduled = shared.campaign(
        "later", rows[FLOOD : FLOOD + 2_000], "batch", f'[send]\nsend_after = "{later}"\n'
    )
    result = shared.cli("run", str(scheduled))
    assert result.returncode == 0, result.stderr
    # The flood: their callbacks keep the receiver writing for several seconds.
    flood = shared.campaign("flood", rows[:FLOOD], "batch")
    result = shared.cli("run", str(flood))
    assert result.returncode == 0, result.stderr
    started = shared.callbacks_sent()
    # A run that meets its deadline while the receiver writes: its rows left become CANCELLED.
    deadline = (datetime.now(UTC) + timedelta(seconds=3)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    slow = shared.campaign(
        "deadline", rows[FLOOD + 2_000 :], "individual", top=f'deadline = "{deadline}"\n'
    )
    slow_config = shared.tmp / "slow.toml"
    slow_config.write_text(
        (shared.tmp / "config.toml")
        .read_text()
        .replace("requests_per_second = 800", "requests_per_second = 100")
    )
    env = shared.env
    shared.env = {**env, "CAMPAIGN_CONFIG": str(slow_config)}
    run = shared.start("run", str(slow))
    shared.env = env
    try:
        time.sleep(1.0)
        cancel = shared.cli("cancel", "later")
        _no_lock_errors(cancel)
        assert cancel.returncode == 0, cancel.stderr
        assert (
            "cancelled 0 recipients not yet sent and 2,000 in 20 scheduled batches" in cancel.stdout
        )
        for _ in range(3):
            for command in (
                ("status", "flood"),
                ("report", "flood", "-o", str(shared.tmp / "r.csv")),
            ):
                result = shared.cli(*command)
                _no_lock_errors(result)
                assert result.returncode == 0, result.stderr
        out, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    assert "locked" not in out + err, err
    assert run.returncode == 0, err
    # Either the deadline passed while sending, or what was left would have left the app's
    # queue (full of the flood's messages) only after it: the same CANCELLED either way.
    assert "deadline: the deadline passed" in out or "before the deadline" in out, out
    assert shared.callbacks_sent() - started > 1_000, "the receiver was not under load"
    # The database agrees with Sinch: everything of `later` cancelled there and here.
    assert shared.counts("later") == {"CANCELLED": 2_000}
    held = shared.sandbox.state.batches.values()
    assert [b.status.name for b in held if b.send_after] == ["CANCELLED"] * 20
    statuses = shared.counts("deadline")
    assert statuses.get("CANCELLED", 0) > 0 and "PENDING" not in statuses, statuses


def test_a_cancel_that_sinch_took_but_the_database_missed_is_repaired_by_the_next(
    shared: Shared,
) -> None:
    """Sinch cancelled the scheduled batches, and then the write failed: the next `cancel`
    asks Sinch, which holds them CANCELLED, and records it (it once found nothing to do and
    left the recipients QUEUED for good)."""
    later = (datetime.now(UTC) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    path = shared.campaign("later", identities(500), "batch", f'[send]\nsend_after = "{later}"\n')
    assert shared.cli("run", str(path)).returncode == 0
    assert shared.counts("later") == {"QUEUED": 500}
    for batch in list(shared.sandbox.state.batches.values()):  # what the first cancel did
        batch.status = type(batch.status).CANCELLED
        batch.pending = []
    result = shared.cli("cancel", "later")
    assert result.returncode == 0, result.stderr
    assert "500 in 5 scheduled batches" in result.stdout
    assert shared.counts("later") == {"CANCELLED": 500}
