"""End to end: `campaign webhook setup|list|delete` against the sandbox over HTTP, and a
campaign whose delivery reports reach a `campaign receiver` only through the webhook it set up.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import requests

from campaign import config
from tests.e2e.test_cli_e2e import Cli, read_report
from tests.e2e.test_cli_e2e import cli as cli
from tests.e2e.test_cli_e2e import sandbox as sandbox

SECRET = "webhook-cli-secret"
TARGET = "https://hooks.example.com/sinch/callbacks"


def with_secret(cli: Cli, secret: str = SECRET) -> Cli:
    cli.env["SINCH_WEBHOOK_SECRET"] = secret
    return cli


def stored(cli: Cli) -> list[dict[str, object]]:
    """The webhooks the sandbox holds, secrets included."""
    return list(cli.sandbox.state.webhooks.values())


def listed(cli: Cli) -> list[dict[str, object]]:
    done = cli.run("webhook", "list", "--json")
    assert done.returncode == 0, done.stderr
    assert SECRET not in done.stdout + done.stderr
    views: list[dict[str, object]] = json.loads(done.stdout)
    return views


def test_setup_twice_leaves_one_webhook_and_list_never_prints_the_secret(cli: Cli) -> None:
    with_secret(cli)
    first = cli.run("webhook", "setup", "--target", TARGET)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("created webhook ") and SECRET not in first.stdout
    again = cli.run("webhook", "setup", "--target", TARGET)
    assert again.returncode == 0, again.stderr
    assert "already set up: nothing changed" in again.stdout
    (hook,) = stored(cli)
    assert hook["secret"] == SECRET and hook["target"] == TARGET
    assert hook["triggers"] == ["MESSAGE_DELIVERY", "MESSAGE_INBOUND"]

    table = cli.run("webhook", "list")
    assert table.returncode == 0 and SECRET not in table.stdout + table.stderr
    assert f"{hook['id']}  {TARGET}  MESSAGE_DELIVERY,MESSAGE_INBOUND  signed" in table.stdout
    assert listed(cli) == [
        {
            "id": hook["id"],
            "target": TARGET,
            "target_type": "HTTP",
            "triggers": ["MESSAGE_DELIVERY", "MESSAGE_INBOUND"],
            "signed": True,
        }
    ]


def test_setup_updates_the_triggers_and_the_secret_of_the_webhook_for_its_target(
    cli: Cli,
) -> None:
    with_secret(cli)
    assert cli.run("webhook", "setup", "--target", TARGET).returncode == 0
    changed = cli.run("webhook", "setup", "--target", TARGET, "--triggers", "message_delivery")
    assert changed.returncode == 0, changed.stderr
    assert "updated webhook" in changed.stdout and "triggers" in changed.stdout
    with_secret(cli, "a-new-secret")
    rotated = cli.run("webhook", "setup", "--target", TARGET, "--triggers", "MESSAGE_DELIVERY")
    assert rotated.returncode == 0 and rotated.stdout.rstrip().endswith(": secret")
    assert "a-new-secret" not in rotated.stdout + rotated.stderr
    (hook,) = stored(cli)
    assert hook["triggers"] == ["MESSAGE_DELIVERY"] and hook["secret"] == "a-new-secret"


def test_delete_removes_the_webhook(cli: Cli) -> None:
    with_secret(cli)
    assert cli.run("webhook", "setup", "--target", TARGET).returncode == 0
    (view,) = listed(cli)
    deleted = cli.run("webhook", "delete", str(view["id"]))
    assert deleted.returncode == 0 and deleted.stdout.strip() == f"deleted webhook {view['id']}"
    assert listed(cli) == [] and stored(cli) == []
    missing = cli.run("webhook", "delete", str(view["id"]))
    assert missing.returncode == 1
    assert len(missing.stderr.strip().splitlines()) == 1 and "404" in missing.stderr


def test_a_sixth_webhook_is_refused_with_exit_2_and_the_existing_ones_still_update(
    cli: Cli,
) -> None:
    with_secret(cli)
    for i in range(5):
        created = requests.post(
            f"{cli.sandbox.url}/v1/projects/{config.SANDBOX_PROJECT_ID}/webhooks",
            json={
                "app_id": config.SANDBOX_APP_ID,
                "target": f"https://other.example/{i}",
                "triggers": ["MESSAGE_DELIVERY"],
            },
            auth=(config.SANDBOX_KEY_ID, config.SANDBOX_KEY_SECRET),
            timeout=5,
        )
        assert created.status_code == 200, created.text
    refused = cli.run("webhook", "setup", "--target", TARGET)
    assert refused.returncode == 2
    assert len(refused.stderr.strip().splitlines()) == 1 and "5 webhooks" in refused.stderr
    assert len(stored(cli)) == 5
    updated = cli.run("webhook", "setup", "--target", "https://other.example/0")
    assert updated.returncode == 0 and "updated webhook" in updated.stdout


def test_setup_refuses_bad_options_and_a_missing_secret_with_exit_2(cli: Cli) -> None:
    no_secret = cli.run("webhook", "setup", "--target", TARGET)
    assert no_secret.returncode == 2 and "SINCH_WEBHOOK_SECRET" in no_secret.stderr
    with_secret(cli)
    bad_url = cli.run("webhook", "setup", "--target", "hooks.example.com")
    assert bad_url.returncode == 2 and "--target" in bad_url.stderr
    bad_trigger = cli.run("webhook", "setup", "--target", TARGET, "--triggers", "DELIVERY")
    assert bad_trigger.returncode == 2 and "DELIVERY" in bad_trigger.stderr
    assert stored(cli) == []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_delivery_reports_reach_the_receiver_through_the_registered_webhook_alone(
    cli: Cli, tmp_path: Path
) -> None:
    with_secret(cli)
    assert cli.sandbox.state.settings.callback_url is None  # no URL but the webhook's
    cli.patch_sandbox(queued_delay_s=0.05, delivered_delay_s=0.1, delivered_jitter_s=0.1)
    port = free_port()
    with cli.config.open("a") as handle:
        handle.write(f'[receiver]\nhost = "127.0.0.1"\nport = {port}\nexternal = true\n')
    target = f"http://127.0.0.1:{port}/sinch/callbacks"
    setup = cli.run("webhook", "setup", "--target", target, "--triggers", "MESSAGE_DELIVERY")
    assert setup.returncode == 0, setup.stderr
    recipients = tmp_path / "r.csv"
    recipients.write_text("phone,first_name,code\n+12015550101,Ann,1\n+12015550102,Bo,2\n")
    campaign = cli.campaign_file("hooked", recipients=recipients)
    receiver = subprocess.Popen(
        [sys.executable, "-m", "campaign", "receiver"],
        env=cli.env,
        cwd=cli.tmp,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert receiver.stdout is not None
        assert "Receiving Sinch callbacks on" in receiver.stdout.readline()
        run = cli.run("run", str(campaign), "--wait-for-delivery", "60")
        assert run.returncode == 0, run.stderr
    finally:
        receiver.send_signal(signal.SIGTERM)
        receiver.wait(timeout=20)
    assert receiver.returncode == 0
    assert [m["callback_url"] for m in cli.sent()] == [None, None]  # no per-request URL
    report = tmp_path / "report.csv"
    assert cli.run("report", "hooked", "--output", str(report)).returncode == 0
    assert [row["status"] for row in read_report(report)] == ["DELIVERED", "DELIVERED"]
    log = requests.get(f"{cli.sandbox.url}/_sandbox/callbacks", timeout=5).json()["callbacks"]
    assert log and {entry["url"] for entry in log} == {target}
    assert all(entry["response_status"] == 200 for entry in log)
