"""The pure parts of `campaign preview`: which channels a campaign may use, and the text read
in a channel's transcoded form."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from campaign import campaignfile, errors
from campaign.cli.preview import campaign_channels
from campaign.sinch.transcode import text_of


def spec(tmp_path: Path, **data: Any) -> campaignfile.CampaignSpec:
    base = {
        "name": "t",
        "recipients": "r.csv",
        "message": {"text_message": {"text": "Hi"}},
        **data,
    }
    return campaignfile.parse(base, base=tmp_path, where="t.toml")


def test_the_campaigns_channel_then_its_priority_order(tmp_path: Path) -> None:
    found = spec(
        tmp_path,
        channel="WHATSAPP",
        identity_column="phone",
        identities={"RCS": "phone", "SMS": "phone"},
        send={"channel_priority_order": ["WHATSAPP", "SMS", "RCS"]},
    )
    assert campaign_channels(found) == ["WHATSAPP", "RCS", "SMS"]
    assert campaign_channels(spec(tmp_path, channel="SMS", identity_column="p")) == ["SMS"]


def test_contacts_use_the_priority_order_and_need_one(tmp_path: Path) -> None:
    ordered = spec(tmp_path, contact_id_column="c", send={"channel_priority_order": ["RCS", "SMS"]})
    assert campaign_channels(ordered) == ["RCS", "SMS"]
    with pytest.raises(errors.ConfigError, match="--channel"):
        campaign_channels(spec(tmp_path, contact_id_column="c"))


@pytest.mark.parametrize(
    ("form", "text"),
    [
        (json.dumps({"body": "Hi"}), "Hi"),
        (json.dumps({"text": {"body": "Hi"}, "type": "text"}), "Hi"),
        (json.dumps({"message": {"text": "Hi"}}), "Hi"),
        (json.dumps({"contentMessage": {"text": "Hi"}}), "Hi"),
        (json.dumps({"interactive": {"body": {"text": "Hi"}}}), "Hi"),
        ("Short hello", "Short hello"),  # an explicit_channel_message, sent as written
        (json.dumps({"message": {"attachment": {"type": "image"}}}), None),
        (json.dumps(["a"]), None),
    ],
)
def test_text_of(form: str, text: str | None) -> None:
    assert text_of(form) == text
