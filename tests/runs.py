"""`campaign` as real processes against one sandbox and one database: the harness that the
crash, fault and database-outage tests share.

The sandbox runs in the test process (so a test sees exactly what "Sinch" accepted) and every
command runs as a user runs it: a subprocess configured by config.toml, with `sandbox = false`
and credentials in the environment.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text

from campaign import config
from campaign.sandbox import ThreadedSandbox
from campaign.store import chunks
from campaign.store.engine import create_engine_sync, upgrade_sync
from campaign.store.tables import batches, recipients

# Each recipient as the store reads it (a row that follows its chunk takes the chunk's status
# and batch id: campaign.store.chunks), for the raw queries of the tests: FROM {RECIPIENTS}.
RECIPIENTS = "({}) AS recipients".format(
    select(
        recipients.c.id,
        recipients.c.identity,
        recipients.c.chunk,
        chunks.status_of().label("status"),
        func.coalesce(recipients.c.batch_id, batches.c.batch_id).label("batch_id"),
    )
    .select_from(recipients.outerjoin(batches, chunks.JOIN))
    .compile(compile_kwargs={"literal_binds": True})
)

NAME = "crash"

# Every status that ends a valid row's journey for a run (it is not PENDING or IN_FLIGHT).
SETTLED = frozenset(
    {"QUEUED", "QUEUED_ON_CHANNEL", "DELIVERED", "READ", "SWITCHING_CHANNEL", "FAILED", "IN_DOUBT"}
)


def identities(rows: int) -> list[str]:
    """``rows`` distinct valid US numbers, E.164."""
    return [f"+1201{2000000 + i:07d}" for i in range(rows)]


def sandbox_env(**extra: str) -> dict[str, str]:
    """This process's environment without SINCH_* and CAMPAIGN_*, plus the sandbox's
    credentials and ``extra``: what a `campaign` subprocess runs with."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SINCH_", "CAMPAIGN_"))},
        "SINCH_PROJECT_ID": config.SANDBOX_PROJECT_ID,
        "SINCH_APP_ID": config.SANDBOX_APP_ID,
        "SINCH_KEY_ID": config.SANDBOX_KEY_ID,
        "SINCH_KEY_SECRET": config.SANDBOX_KEY_SECRET,
        **extra,
    }


