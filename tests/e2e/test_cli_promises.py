"""End to end: what the README's CLI reference promises, driven as a user runs the command.

Global options before the subcommand, a receiver port that is taken, the status of a campaign
that is not due yet, and what `campaign db upgrade` says it did.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from campaign.sandbox import SandboxSettings, ThreadedSandbox
from campaign.store.engine import HEAD_REVISION, downgrade_sync
from tests.e2e.test_cli_e2e import Cli

HEAD = next(
    p.stem
    for p in (Path(__file__).resolve().parents[2] / "migrations" / "versions").glob("*.py")
    if p.stem.startswith(HEAD_REVISION + "_")
)


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    with ThreadedSandbox(SandboxSettings(seed=7)) as sandbox:
        yield Cli(tmp_path, sandbox)


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# --- 1. global options before the subcommand --------------------------------------------------


def test_global_options_are_accepted_before_and_after_the_subcommand(cli: Cli) -> None:
    del cli.env["CAMPAIGN_CONFIG"]  # only the flag says where the config is
    config = str(cli.config)
    # --database before the subcommand is the database used (not the config file's), and the
    # subcommand's own default does not overwrite it.
    other = cli.tmp / "other.db"
    upgraded = cli.run("--config", config, "--database", f"sqlite:///{other}", "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert other.exists() and not cli.db.exists()
    between = cli.tmp / "between.db"
    nested = cli.run("db", "--config", config, "--database", f"sqlite:///{between}", "upgrade")
    assert nested.returncode == 0, nested.stderr
    assert between.exists() and not cli.db.exists()

    # -v before the subcommand: more logging (Alembic's INFO lines as the schema is migrated).
    verbose = cli.run("-v", "--config", config, "db", "upgrade")
    assert verbose.returncode == 0, verbose.stderr
    assert "Running upgrade" in verbose.stderr
    assert cli.db.exists()

    before = cli.run("--config", config, "status")
    assert before.returncode == 0, before.stderr
    assert before.stdout.strip() == "no campaigns yet"
    after = cli.run("status", "--config", config)  # after the subcommand, as before
    assert after.returncode == 0, after.stderr
    assert after.stdout.strip() == "no campaigns yet"
    mixed = cli.run("-v", "status", "--config", config, "-v", "--json")
    assert mixed.returncode == 0, mixed.stderr
    assert mixed.stdout.strip() == "[]"
    no_action = cli.run("--config", config, "db")
    assert no_action.returncode == 2  # a missing action is still a usage error


# --- 2. the receiver's port is taken ------------------------------------------------------------


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def test_a_taken_receiver_port_is_one_clear_line_and_nothing_is_sent(
    cli: Cli, taken_port: int
) -> None:
    cli.config.write_text(
        cli.config.read_text() + f'\n[receiver]\nhost = "127.0.0.1"\nport = {taken_port}\n'
    )
    cli.env["SINCH_WEBHOOK_SECRET"] = "webhook-secret-for-tests"
    (cli.tmp / "few.csv").write_text("phone,first_name,code\n+12015550101,A,1\n")
    path = cli.campaign_file(recipients=cli.tmp / "few.csv")
    result = cli.run("run", str(path), "--wait-for-delivery", "5")
    assert result.returncode == 2, result.stderr
    lines = _lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("campaign: error: ")
    assert "internal error" not in lines[0]
    assert f"127.0.0.1:{taken_port} is in use" in lines[0]
    assert "[receiver] port" in lines[0]
    assert "`campaign receiver`" in lines[0] and "[receiver] external = true" in lines[0]
    assert cli.sent() == []
    missing = cli.run("status", "e2e")
    assert "no campaign named 'e2e'" in missing.stderr  # nothing was started either

    # The receiver command itself says the same kind of line.
    served = cli.run("receiver", "--port", str(taken_port), timeout=30)
    assert served.returncode == 2, served.stderr
    lines = _lines(served.stderr)
    assert len(lines) == 1 and f"127.0.0.1:{taken_port} is in use" in lines[0], served.stderr
    assert "--port" in lines[0]


# --- 3. the status of a campaign not due yet ------------------------------------------------------


def _utc(seconds_from_now: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + seconds_from_now))


def test_status_of_a_campaign_not_due_yet_says_when_it_is_scheduled(cli: Cli) -> None:
    later = _utc(3600)
    (cli.tmp / "first.csv").write_text("phone,first_name,code\n+12015550101,A,1\n")
    path = cli.campaign_file(recipients=cli.tmp / "first.csv", send_after=f'"{later}"')
    for _ in range(2):  # cron calls it again and again before it is due
        early = cli.run("run", str(path))
        assert early.returncode == 0, early.stderr
        assert f"not due yet; it may send from {later}" in early.stdout
    assert cli.sent() == []

    status = cli.run("status", "e2e")
    assert status.returncode == 0, status.stderr
    lines = _lines(status.stdout)
    assert len(lines) == 1, status.stdout
    assert "scheduled" in lines[0].lower() and later in lines[0]
    view = json.loads(cli.run("status", "e2e", "--json").stdout)
    assert view["state"] == "SCHEDULED"
    assert view["send_after"] == later
    assert view["rows"] == 0
    assert later in cli.run("status").stdout  # the list says it too

    # Before it is due, the campaign file and its recipients may still change: the run that
    # finds it due takes them as they are then (another file, another mode, an earlier time).
    (cli.tmp / "second.csv").write_text(
        "phone,first_name,code\n+12015550201,B,2\n+12015550202,C,3\n"
    )
    path = cli.campaign_file(
        recipients=cli.tmp / "second.csv", send_after=f'"{_utc(-60)}"', mode='"batch"'
    )
    due = cli.run("run", str(path))
    assert due.returncode == 0, due.stderr
    assert sorted(m["identity"] for m in cli.sent()) == ["+12015550201", "+12015550202"]
    view = json.loads(cli.run("status", "e2e", "--json").stdout)
    assert view["state"] == "DONE" and view["mode"] == "batch" and view["rows"] == 2


def test_a_scheduled_campaign_can_be_cancelled_before_it_is_due(cli: Cli) -> None:
    (cli.tmp / "few.csv").write_text("phone,first_name,code\n+12015550101,A,1\n")
    path = cli.campaign_file(recipients=cli.tmp / "few.csv", send_after=f'"{_utc(3600)}"')
    assert cli.run("run", str(path)).returncode == 0
    cancelled = cli.run("cancel", "e2e")
    assert cancelled.returncode == 0, cancelled.stderr
    path = cli.campaign_file(recipients=cli.tmp / "few.csv")  # due now
    again = cli.run("run", str(path))
    assert again.returncode == 0, again.stderr
    assert "already cancelled; nothing to do" in again.stdout
    assert cli.sent() == []


# --- 4. what `campaign db upgrade` did ------------------------------------------------------------


def test_db_upgrade_says_what_it_migrated_and_masks_the_password(
    cli: Cli, database_url: str
) -> None:
    url = database_url
    if url.startswith("postgresql"):  # the test server trusts local connections
        url = make_url(url).set(password="pw-that-must-not-show").render_as_string(False)
    shown = make_url(url).render_as_string(hide_password=True)
    first = cli.run("db", "upgrade", "--database", url)
    assert first.returncode == 0, first.stderr
    count = int(HEAD_REVISION)
    assert first.stdout.strip() == (
        f"migrated {shown} from (empty) to {HEAD}: {count} migrations"
    ), first.stdout
    again = cli.run("db", "upgrade", "--database", url)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == f"database {shown} is at the latest schema ({HEAD})"
    downgrade_sync(url, "0009")
    part = cli.run("db", "upgrade", "--database", url)
    assert part.returncode == 0, part.stderr
    assert part.stdout.strip() == (
        f"migrated {shown} from 0009_formed_chunks to {HEAD}: {count - 9} migrations"
    )
    for result in (first, again, part):
        assert "pw-that-must-not-show" not in result.stdout + result.stderr


def test_a_task_error_nobody_retrieved_is_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    """asyncio's last-resort handler prints a traceback of a hundred lines for a task whose
    error nobody read (a database connection closed by the server); the CLI's says it in one
    line, and the command's own error still says why it stopped."""
    import asyncio
    import gc

    from campaign import cli

    async def command() -> int:
        async def fails() -> None:
            raise ConnectionError("server closed the connection\n\tmore detail")

        task = asyncio.create_task(fails())
        await asyncio.sleep(0.01)
        del task
        gc.collect()  # the unretrieved error is reported when the task is collected
        await asyncio.sleep(0)
        return 0

    with caplog.at_level("WARNING"):
        assert asyncio.run(cli._supervised(command(), verbose=False)) == 0
    reports = [r for r in caplog.records if "never retrieved" in r.getMessage()]
    assert len(reports) == 1
    assert reports[0].getMessage() == (
        "Task exception was never retrieved: ConnectionError: server closed the connection"
    )
    assert reports[0].exc_info is None
