"""The dry run's two clocks: the time to submit the campaign at the request rate, and the time
for Sinch to pass it on to the channels, which its app's MT queue does at the app's outbound
rate (20-25 messages/s unless raised), behind what the queue already holds. 10,000 rows
submitted in seconds still take Sinch hours at 20/s, and their ttl may run out in the queue."""

from __future__ import annotations

import json
import re
import time

import requests

from tests.e2e.test_cli_e2e import Cli
from tests.e2e.test_cli_e2e import cli as cli
from tests.e2e.test_cli_e2e import sandbox as sandbox


def _line(stdout: str, label: str) -> str:
    found = [line for line in stdout.splitlines() if line.startswith(label)]
    assert len(found) == 1, stdout
    return found[0]


def test_the_dry_run_shows_the_time_to_submit_and_the_time_for_sinch_to_drain(cli: Cli) -> None:
    cli.patch_sandbox(outbound_rate=20, queue_limit=500_000)
    result = cli.run("run", str(cli.campaign_file()), "--dry-run")
    assert result.returncode == 0, result.stderr
    valid = int(_line(result.stdout, "valid").split()[1].replace(",", ""))
    assert re.fullmatch(r"submit +\d+\.\d s at 800 requests/s", _line(result.stdout, "submit"))
    minutes, seconds = divmod(round(valid / 20), 60)
    assert _line(result.stdout, "drain") == (
        f"drain         {minutes} min {seconds} s at 20 messages/s, the app's outbound rate"
    )
    assert "warning" not in result.stdout  # no ttl: nothing expires in the queue
    assert not cli.db.exists()  # reading the app wrote nothing


def test_a_ttl_shorter_than_the_drain_is_a_warning(cli: Cli) -> None:
    # What the queue holds already delays this campaign too. 2/s: the 40 messages put there
    # first still wait 20 s later, however long the dry run takes to start (at 20/s they were
    # gone within 2 s, before a dry run on a loaded machine read the queue).
    cli.patch_sandbox(outbound_rate=2)
    token = requests.post(
        f"{cli.sandbox.url}/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(cli.env["SINCH_KEY_ID"], cli.env["SINCH_KEY_SECRET"]),
        timeout=5,
    ).json()["access_token"]
    project, app = cli.env["SINCH_PROJECT_ID"], cli.env["SINCH_APP_ID"]
    for i in range(40):
        sent = requests.post(
            f"{cli.sandbox.url}/v1/projects/{project}/messages:send",
            json={
                "app_id": app,
                "recipient": {"identified_by": {"channel_identities": [
                    {"channel": "SMS", "identity": f"+1201555{i:04d}"}
                ]}},
                "message": {"text_message": {"text": "ahead"}},
            },
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        )  # fmt: skip
        assert sent.status_code == 200, sent.text
    path = cli.tmp / "ttl.toml"
    text = cli.campaign_file().read_text()
    path.write_text(text.replace("[send]\n", '[send]\nttl = "300s"\n'))
    result = cli.run("run", str(path), "--dry-run")
    assert result.returncode == 0, result.stderr
    drain = _line(result.stdout, "drain")
    found = re.search(r"behind ([\d,]+) already queued", drain)
    assert found is not None, drain
    assert 0 < int(found[1].replace(",", "")) <= 40
    assert _line(result.stdout, "warning").startswith(
        "warning       the last messages would wait about "
    )
    assert "past their ttl of 5 min 0 s: they would expire there" in result.stdout


def test_the_dry_run_on_the_built_in_sandbox_reads_its_app(cli: Cli) -> None:
    embedded = cli.tmp / "embedded.toml"
    embedded.write_text("[sinch]\nsandbox = true\n[sandbox]\noutbound_rate = 50\n")
    result = cli.run("--config", str(embedded), "run", str(cli.campaign_file()), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "at 50 messages/s, the app's outbound rate" in _line(result.stdout, "drain")


def test_the_progress_and_status_show_both_clocks_and_stale_counts_from_the_drain(
    cli: Cli,
) -> None:
    """400 messages submitted in about half a second wait up to 8 s in a queue that drains
    50/s. The progress line and `status` show both clocks; a queued message is not called
    stale (here after 1 s without a callback) while it is still expected in the queue."""
    cli.patch_sandbox(outbound_rate=50, queue_limit=10_000)
    rows = 400
    path = cli.tmp / "few.csv"
    path.write_text(
        "phone,first_name,code\n"
        + "".join(f"+1201{4000000 + i:07d},N{i},{i:06d}\n" for i in range(rows))
    )
    result = cli.run("run", str(cli.campaign_file(recipients=path, stale_after="1")))
    assert result.returncode == 0, result.stderr
    progress = " ".join(result.stderr.split())  # the last line, as wrapped to the width
    assert re.search(r"submit \S+ s · drain \S+ s · ", progress)
    assert re.search(r"Sinch queue [\d,]+/10,000 at 50/s", progress)
    shown = cli.run("status", "e2e", "--json")
    assert shown.returncode == 0, shown.stderr
    view = json.loads(shown.stdout)
    assert view["queue"]["limit"] == 10_000 and view["queue"]["outbound"] == 50
    assert 0 < view["queue"]["now"] <= rows
    assert 0 < view["drain_seconds"] <= rows / 50
    text = cli.run("status", "e2e").stdout
    assert "to leave Sinch's queue" in text and "at 50 messages/s" in text
    time.sleep(2)  # sent more than stale_after ago, still in the queue by its drain
    assert json.loads(cli.run("status", "e2e", "--json").stdout)["stale"] == 0
