from __future__ import annotations

from pathlib import Path

import pytest

from campaign import campaignfile
from campaign.errors import InputFileError
from campaign.models import Channel

GOOD = """
name = "spring"
recipients = "r.csv"
mode = "individual"
channel = "SMS"
identity_column = "phone"
default_country = "us"
[message]
text_message = { text = "Hi ${first_name} ${ code }" }
[send]
ttl = 60
channel_properties = { SMS_SENDER = "+15550000000" }
[defaults]
first_name = "there"
code = 0
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


def test_a_good_file(tmp_path: Path) -> None:
    spec = campaignfile.load(write(tmp_path, GOOD))
    assert spec.recipients == tmp_path / "r.csv"  # relative to the campaign file
    assert spec.channel is Channel.SMS
    assert spec.default_country == "US"
    assert spec.parameters == ("first_name", "code")
    assert spec.send["ttl"] == "60s"
    assert spec.defaults == {"first_name": "there", "code": "0"}
    assert spec.definition()["message"] == {"text_message": {"text": "Hi ${first_name} ${ code }"}}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('name = "spring"', 'nmae = "spring"'), "unknown key 'nmae'"),
        (('channel = "SMS"', 'channel = "PIGEON"'), "unknown channel 'PIGEON'"),
        (('mode = "individual"', 'mode = "bulk"'), "'mode' must be"),
        (('default_country = "us"', 'default_country = "XX"'), "not an ISO 3166"),
        (("ttl = 60", "ttl = 1"), "ttl"),
        (("ttl = 60", "retries = 3"), "[send]: unknown key 'retries'"),
        (
            (
                'text_message = { text = "Hi ${first_name} ${ code }" }',
                "agent = { display_name = 'x' }",
            ),
            "[message]",
        ),
        (
            (
                'text_message = { text = "Hi ${first_name} ${ code }" }',
                'text_message = { text = "a" }\nmedia_message = { url = "u" }',
            ),
            "[message]",
        ),
        (('name = "spring"', "name = 5"), "'name' must be"),
    ],
)
def test_bad_files_name_the_problem(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    path = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(InputFileError) as caught:
        campaignfile.load(path)
    assert str(path) in str(caught.value)
    assert message in str(caught.value)


def test_recipients_by_contact_id(tmp_path: Path) -> None:
    text = GOOD.replace('channel = "SMS"\nidentity_column = "phone"\n', "")
    text = text.replace('default_country = "us"', 'contact_id_column = "contact"')
    spec = campaignfile.load(write(tmp_path, text))
    assert spec.channel is Channel.CONTACT_ID and spec.identity_column == "contact"
    assert spec.default_country is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("default_country", 'contact_id_column = "c"\ndefault_country'), "one or the other"),
        (('channel = "SMS"', 'channel = "CONTACT_ID"'), "unknown channel 'CONTACT_ID'"),
        (("ttl = 60", 'channel_priority_order = ["CONTACT_ID"]'), "unknown channel"),
    ],
)
def test_contact_id_is_not_a_channel_a_file_may_name(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    with pytest.raises(InputFileError, match=message):
        campaignfile.load(write(tmp_path, GOOD.replace(*change)))


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="not found"):
        campaignfile.load(tmp_path / "missing.toml")
    with pytest.raises(InputFileError, match="is a directory"):
        campaignfile.load(tmp_path)
    with pytest.raises(InputFileError, match="invalid TOML"):
        campaignfile.load(write(tmp_path, "name = "))


SEVERAL = GOOD.replace('channel = "SMS"', 'channel = "WHATSAPP"').replace(
    "[send]", '[identities]\nSMS = "phone"\nMESSENGER = "psid"\n[send]'
)


def test_identities_add_channels_after_the_first_choice(tmp_path: Path) -> None:
    spec = campaignfile.load(write(tmp_path, SEVERAL))
    assert spec.identities == ((Channel.SMS, "phone"), (Channel.MESSENGER, "psid"))
    assert spec.channels == (Channel.WHATSAPP, Channel.SMS, Channel.MESSENGER)
    assert spec.definition()["identities"] == {"SMS": "phone", "MESSENGER": "psid"}
    # A campaign without them stores the definition it stored before they existed.
    assert "identities" not in campaignfile.load(write(tmp_path, GOOD)).definition()


def test_the_priority_order_may_name_the_channels_the_campaign_fills(tmp_path: Path) -> None:
    text = SEVERAL.replace("ttl = 60", 'channel_priority_order = ["SMS", "WHATSAPP", "MESSENGER"]')
    spec = campaignfile.load(write(tmp_path, text))
    assert spec.send["channel_priority_order"] == ["SMS", "WHATSAPP", "MESSENGER"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('SMS = "phone"', 'PIGEON = "phone"'), "unknown channel 'PIGEON'"),
        (('SMS = "phone"', 'WHATSAPP = "phone"'), "WHATSAPP is the campaign's 'channel' already"),
        (('SMS = "phone"', "SMS = 3"), "SMS: name the column"),
        (('SMS = "phone"', 'SMS = ""'), "SMS: name the column"),
        (("ttl = 60", 'channel_priority_order = ["WHATSAPP", "RCS"]'), "RCS has no identities"),
        (
            ('channel = "WHATSAPP"\nidentity_column = "phone"', 'contact_id_column = "c"'),
            "recipients named by 'contact_id_column'",
        ),
    ],
)
def test_identities_that_cannot_be_sent_are_refused(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    text = SEVERAL.replace(*change).replace('default_country = "us"\n', "")
    with pytest.raises(InputFileError, match=message):
        campaignfile.load(write(tmp_path, text))


def test_a_single_channel_priority_order_still_names_its_channel(tmp_path: Path) -> None:
    text = GOOD.replace("ttl = 60", 'channel_priority_order = ["WHATSAPP"]')
    with pytest.raises(InputFileError, match="WHATSAPP has no identities in this campaign"):
        campaignfile.load(write(tmp_path, text))


def test_delimiter_and_encoding(tmp_path: Path) -> None:
    text = GOOD.replace("[message]", 'delimiter = ";"\nencoding = "cp1252"\n[message]')
    spec = campaignfile.load(write(tmp_path, text))
    assert (spec.delimiter, spec.encoding) == (";", "cp1252")
    assert {"delimiter": ";", "encoding": "cp1252"}.items() <= spec.definition().items()
    assert "delimiter" not in campaignfile.load(write(tmp_path, GOOD)).definition()
    for bad, message in (
        ('delimiter = ";;"', "one character"),
        ('delimiter = "\\""', "one character"),
        ("delimiter = 1", "one character"),
        ('encoding = "klingon"', "not an encoding"),
        ("encoding = 8", "not an encoding"),
    ):
        with pytest.raises(InputFileError, match=message):
            campaignfile.load(write(tmp_path, GOOD.replace("[message]", f"{bad}\n[message]")))
