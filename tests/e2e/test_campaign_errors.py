"""Errors that no recipient is to blame for stop the run instead of failing everyone: a 404
on the sends (Sinch does not know the app where the requests go), and the same refusal of the
message again and again. What was not sent stays PENDING; corrected, the same command sends
everyone once.

The preflight reads the app before anything is written, so a wrong ``SINCH_APP_ID`` is usually
caught there (``test_preflight_app``). Here the sandbox knows the wrong app for the
preflight's read alone, as when an app is deleted while a run starts: the 404 comes on the
sends, the case this stop is for.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from campaign import config
from tests.e2e.test_cli_e2e import SAMPLE, Cli
from tests.e2e.test_cli_e2e import cli as cli
from tests.e2e.test_cli_e2e import sandbox as sandbox

WRONG_APP = "01WRONGAPP0000000000000000"
ROWS = 120


def _few(cli: Cli) -> Any:
    few = cli.tmp / "few.csv"
    few.write_text("".join((SAMPLE / "recipients.csv").read_text().splitlines(True)[: ROWS + 1]))
    return few


def _status(cli: Cli) -> dict[str, Any]:
    result = cli.run("status", "e2e", "--json")
    assert result.returncode == 0, result.stderr
    view: dict[str, Any] = json.loads(result.stdout)
    return view


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "error" in line]


def _sent_once(cli: Cli, valid: int) -> None:
    identities = [m["identity"] for m in cli.sent()]
    assert len(identities) == len(set(identities)) == valid


@pytest.mark.parametrize("mode", ["individual", "batch"])
def test_a_404_on_the_sends_stops_the_run_and_fails_nobody(
    cli: Cli, mode: str, database_url: str
) -> None:
    cli.use_database(database_url)
    # At 50/s the rows take seconds to send: what stops them is the first 404, however slow
    # the machine is to answer it.
    cli.config.write_text(cli.config.read_text().replace("= 800", "= 50"))
    campaign = str(cli.campaign_file(recipients=_few(cli), mode=f'"{mode}"'))
    state = cli.sandbox.state
    # The app is deleted once the preflight has read it: every send after that is a 404.
    state.settings = dataclasses.replace(
        state.settings, app_ids=(config.SANDBOX_APP_ID, WRONG_APP), delete_app_after_reads=1
    )
    cli.env["SINCH_APP_ID"] = WRONG_APP

    result = cli.run("run", campaign)
    assert result.returncode == 2, result.stderr
    assert _error_lines(result.stderr) == [
        f"campaign: error: Sinch does not know the app '{WRONG_APP}' in region 'us' (HTTP 404 "
        f"NOT_FOUND: App '{WRONG_APP}' not found); sending stopped and nobody was marked failed "
        "for it: check SINCH_APP_ID, SINCH_REGION and SINCH_PROJECT_ID, then run the same "
        "command again (with --force-target when they name another app than the campaign "
        "began with)"
    ]
    assert config.SANDBOX_KEY_SECRET not in result.stderr + result.stdout
    assert cli.sent() == []
    assert state.stats.requests < 30  # stopped at once, not recipient by recipient
    view = _status(cli)
    counts = {k: v for k, v in view["counts"].items() if v}
    valid = counts["PENDING"]
    assert set(counts) <= {"PENDING", "REJECTED", "DUPLICATE"} and valid > ROWS // 2
    assert view["state"] != "DONE"

    cli.env["SINCH_APP_ID"] = config.SANDBOX_APP_ID  # corrected: it sends everyone once
    cli.patch_sandbox(delete_app_after_reads=0)
    again = cli.run("run", campaign, "--force-target")
    assert again.returncode in (0, 1), again.stderr
    _sent_once(cli, valid)
    assert "PENDING" not in {k for k, v in _status(cli)["counts"].items() if v}


def _refused_message_campaign(cli: Cli, mode: str, *, bogus: bool) -> str:
    """A campaign whose ``[message]`` has a field Sinch does not know (``bogus``): the
    campaign file's checks let it through (they check what Sinch needs, not what it refuses
    besides), and Sinch refuses ``message.bogus`` for every recipient."""
    path = cli.campaign_file(recipients=_few(cli), mode=f'"{mode}"')
    if bogus:
        text = path.read_text()
        path.write_text(text.replace("[message]\n", '[message]\nbogus = "x"\n'))
    return str(path)


@pytest.mark.parametrize("mode", ["individual", "batch"])
def test_a_message_refused_for_everyone_stops_the_run(
    cli: Cli, mode: str, database_url: str
) -> None:
    cli.use_database(database_url)
    campaign = _refused_message_campaign(cli, mode, bogus=True)
    result = cli.run("run", campaign)
    assert result.returncode == 2, result.stderr
    # Individual: the four refusals before the fifth FAILED; batch: the refusals are splits
    # of one batch (bisected), so nobody failed before the stop.
    failed = 4 if mode == "individual" else 0
    before = (
        f"{failed} recipients failed with it before the run stopped; `campaign retry` will "
        "put them back"
        if failed
        else "nobody was marked failed for it"
    )
    assert _error_lines(result.stderr) == [
        "campaign: error: Sinch refused the campaign's message 5 times in a row (HTTP 400 "
        f"INVALID_ARGUMENT: message.bogus: unknown field); sending stopped: {before}; correct "
        "the message and run the same command again"
    ]
    assert cli.sent() == []
    view = _status(cli)
    counts = {k: v for k, v in view["counts"].items() if v}
    assert counts.get("FAILED", 0) == failed
    assert set(counts) <= {"PENDING", "REJECTED", "DUPLICATE", "FAILED"}
    valid = counts["PENDING"] + failed
    assert view["state"] != "DONE"
    if failed:  # Sinch's field violation is kept with each failure
        report = cli.tmp / "report.csv"
        assert cli.run("report", "e2e", "--output", str(report)).returncode == 0
        rows = [r for r in report.read_text().splitlines() if ",FAILED," in r]
        assert len(rows) == failed
        assert all("message.bogus: unknown field" in r for r in rows), rows

    corrected = _refused_message_campaign(cli, mode, bogus=False)
    again = cli.run("run", corrected)
    assert again.returncode in (0, 1), again.stderr
    _sent_once(cli, valid - failed)
