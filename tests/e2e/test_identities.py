"""Several identities per recipient (``[identities]``), through the CLI against the sandbox, in
both modes and on both databases: WhatsApp first, SMS from the same phone column, Messenger
from another column. Every request carries the row's identities, in the campaign's order; a
row missing some is sent on the others, a row with none is rejected; where WhatsApp fails,
Sinch falls back, and the report says which channel delivered, as the sandbox's callbacks
did."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_cli_e2e import Cli, read_report
from tests.e2e.test_cli_e2e import cli as cli
from tests.e2e.test_cli_e2e import sandbox as sandbox

PHONES = 30  # rows with a phone number; every third has no Messenger id
MESSENGER_ONLY = 6


def _phone(i: int) -> str:
    return f"+1201555{i:04d}"


def _recipients(cli: Cli) -> Path:
    lines = ["phone,psid,name"]
    lines += [f"{_phone(i)},{'' if i % 3 == 0 else f'psid-{i}'},N{i}" for i in range(PHONES)]
    lines += [f",psid-{i},M{i}" for i in range(PHONES, PHONES + MESSENGER_ONLY)]
    lines += [
        "not a phone,psid-bad,B",  # an invalid number: sent on Messenger alone
        ",,nobody",  # no identity at all: rejected
        f"{_phone(0)},psid-other,again",  # the first choice repeated: a duplicate
    ]
    path = cli.tmp / "people.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _campaign(cli: Cli, mode: str) -> Path:
    path = cli.tmp / "several.toml"
    path.write_text(
        'name = "several"\n'
        f'recipients = "{_recipients(cli)}"\n'
        f'mode = "{mode}"\n'
        'channel = "WHATSAPP"\n'
        'identity_column = "phone"\n'
        'default_country = "US"\n'
        "[identities]\n"
        'SMS = "phone"\n'
        'MESSENGER = "psid"\n'
        "[message]\n"
        'text_message = { text = "Hi ${name}" }\n'
        "[send]\n"
        'channel_priority_order = ["WHATSAPP", "SMS", "MESSENGER"]\n'
    )
    return path


def _expected_identities() -> dict[str, list[dict[str, str]]]:
    """Each recipient's first identity -> the channel_identities its request must carry."""
    found: dict[str, list[dict[str, str]]] = {}
    for i in range(PHONES):
        several = [{"channel": "WHATSAPP", "identity": _phone(i)}]
        several.append({"channel": "SMS", "identity": _phone(i)})
        if i % 3:
            several.append({"channel": "MESSENGER", "identity": f"psid-{i}"})
        found[_phone(i)] = several
    for i in range(PHONES, PHONES + MESSENGER_ONLY):
        found[f"psid-{i}"] = [{"channel": "MESSENGER", "identity": f"psid-{i}"}]
    found["psid-bad"] = [{"channel": "MESSENGER", "identity": "psid-bad"}]
    return found


def _final_words(cli: Cli) -> dict[str, tuple[str, str]]:
    """The sandbox's last word on each message (DELIVERED or FAILED, and on which channel), by
    the recipient's first identity."""
    first_identity = {
        m["message_id"]: m["recipient"]["identified_by"]["channel_identities"][0]["identity"]
        for m in cli.sent()
    }
    words: dict[str, tuple[str, str]] = {}
    for callback in cli.sandbox.state.callback_log:
        if callback["status"] in ("DELIVERED", "FAILED") and not callback["duplicate"]:
            words[first_identity[callback["message_id"]]] = (
                callback["status"],
                callback["channel"],
            )
    return words


@pytest.mark.parametrize("mode", ["individual", "batch"])
def test_every_identity_is_sent_and_fallback_is_reported(
    cli: Cli, mode: str, database_url: str
) -> None:
    cli.use_database(database_url)
    cli.receive_callbacks(
        # WhatsApp fails for the numbers ending in an even digit: Sinch goes on to SMS.
        failure_rules=[
            {"pattern": "[02468]$", "code": "RECIPIENT_NOT_REACHABLE", "channel": "WHATSAPP"}
        ],
        read_delay_s=600.0,  # DELIVERED is the last word within the wait
        delivered_delay_s=0.2,
        delivered_jitter_s=0.1,
    )
    result = cli.run("run", str(_campaign(cli, mode)), "--wait-for-delivery", "30")
    assert result.returncode == 1, result.stderr  # the rejected row

    sent: dict[str, Any] = {}
    for message in cli.sent():
        identities = message["recipient"]["identified_by"]["channel_identities"]
        assert identities[0]["identity"] not in sent, "a recipient was sent twice"
        sent[identities[0]["identity"]] = identities
    assert sent == _expected_identities()

    report = cli.tmp / "report.csv"
    assert cli.run("report", "several", "-o", str(report)).returncode == 0
    rows = read_report(report)
    assert Counter(r["status"] for r in rows) == {
        "DELIVERED": len(sent),
        "REJECTED": 1,
        "DUPLICATE": 1,
    }
    words = _final_words(cli)
    sendable = [r for r in rows if r["status"] not in ("REJECTED", "DUPLICATE")]
    assert {r["identity"]: (r["status"], r["delivery_channel"]) for r in sendable} == words
    expected_channels = {
        **{_phone(i): "SMS" if i % 2 == 0 else "WHATSAPP" for i in range(PHONES)},
        **{identity: "MESSENGER" for identity in sent if identity.startswith("psid")},
    }
    assert {identity: channel for identity, (_, channel) in words.items()} == expected_channels
    # Each row's channel is its first identity's.
    assert {r["identity"]: r["channel"] for r in sendable} == {
        identity: identities[0]["channel"] for identity, identities in sent.items()
    }

    view = json.loads(cli.run("status", "several", "--json").stdout)
    assert view["delivered_by_channel"] == {"WHATSAPP": 15, "SMS": 15, "MESSENGER": 7}
    assert view["fell_back"] == 15


def test_a_priority_order_with_a_channel_the_campaign_cannot_fill_is_refused(cli: Cli) -> None:
    path = _campaign(cli, "individual")
    path.write_text(path.read_text().replace('"MESSENGER"]', '"MESSENGER", "RCS"]'))
    result = cli.run("run", str(path))
    assert result.returncode == 2, result.stderr
    assert "channel_priority_order: RCS has no identities in this campaign" in result.stderr
    assert cli.sent() == []
