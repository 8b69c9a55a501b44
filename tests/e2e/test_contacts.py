"""Recipients by Sinch contact ID (`contact_id_column`), through the CLI against the sandbox:
every request names `recipient.contact_id`, in both modes and on both databases; an app in
DISPATCH mode, where Sinch takes only channel identities, refuses the campaign before
anything is sent."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tests.e2e.test_cli_e2e import Cli, read_report
from tests.e2e.test_cli_e2e import cli as cli
from tests.e2e.test_cli_e2e import sandbox as sandbox

ROWS = 60


def _contacts(cli: Cli, mode: str) -> Path:
    recipients = cli.tmp / "contacts.csv"
    recipients.write_text(
        "contact,first_name\n"
        + "".join(f" 01CONTACT{i:04d} ,N{i}\n" for i in range(ROWS))
        + "01CONTACT0000,again\n"  # the same contact: a duplicate
        + ",nobody\n"  # no contact ID: rejected
    )
    path = cli.tmp / "contacts.toml"
    path.write_text(
        'name = "contacts"\n'
        f'recipients = "{recipients}"\n'
        f'mode = "{mode}"\n'
        'contact_id_column = "contact"\n'
        "[message]\n"
        'text_message = { text = "Hi ${first_name}" }\n'
        "[send]\n"
        'channel_priority_order = ["WHATSAPP", "SMS"]\n'
    )
    return path


@pytest.mark.parametrize("mode", ["individual", "batch"])
def test_a_campaign_by_contact_id_sends_each_contact_once(
    cli: Cli, mode: str, database_url: str
) -> None:
    db = ("--database", database_url)
    assert cli.run(*db, "db", "upgrade").returncode == 0
    result = cli.run(*db, "run", str(_contacts(cli, mode)))
    assert result.returncode == 1, result.stderr  # one row rejected
    recipients = [m["recipient"] for m in cli.sent()]
    assert all(set(r) == {"contact_id"} for r in recipients), recipients[:3]
    sent = Counter(r["contact_id"] for r in recipients)
    assert sent == Counter(f"01CONTACT{i:04d}" for i in range(ROWS))  # trimmed, each once
    report = cli.tmp / "report.csv"
    assert cli.run(*db, "report", "contacts", "-o", str(report)).returncode == 0
    rows = read_report(report)
    assert Counter(r["status"] for r in rows) == {"QUEUED": ROWS, "DUPLICATE": 1, "REJECTED": 1}
    assert {r["channel"] for r in rows} == {"CONTACT_ID"}


def test_an_app_in_dispatch_mode_refuses_a_campaign_by_contact_id(cli: Cli) -> None:
    cli.patch_sandbox(processing_mode="DISPATCH")
    result = cli.run("run", str(_contacts(cli, "individual")))
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("campaign: error")]
    assert errors == [
        "campaign: error: the campaign names its recipients by Sinch contact ID "
        "('contact_id_column'), which Sinch accepts only for an app in CONVERSATION mode; app "
        f"'{cli.env['SINCH_APP_ID']}' is in DISPATCH mode: nothing was sent (switch the app to "
        "CONVERSATION mode, or send to channel identities with 'channel' and 'identity_column')"
    ]
    assert cli.sent() == []
    dry = cli.run("run", str(_contacts(cli, "individual")), "--dry-run")
    assert dry.returncode == 2 and "in DISPATCH mode" in dry.stderr, dry.stderr
    cli.patch_sandbox(processing_mode="CONVERSATION")  # switched: the same command sends
    again = cli.run("run", str(_contacts(cli, "individual")))
    assert again.returncode == 1, again.stderr
    assert len(cli.sent()) == ROWS


def test_fallback_is_tracked_per_delivering_channel(cli: Cli) -> None:
    """Sinch tries WhatsApp first and falls back to SMS where WhatsApp fails (here for the
    contacts ending in an even digit): the report's delivery_channel, `status` and the
    summary say which channel delivered, and how many fell back."""
    cli.receive_callbacks(
        failure_rules=[
            {"pattern": "[02468]$", "code": "RECIPIENT_NOT_REACHABLE", "channel": "WHATSAPP"}
        ],
        read_delay_s=60.0,  # DELIVERED is the last word within the wait
    )
    result = cli.run("run", str(_contacts(cli, "individual")), "--wait-for-delivery", "30")
    assert result.returncode == 1, result.stderr  # the rejected row
    report = cli.tmp / "report.csv"
    assert cli.run("report", "contacts", "-o", str(report)).returncode == 0
    delivered = {
        r["identity"]: r["delivery_channel"]
        for r in read_report(report)
        if r["status"] == "DELIVERED"
    }
    assert len(delivered) == ROWS
    expected = {f"01CONTACT{i:04d}": "SMS" if i % 2 == 0 else "WHATSAPP" for i in range(ROWS)}
    assert delivered == expected
    view = json.loads(cli.run("status", "contacts", "--json").stdout)
    assert view["delivered_by_channel"] == {"SMS": ROWS // 2, "WHATSAPP": ROWS // 2}
    assert view["fell_back"] == ROWS // 2
    assert "fell back 30" in cli.run("status", "contacts").stdout
    summary = " ".join(result.stdout.replace("│", " ").split())
    assert "delivered on SMS 30" in summary and "fell back to another channel 30" in summary
