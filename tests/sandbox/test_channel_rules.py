"""Channel rules: WhatsApp's 24-hour window, per-channel failure rules, their settings."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from campaign.errors import ConfigError
from campaign.sandbox import FailureRule, SandboxSettings, arguments, settings

from .helpers import APP, Receiver, SandboxFactory, text_send

Body = dict[str, Any]

PHONE = "+15551112222"
BOTH = {
    "identified_by": {
        "channel_identities": [
            {"channel": "WHATSAPP", "identity": PHONE},
            {"channel": "SMS", "identity": PHONE},
        ]
    }
}
ORDER = ["WHATSAPP", "SMS"]
CLOSED = {"whatsapp_window_share": 0.0}
TEMPLATE = {"template_message": {"omni_template": {"template_id": "offer", "version": "1"}}}


def trail(bodies: list[Body]) -> list[str]:
    """``STATUS:CHANNEL`` of each delivery report (the callback's own channel_identity)."""
    out = []
    for body in bodies:
        if report := body.get("message_delivery_report"):
            out.append(f"{report['status']}:{report['channel_identity']['channel']}")
    return out


def settled(count: int = 1) -> Any:
    final = ("DELIVERED", "FAILED")
    return lambda bodies: sum(t.split(":")[0] in final for t in trail(bodies)) >= count


async def test_free_form_outside_the_window_falls_back_to_sms(
    with_callbacks: SandboxFactory, receiver: Receiver
) -> None:
    async with with_callbacks(**CLOSED) as (_, api):
        status, _, _ = await api.send(text_send(recipient=BOTH, channel_priority_order=ORDER))
        assert status == 200
        await receiver.wait_for(settled())
        assert trail(receiver.bodies) == [
            "QUEUED_ON_CHANNEL:WHATSAPP",
            "SWITCHING_CHANNEL:WHATSAPP",
            "QUEUED_ON_CHANNEL:SMS",
            "DELIVERED:SMS",
        ]
        reports = [
            b["message_delivery_report"] for b in receiver.bodies if "message_delivery_report" in b
        ]
        reason = reports[1]["reason"]
        assert reason["code"] == "OUTSIDE_ALLOWED_SENDING_WINDOW"
        assert "24-hour" in reason["description"]
        assert reports[-1]["channel_identity"]["identity"] == PHONE.removeprefix("+")


async def test_outside_the_window_on_the_only_channel_fails(
    with_callbacks: SandboxFactory, receiver: Receiver
) -> None:
    only = {"identified_by": {"channel_identities": [{"channel": "WHATSAPP", "identity": PHONE}]}}
    async with with_callbacks(**CLOSED) as (_, api):
        await api.send(text_send(recipient=only))
        await receiver.wait_for(settled())
        assert trail(receiver.bodies) == ["QUEUED_ON_CHANNEL:WHATSAPP", "FAILED:WHATSAPP"]
        report = receiver.bodies[-1]["message_delivery_report"]
        assert report["reason"]["code"] == "OUTSIDE_ALLOWED_SENDING_WINDOW"


WHATSAPP_TEMPLATE = {
    "type": "template",
    "template": {"name": "offer", "language": {"code": "en"}, "components": []},
}


@pytest.mark.parametrize(
    ("message", "passes"),
    [
        (TEMPLATE, True),
        ({"text_message": {"text": "Hi"}}, False),
        # An override for WhatsApp decides what the channel gets, whatever the content.
        ({"text_message": {"text": "Hi"}, "explicit_channel_omni_message": {"WHATSAPP": TEMPLATE}}, True),
        ({**TEMPLATE, "explicit_channel_omni_message": {"WHATSAPP": {"text_message": {"text": "Hi"}}}}, False),
        ({"text_message": {"text": "Hi"}, "explicit_channel_message": {"WHATSAPP": json.dumps(WHATSAPP_TEMPLATE)}}, True),
        ({**TEMPLATE, "explicit_channel_message": {"WHATSAPP": "Hi"}}, False),
        # An override for another channel changes nothing on WhatsApp.
        ({"text_message": {"text": "Hi"}, "explicit_channel_omni_message": {"SMS": TEMPLATE}}, False),
    ],
)  # fmt: skip
async def test_the_window_judges_what_whatsapp_receives(
    with_callbacks: SandboxFactory, receiver: Receiver, message: Body, passes: bool
) -> None:
    async with with_callbacks(**CLOSED) as (_, api):
        body = {
            "app_id": APP,
            "recipient": BOTH,
            "message": message,
            "channel_priority_order": ORDER,
        }
        status, answer, _ = await api.send(body)
        assert status == 200, answer
        await receiver.wait_for(settled())
        second = "DELIVERED:WHATSAPP" if passes else "SWITCHING_CHANNEL:WHATSAPP"
        assert trail(receiver.bodies)[:2] == ["QUEUED_ON_CHANNEL:WHATSAPP", second]


async def test_an_open_window_delivers_on_whatsapp(
    with_callbacks: SandboxFactory, receiver: Receiver
) -> None:
    async with with_callbacks(whatsapp_window=r"2222$", **CLOSED) as (_, api):
        await api.send(text_send(recipient=BOTH, channel_priority_order=ORDER))
        await receiver.wait_for(settled())
        assert trail(receiver.bodies)[:2] == ["QUEUED_ON_CHANNEL:WHATSAPP", "DELIVERED:WHATSAPP"]


async def test_window_rule_in_a_batch(with_callbacks: SandboxFactory, receiver: Receiver) -> None:
    def recipient(phone: str) -> Body:
        pairs = [("WHATSAPP", phone), ("SMS", phone)]
        return {
            "identified_by": {
                "channel_identities": [{"channel": c, "identity": i} for c, i in pairs]
            }
        }

    open_phone, closed_phone = "+15550000001", "+15550000002"
    settings_ = {"whatsapp_window": "0001$", "triggers": ("MESSAGE_DELIVERY",), **CLOSED}
    async with with_callbacks(**settings_) as (_, api):
        body = {
            "app_id": APP,
            "message": {"text_message": {"text": "Hi ${name}"}},
            "channel_priority_order": ORDER,
            "recipient_and_params": [
                {"recipient": recipient(open_phone), "parameters": {"name": "Ann"}},
                {"recipient": recipient(closed_phone), "parameters": {"name": "Bo"}},
            ],
        }
        status, answer, _ = await api.batch(body)
        assert status == 200, answer
        await receiver.wait_for(settled(2))
        finals: dict[str, str] = {}
        codes: dict[str, str] = {}
        for body_ in receiver.bodies:
            report = body_["message_delivery_report"]
            who = report["channel_identity"]["identity"]
            if report["status"] in ("DELIVERED", "FAILED"):
                finals[who] = f"{report['status']}:{report['channel_identity']['channel']}"
            if report["status"] == "SWITCHING_CHANNEL":
                codes[who] = report["reason"]["code"]
        assert finals == {"15550000001": "DELIVERED:WHATSAPP", "15550000002": "DELIVERED:SMS"}
        assert codes == {"15550000002": "OUTSIDE_ALLOWED_SENDING_WINDOW"}


@pytest.mark.parametrize("mode", ["individual", "batch"])
async def test_a_channel_fails_for_some_identities(
    with_callbacks: SandboxFactory, receiver: Receiver, mode: str
) -> None:
    rule = FailureRule.parse_channel("SMS:2222$:RECIPIENT_NOT_OPTED_IN")
    async with with_callbacks(failure_rules=(rule,)) as (_, api):
        order = ["SMS", "WHATSAPP"]
        if mode == "individual":
            await api.send(text_send(recipient=BOTH, channel_priority_order=order))
        else:
            message = {"text_message": {"text": "Hi"}}
            body = {
                "app_id": APP,
                "message": message,
                "channel_priority_order": order,
                "recipient_and_params": [{"recipient": BOTH}],
            }
            status, answer, _ = await api.batch(body)
            assert status == 200, answer
        await receiver.wait_for(settled())
        assert trail(receiver.bodies)[:4] == [
            "QUEUED_ON_CHANNEL:SMS",
            "SWITCHING_CHANNEL:SMS",
            "QUEUED_ON_CHANNEL:WHATSAPP",
            "DELIVERED:WHATSAPP",
        ]


def test_window_share_is_deterministic_and_about_right() -> None:
    box = SandboxSettings(whatsapp_window_share=0.6)
    phones = [f"+4670000{n:04d}" for n in range(2000)]
    opened = [box.window_open(p) for p in phones]
    assert opened == [box.window_open(p) for p in phones]
    assert 0.5 < sum(opened) / len(opened) < 0.7
    assert box.window_open("+46700000001") == box.window_open("46700000001")
    assert all(SandboxSettings().window_open(p) for p in phones[:50])


def test_fail_channel_parsing() -> None:
    assert FailureRule.parse_channel("whatsapp:^\\+44") == FailureRule(
        pattern="^\\+44", channel="WHATSAPP"
    )
    rule = FailureRule.parse_channel("SMS:a:b$:CHANNEL_FAILURE")
    assert (rule.pattern, rule.code, rule.channel) == ("a:b$", "CHANNEL_FAILURE", "SMS")
    with pytest.raises(ConfigError):
        FailureRule.parse_channel("SMS")
    with pytest.raises(ConfigError):
        FailureRule.parse_channel("PIGEON:.")


def test_command_line_and_json_settings() -> None:
    parser = argparse.ArgumentParser()
    arguments.add_arguments(parser)
    args = parser.parse_args(
        [
            "--fail-channel",
            "WHATSAPP:77$",
            "--fail-pattern",
            "13$=CHANNEL_FAILURE:SMS",
            "--whatsapp-window",
            "^\\+46",
            "--whatsapp-window-share",
            "0.5",
        ]
    )
    built = arguments.settings_from_args(args)
    assert [(r.channel, r.pattern) for r in built.failure_rules] == [
        ("SMS", "13$"),
        ("WHATSAPP", "77$"),
    ]
    assert built.whatsapp_window == "^\\+46" and built.whatsapp_window_share == 0.5
    assert arguments.settings_from_args(parser.parse_args([])).whatsapp_window_share == 1.0

    patched = settings.patched(
        SandboxSettings(),
        {
            "whatsapp_window": "0$",
            "whatsapp_window_share": 0.25,
            "failure_rules": [{"pattern": "1$", "channel": "SMS"}, "2$=CHANNEL_FAILURE:WHATSAPP"],
        },
    )
    assert patched.whatsapp_window_share == 0.25
    assert settings.to_json(patched)["whatsapp_window"] == "0$"
    assert [r.channel for r in patched.failure_rules] == ["SMS", "WHATSAPP"]
    with pytest.raises(ConfigError):
        settings.patched(SandboxSettings(), {"whatsapp_window_share": 1.5})
    with pytest.raises(ConfigError):
        settings.patched(SandboxSettings(), {"whatsapp_window": "("})


def test_config_file_form_reaches_the_embedded_sandbox() -> None:
    from campaign import demo, resources
    from campaign.config import Config, SandboxConfig

    box = SandboxConfig(
        fail_channel="WHATSAPP:77$ SMS:13$:CHANNEL_FAILURE",
        whatsapp_window="^\\+46",
        whatsapp_window_share=0.6,
    )
    sinch = demo.demo_config(Path("demo.db")).sinch
    built = resources.embedded_sandbox_settings(Config(sinch=sinch, sandbox=box))
    assert [(r.channel, r.pattern, r.code) for r in built.failure_rules] == [
        ("WHATSAPP", "77$", "RECIPIENT_NOT_REACHABLE"),
        ("SMS", "13$", "CHANNEL_FAILURE"),
    ]
    assert built.whatsapp_window == "^\\+46" and built.whatsapp_window_share == 0.6
    shown = resources.embedded_sandbox_settings(demo.demo_config(Path("demo.db")))
    assert 0.0 < shown.whatsapp_window_share < 1.0
