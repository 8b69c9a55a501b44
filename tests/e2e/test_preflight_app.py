"""The preflight reads the app before anything is written or sent: Sinch answers 404 for an app
ID that the project does not have in the configured region (a wrong ``SINCH_APP_ID`` or
``SINCH_REGION``), and every request of the campaign would be refused the same way."""

from __future__ import annotations

import pytest

from campaign import config
from tests.e2e.test_cli_e2e import SAMPLE, Cli
from tests.e2e.test_cli_e2e import cli as cli
from tests.e2e.test_cli_e2e import sandbox as sandbox

WRONG_APP = "01WRONGAPP0000000000000000"


@pytest.mark.parametrize("mode", ["individual", "batch"])
def test_an_app_the_project_does_not_have_stops_the_run_before_anything_is_sent(
    cli: Cli, mode: str
) -> None:
    few = cli.tmp / "few.csv"
    few.write_text("".join((SAMPLE / "recipients.csv").read_text().splitlines(True)[:201]))
    campaign = str(cli.campaign_file(recipients=few, mode=f'"{mode}"'))
    cli.env["SINCH_APP_ID"] = WRONG_APP
    result = cli.run("run", campaign)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"campaign: error: Sinch has no app '{WRONG_APP}' in project ")
    assert "in region 'us'" in lines[0] and "nothing was sent" in lines[0]
    assert config.SANDBOX_KEY_SECRET not in result.stderr + result.stdout
    assert cli.sent() == []
    status = cli.run("status", "--json")
    assert status.returncode == 0, status.stderr
    assert "e2e" not in status.stdout  # nothing recorded: the right app starts it afresh

    cli.env["SINCH_APP_ID"] = config.SANDBOX_APP_ID
    result = cli.run("run", campaign)
    assert result.returncode in (0, 1), result.stderr
    identities = [m["identity"] for m in cli.sent()]
    assert identities and len(identities) == len(set(identities))
