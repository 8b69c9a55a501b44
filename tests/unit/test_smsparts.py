"""The dry run's SMS part total: the vectorised count agrees with rendering and measuring each
row, and is counted only for SMS text campaigns."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from campaign import campaignfile, rendering, segments
from campaign.run.smsparts import SmsParts, report_line, sms_text

TEXT = "Hi ${first_name}, your code is ${ code } [${first_name}]"
NAMES = ["Ana", "Zoë", "😀" * 30, "x" * 150, "€" * 80, 'Eve "E"\\', "tab\there", ""]


def spec(tmp_path: Path, message: str, channel: str = "SMS") -> campaignfile.CampaignSpec:
    return campaignfile.parse(
        {
            "name": "t",
            "recipients": "r.csv",
            "channel": channel,
            "identity_column": "phone",
            "message": json.loads(message),
        },
        base=tmp_path,
        where="t.toml",
    )


def sent(rows: list[dict[str, str]]) -> pl.DataFrame:
    return pl.DataFrame({"parameters": [json.dumps(r, ensure_ascii=False) for r in rows]})


def test_the_total_is_the_sum_of_each_rendered_rows_parts(tmp_path: Path) -> None:
    message = {"text_message": {"text": TEXT}}
    counter = SmsParts.of(spec(tmp_path, json.dumps(message)))
    assert counter is not None
    rows = [{"first_name": name, "code": str(i)} for i, name in enumerate(NAMES)]
    counter.add(sent(rows[:3]))
    counter.add(sent(rows[3:]))
    counter.add(sent([]))
    template = rendering.MessageTemplate.compile(message)
    measured = [segments.measure(template.render(r)["text_message"]["text"]) for r in rows]
    assert counter.total == sum(m.parts for m in measured)
    assert counter.ucs2 == sum(m.encoding is segments.Encoding.UCS2 for m in measured)
    assert counter.total > len(rows)  # some rows take several parts


def test_a_text_without_parameters_is_measured_once(tmp_path: Path) -> None:
    counter = SmsParts.of(spec(tmp_path, json.dumps({"text_message": {"text": "ç" * 71}})))
    assert counter is not None
    counter.add(sent([{}] * 5))
    assert (counter.total, counter.ucs2) == (10, 5)
    assert report_line(counter) == (
        "segments      10 SMS parts billed, 5 of the texts in UCS-2 (70 characters a part)"
    )


@pytest.mark.parametrize(
    ("message", "channel"),
    [
        ('{"card_message": {"title": "Hi"}}', "SMS"),  # its SMS form is Sinch's to make
        ('{"text_message": {"text": "Hi"}}', "WHATSAPP"),
    ],
)
def test_none_is_counted_without_an_sms_text(tmp_path: Path, message: str, channel: str) -> None:
    assert SmsParts.of(spec(tmp_path, message, channel)) is None


def test_an_explicit_sms_text_is_the_one_counted() -> None:
    message = {"card_message": {"title": "Hi"}, "explicit_channel_message": {"SMS": "Hi ${a}"}}
    assert sms_text(message) == "Hi ${a}"
    assert sms_text({"text_message": {"text": "Hello"}}) == "Hello"
