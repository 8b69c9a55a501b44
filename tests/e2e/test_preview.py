"""`campaign preview`: the first valid rows rendered, each channel's form through Sinch's
messages:transcode, SMS measured in billed parts; nothing written, nothing sent."""

from __future__ import annotations

import json
from pathlib import Path

from campaign import segments
from tests.e2e.test_cli_e2e import Cli
from tests.e2e.test_cli_e2e import cli as cli
from tests.e2e.test_cli_e2e import sandbox as sandbox

ROWS = (
    "phone,first_name,code\n"
    "not a number,Bad,1\n"  # row 1: rejected
    "+12015550101,Ana,1111\n"  # row 2
    "+12015550101,Ana again,2222\n"  # row 3: a duplicate of row 2
    "+12015550102,Zoë,3333\n"  # row 4
    "+12015550103,Bob,4444\n"  # row 5
)


def _recipients(cli: Cli) -> Path:
    path = cli.tmp / "few.csv"
    path.write_text(ROWS, encoding="utf-8")
    return path


def _card_campaign(cli: Cli, recipients: Path) -> Path:
    path = cli.tmp / "card.toml"
    path.write_text(
        "\n".join(
            [
                'name = "card"',
                f'recipients = "{recipients}"',
                'mode = "individual"',
                'channel = "SMS"',
                'identity_column = "phone"',
                "[identities]",
                'WHATSAPP = "phone"',
                "[message.card_message]",
                'title = "Hello ${first_name}"',
                'description = "Your code is ${code}"',
                'media_message = { url = "https://example.com/sale.jpg" }',
                'choices = [ { url_message = { title = "Shop", url = "https://example.com" } } ]',
                "[send]",
                'channel_priority_order = ["WHATSAPP", "SMS"]',
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    return path


def test_preview_shows_the_first_valid_rows_rendered_and_sends_nothing(cli: Cli) -> None:
    campaign = cli.campaign_file(recipients=_recipients(cli))
    result = cli.run("preview", str(campaign))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "channels      SMS\n" in out
    # The first three rows a run would send: not the rejected row 1 nor row 3, a duplicate.
    assert [line.split()[1] for line in out.splitlines() if line.startswith("row ")] == [
        "2",
        "4",
        "5",
    ]
    assert "    Hi Ana, your code is 1111. Reply STOP to opt out." in out
    ana = segments.measure("Hi Ana, your code is 1111. Reply STOP to opt out.")
    assert f"  SMS         {ana.units} characters, GSM-7, 1 segment\n" in out
    zoe = segments.measure("Hi Zoë, your code is 3333. Reply STOP to opt out.")
    assert zoe.encoding is segments.Encoding.UCS2  # ë is not in the GSM alphabet
    assert f"  SMS         {zoe.units} characters, UCS-2, 1 segment\n" in out
    assert out.rstrip().endswith("preview: nothing was written or sent")
    assert cli.sent() == []
    assert not cli.db.exists()


def test_preview_as_json_with_rows_and_channels_given(cli: Cli) -> None:
    campaign = cli.campaign_file(recipients=_recipients(cli))
    result = cli.run(
        "preview",
        str(campaign),
        "--rows",
        "1",
        "--channel",
        "WHATSAPP",
        "--channel",
        "SMS",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    preview = json.loads(result.stdout)
    assert preview["channels"] == ["WHATSAPP", "SMS"]
    [row] = preview["rows"]
    assert row["row"] == 2 and row["identity"] == "+12015550101"
    text = "Hi Ana, your code is 1111. Reply STOP to opt out."
    assert row["message"] == {"text_message": {"text": text}}
    sms = row["channels"]["SMS"]
    assert sms["text"] == text
    assert (sms["characters"], sms["encoding"], sms["segments"]) == (len(text), "GSM-7", 1)
    assert json.loads(sms["form"])["from"] == "+15550000000"  # the campaign's SMS_SENDER
    assert json.loads(row["channels"]["WHATSAPP"]["form"])["text"] == {"body": text}
    assert cli.sent() == []
    assert not cli.db.exists()


def test_a_card_on_sms_is_its_title_description_and_link(cli: Cli) -> None:
    result = cli.run("preview", str(_card_campaign(cli, _recipients(cli))), "--rows", "1")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "channels      SMS, WHATSAPP\n" in out  # [identities]' too
    sms = "\n".join(
        [
            "    Hello Ana",
            "    Your code is 1111",
            "    https://example.com/sale.jpg",
            "    1. Shop: https://example.com",
        ]
    )
    assert sms in out
    assert '"type":"interactive"' in out
    assert cli.sent() == []


def test_a_long_text_is_several_segments(cli: Cli) -> None:
    campaign = cli.tmp / "long.toml"
    text = "Dear ${first_name}, " + "our spring sale starts now! " * 6
    campaign.write_text(
        cli.campaign_file(recipients=_recipients(cli))
        .read_text()
        .replace(
            'text = "Hi ${first_name}, your code is ${code}. Reply STOP to opt out."',
            f'text = "{text}"',
        ),
        encoding="utf-8",
    )
    result = cli.run("preview", str(campaign), "--rows", "1")
    assert result.returncode == 0, result.stderr
    rendered = text.replace("${first_name}", "Ana")
    assert len(rendered) > 160
    assert f"  SMS         {len(rendered)} characters, GSM-7, 2 segments\n" in result.stdout


def test_an_unknown_channel_is_a_usage_error(cli: Cli) -> None:
    result = cli.run("preview", str(cli.campaign_file()), "--channel", "PIGEON")
    assert result.returncode == 2
    assert cli.sent() == []


def test_the_dry_run_adds_up_the_sms_parts_of_the_rows_it_would_send(cli: Cli) -> None:
    result = cli.run("run", str(cli.campaign_file(recipients=_recipients(cli))), "--dry-run")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # Rows 2, 4 and 5 (not the rejected row, not the duplicate): one part each; Zoë's in UCS-2.
    assert (
        "segments      3 SMS parts billed, 1 of the texts in UCS-2 (70 characters a part)" in lines
    )
    assert lines.index("requests      3") + 1 == lines.index(
        "segments      3 SMS parts billed, 1 of the texts in UCS-2 (70 characters a part)"
    )
    assert cli.sent() == []


def test_the_dry_run_counts_every_part_of_a_long_text(cli: Cli) -> None:
    campaign = cli.tmp / "long.toml"
    campaign.write_text(
        cli.campaign_file(recipients=_recipients(cli))
        .read_text()
        .replace("Reply STOP to opt out.", "Reply STOP to opt out. " + "Spring sale! " * 10),
        encoding="utf-8",
    )
    result = cli.run("run", str(campaign), "--dry-run")
    assert result.returncode == 0, result.stderr
    # Ana and Bob: GSM-7 over 160, 2 parts each; Zoë: UCS-2 over 134, 3 parts.
    assert "segments      7 SMS parts billed, 1 of the texts in UCS-2" in result.stdout


def test_the_dry_run_of_a_card_counts_no_sms_parts(cli: Cli) -> None:
    result = cli.run("run", str(_card_campaign(cli, _recipients(cli))), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "segments" not in result.stdout
