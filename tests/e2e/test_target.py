"""A campaign records where its messages go, the built-in sandbox or a Sinch project's app in
a region, and is never carried on somewhere else unasked: a campaign begun on the sandbox and
resumed against Sinch would report the sandbox's results as real, and one finished on the
sandbox would be called finished for Sinch. With Sinch credentials in the environment and
``sandbox = true``, a run says plainly that it is the sandbox."""

from __future__ import annotations

import json

from campaign import config
from tests.e2e.test_cli_e2e import SAMPLE, Cli
from tests.e2e.test_cli_e2e import cli as cli
from tests.e2e.test_cli_e2e import sandbox as sandbox

NOTE = "campaign: note: [sinch] sandbox = true: this sends to the built-in sandbox, not to Sinch"


def _embedded(cli: Cli) -> str:
    """A config like the shipped one: the built-in sandbox, the same database."""
    path = cli.tmp / "embedded.toml"
    path.write_text(f'[sinch]\nsandbox = true\n[database]\nurl = "sqlite:///{cli.db}"\n')
    return str(path)


def _few(cli: Cli) -> str:
    few = cli.tmp / "few.csv"
    few.write_text("".join((SAMPLE / "recipients.csv").read_text().splitlines(True)[:101]))
    return str(cli.campaign_file(recipients=few))


def test_a_campaign_begun_on_the_sandbox_is_not_carried_on_against_sinch(cli: Cli) -> None:
    campaign = _few(cli)
    first = cli.run("--config", _embedded(cli), "run", campaign)
    assert first.returncode in (0, 1), first.stderr
    assert "the built-in sandbox" in first.stdout  # the summary names it
    assert NOTE not in first.stderr  # no Sinch credentials here: nothing to confuse
    status = json.loads(cli.run("--config", _embedded(cli), "status", "e2e", "--json").stdout)
    assert status["target"] == config.SANDBOX_TARGET

    # The same campaign, finished on the sandbox, run against "Sinch" (the test's sandbox).
    second = cli.run("run", campaign)
    assert second.returncode == 2, second.stderr
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1, second.stderr
    assert lines[0] == (
        "campaign: error: e2e: the campaign was started on the built-in sandbox; this run would"
        f" send on Sinch project {config.SANDBOX_PROJECT_ID}, app {config.SANDBOX_APP_ID},"
        " region us (pass --force-target to carry it on there, or give the campaign another"
        " name)"
    )
    assert cli.sent() == []

    moved = cli.run("run", campaign, "--force-target")
    assert moved.returncode in (0, 1), moved.stderr
    assert "e2e: moved from the built-in sandbox to Sinch project" in moved.stdout
    status = json.loads(cli.run("status", "e2e", "--json").stdout)
    assert status["target"].startswith("Sinch project ")
    assert cli.sent() == []  # finished: moving it sends nothing again


def test_sinch_credentials_with_the_sandbox_on_say_it_is_the_sandbox(cli: Cli) -> None:
    cli.env["SINCH_KEY_ID"] = "a-real-looking-key-id"
    result = cli.run("--config", _embedded(cli), "run", _few(cli))
    assert result.returncode in (0, 1), result.stderr
    assert NOTE in result.stderr
    assert "sent to" in result.stdout and "the built-in sandbox" in result.stdout