def finish(process: subprocess.Popen[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Wait for ``process``, a `campaign` command. One still running after ``timeout`` seconds
    is asked for its stacks (SIGUSR1: campaign.cli.stacks), killed, and fails the test with
    the end of its stderr: a hang says where it hung."""
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGUSR1)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)
        process.kill()
        out, err = process.communicate()
        raise AssertionError(
            f"{process.args!r} did not end within {timeout:g} s; "
            f"its stderr ended with:\n{err[-20_000:]}"
        ) from None
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


class Runs:
    """One campaign of ``rows`` recipients, run by `campaign run` processes against ``sandbox``."""

    def __init__(
        self,
        tmp: Path,
        sandbox: ThreadedSandbox,
        database_url: str,
        *,
        rows: int,
        mode: str = "individual",
        rate: float = 800,
        batch_size: int = 1000,
        extra_sending: str = "",
        auth_url: str | None = None,
    ) -> None:
        self.tmp = tmp
        self.sandbox = sandbox
        self.database_url = database_url
        self.rows = rows
        # Migrated first, as `campaign db upgrade` would: the test reads the database while
        # the runs work, and must not race the first run's own migration of a new SQLite file.
        upgrade_sync(database_url)
        self.config = tmp / "config.toml"
        self.config.write_text(
            "[sinch]\n"
            f'auth_url = "{auth_url or sandbox.url + "/oauth2/token"}"\n'
            f'conversation_url = "{sandbox.url}"\n'
            f'batch_url = "{sandbox.url}"\n'
            "sandbox = false\n"
            "timeout = 10\n"
            "[database]\n"
            f'url = "{database_url}"\n'
            "[sending]\n"
            f"requests_per_second = {rate}\n"
            f"batch_size = {batch_size}\n"
            "heartbeat_interval = 0.25\n"
            "worker_lease = 2.0\n" + extra_sending
        )
        self.recipients = tmp / "recipients.csv"
        self.recipients.write_text(
            "phone,name\n" + "".join(f"{p},N{i}\n" for i, p in enumerate(identities(rows)))
        )
        self.campaign = tmp / "campaign.toml"
        self.campaign.write_text(
            f'name = "{NAME}"\n'
            f'recipients = "{self.recipients}"\n'
            f'mode = "{mode}"\n'
            'channel = "SMS"\n'
            'identity_column = "phone"\n'
            "[message]\n"
            'text_message = { text = "Hi ${name}" }\n'
        )
        self.env = sandbox_env(
            SINCH_WEBHOOK_SECRET=config.SANDBOX_WEBHOOK_SECRET, CAMPAIGN_CONFIG=str(self.config)
        )
        self._engine = create_engine_sync(database_url)

    def close(self) -> None:
        self._engine.dispose()

    # --- processes ----------------------------------------------------------------------------

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "campaign", *args]

    def start(self, *args: str, **popen: Any) -> subprocess.Popen[str]:
        """`campaign run` on the campaign (or the command ``args``), not waited for."""
        command = args or ("run", str(self.campaign))
        return subprocess.Popen(
            self.argv(*command),
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=self.tmp,
            **popen,
        )

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """`campaign run` on the campaign (or the command ``args``), waited for. One that does
        not end within ``timeout`` fails the test with where it was stuck (see :func:`finish`)."""
        return finish(self.start(*args), timeout)

    # --- what the sandbox accepted ------------------------------------------------------------

    def accepted(self) -> int:
        """Messages the sandbox accepted so far (individual sends and batch recipients)."""
        return len(self.sandbox.state.messages)

    def sent(self) -> Counter[str]:
        """How many times the sandbox accepted each identity."""
        return Counter(m.route[0].identity for m in list(self.sandbox.state.messages))

    # --- what the database says ---------------------------------------------------------------

    def query(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        with self._engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql), params)]

    def statuses(self) -> dict[str, str]:
        """``{identity: status}`` of every valid row."""
        return {
            identity: status
            for identity, status in self.query(
                f"SELECT identity, status FROM {RECIPIENTS} WHERE identity IS NOT NULL"
            )
        }

    def in_flight(self) -> set[str]:
        return {
            i
            for (i,) in self.query(f"SELECT identity FROM {RECIPIENTS} WHERE status = 'IN_FLIGHT'")
        }

    def campaign_state(self) -> str | None:
        rows = self.query("SELECT state FROM campaigns WHERE name = :n", n=NAME)
        return str(rows[0][0]) if rows else None

    def status_counts(self) -> dict[str, int]:
        result = self.run("status", NAME, "--json", timeout=60)
        assert result.returncode == 0, result.stderr
        counts: dict[str, int] = json.loads(result.stdout)["counts"]
        return counts

    def report(self) -> list[dict[str, str]]:
        path = self.tmp / "report.csv"
        result = self.run("report", NAME, "--output", str(path), timeout=60)
        assert result.returncode == 0, result.stderr
        with path.open(newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))


def check_accounted_for(runs: Runs) -> tuple[list[dict[str, str]], Counter[str]]:
    """The invariants every run of a campaign keeps, checked through `campaign report`, the
    database and the sandbox's record: each row reported once, none left PENDING or IN_FLIGHT,
    none accepted twice by the sandbox, every QUEUED (or later) row accepted by it exactly once.
    Returns the report and the sandbox's count per identity."""
    report = runs.report()
    assert [int(r["row"]) for r in report] == list(range(1, runs.rows + 1))
    sent = runs.sent()
    assert not [i for i, n in sent.items() if n > 1], "accepted twice by the sandbox"
    statuses = Counter(r["status"] for r in report)
    assert set(statuses) <= SETTLED, statuses  # none PENDING, IN_FLIGHT, REJECTED...
    assert sum(statuses.values()) == runs.rows
    unsent = [
        r for r in report if r["status"] in {"QUEUED", "DELIVERED"} and not sent[r["identity"]]
    ]
    assert not unsent, f"{len(unsent)} rows QUEUED that the sandbox never accepted"
    missing = [r for r in report if r["status"] == "FAILED" and sent[r["identity"]]]
    assert not missing, f"{len(missing)} rows FAILED that the sandbox accepted"
    assert runs.campaign_state() == "DONE"
    return report, sent


def fd_table_size(pid: int | str = "self") -> int | None:
    """The slots in a process's table of file descriptors (Linux: ``FDSize``); None elsewhere."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    return next(
        (int(line.split()[1]) for line in status.splitlines() if line.startswith("FDSize:")), None
    )
