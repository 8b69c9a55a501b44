"""Inspection and control endpoints, the settings model and the command-line options."""

from __future__ import annotations

import argparse

import pytest

from campaign.errors import ConfigError
from campaign.sandbox import (
    FailureRule,
    SandboxServer,
    SandboxSettings,
    add_arguments,
    settings,
    settings_from_args,
)

from .helpers import APP, WEBHOOK_SECRET, Api, sms, text_send

STATS_KEYS = {
    "requests",
    "accepted_messages",
    "batches",
    "rate_limited",
    "errors_injected",
    "dropped",
    "max_window",
    "tokens_issued",
    "callbacks_sent",
    "callbacks_failed",
    "callbacks_pending",
}


async def test_messages_listing_and_paging(api: Api) -> None:
    ids = [
        (await api.send(text_send(f"m{i}", correlation_id=f"c{i}", message_metadata="meta")))[1][
            "message_id"
        ]
        for i in range(5)
    ]
    listed = await api.inspect("messages")
    assert listed["total"] == 5
    assert [m["message_id"] for m in listed["messages"]] == ids
    first = listed["messages"][0]
    assert {
        "message_id",
        "app_id",
        "project_id",
        "channel",
        "identity",
        "recipient",
        "message",
        "accepted_time",
        "batch_id",
        "correlation_id",
        "message_metadata",
        "callback_url",
    } <= set(first)
    assert first["batch_id"] is None and first["correlation_id"] == "c0"
    assert first["recipient"] == sms() and first["app_id"] == APP
    page = await api.inspect("messages?offset=1&limit=2")
    assert page["total"] == 5 and [m["message_id"] for m in page["messages"]] == ids[1:3]
    status, _, _ = await api.call("GET", "/_sandbox/messages?limit=x", headers={})
    assert status == 400


async def test_stats_batches_and_reset(sandbox: tuple[SandboxServer, Api]) -> None:
    server, api = sandbox
    await api.send(text_send())
    await api.send({"app_id": APP})
    batch = {
        "app_id": APP,
        "message": {"text_message": {"text": "x"}},
        "recipient_and_params": [{"recipient": sms()}],
        "batch_metadata": {"k": "v"},
    }
    _, answer, _ = await api.batch(batch)
    stats = await api.inspect("stats")
    assert set(stats) >= STATS_KEYS
    assert stats["requests"] == 3
    assert stats["accepted_messages"] == 2
    assert stats["batches"] == 1
    assert stats["invalid_requests"] == 1
    assert stats["tokens_issued"] == 1
    assert stats["max_window"] == 3
    batches = await api.inspect("batches")
    assert batches["total"] == 1
    (listed,) = batches["batches"]
    assert listed["batch_id"] == answer["batch_id"] and listed["status"] == "PROCESSED"
    assert listed["meta_data"] == {"k": "v"} and listed["recipients"] == 1
    assert server.state.stats.accepted_messages == 2  # the same numbers in process

    status, body, _ = await api.call("POST", "/_sandbox/reset", headers={})
    assert (status, body) == (200, {"reset": True})
    stats = await api.inspect("stats")
    assert stats["requests"] == 0 and stats["accepted_messages"] == 0 and stats["max_window"] == 0
    assert (await api.inspect("messages"))["total"] == 0
    assert (await api.inspect("batches"))["total"] == 0
    # Tokens survive a reset.
    assert (await api.send(text_send()))[0] == 200


async def test_settings_patch(api: Api) -> None:
    current = await api.inspect("settings")
    assert current["rate_limit"] == 800 and current["webhook_secret"] == WEBHOOK_SECRET
    changed = await api.patch(
        latency_ms=5,
        jitter_ms=2,
        callback_url="http://127.0.0.1:1/cb",
        failure_rules=[
            "0000$=RECIPIENT_NOT_REACHABLE:SMS",
            {"pattern": "^\\+44", "code": "BAD_REQUEST"},
        ],
        app_ids=["a1", "a2"],
    )
    assert changed["latency_ms"] == 5.0 and changed["jitter_ms"] == 2.0
    assert changed["app_ids"] == ["a1", "a2"]
    assert changed["failure_rules"] == [
        {
            "pattern": "0000$",
            "code": "RECIPIENT_NOT_REACHABLE",
            "channel": "SMS",
            "description": "",
        },
        {"pattern": "^\\+44", "code": "BAD_REQUEST", "channel": None, "description": ""},
    ]
    assert (await api.send(text_send()))[0] == 404  # the sandbox app is gone now
    for bad in (
        {"rate_limit": -1},
        {"error_rate_500": 2},
        {"nope": 1},
        {"failure_rules": ["(unclosed"]},
        {"callback_url": "ftp://x"},
        {"triggers": ["MESSAGE_INBOUND"]},
        {"token_lifetime": "long"},
    ):
        async with api.session.patch(f"{api.url}/_sandbox/settings", json=bad) as response:
            assert response.status == 400, bad
            assert (await response.json())["error"]["status"] == "INVALID_ARGUMENT"
    assert (await api.inspect("settings"))["rate_limit"] == 800


def test_settings_validation() -> None:
    with pytest.raises(ConfigError, match="error_rate_500"):
        SandboxSettings(error_rate_500=1.5)
    with pytest.raises(ConfigError, match="must not exceed 1"):
        SandboxSettings(error_rate_500=0.6, error_rate_503=0.6)
    with pytest.raises(ConfigError, match="unknown channel"):
        FailureRule(pattern="x", channel="FAX")
    with pytest.raises(ConfigError, match="reason code"):
        FailureRule(pattern="x", code="lower")
    s = settings.patched(SandboxSettings(), {"seed": 5, "reorder": True, "latency_ms": 3})
    assert (s.seed, s.reorder, s.latency_ms) == (5, True, 3.0)
    assert settings.patched(s, {"seed": None}).seed is None


def test_failure_rule_parse_and_match() -> None:
    assert FailureRule.parse("^\\+1555") == FailureRule(pattern="^\\+1555")
    rule = FailureRule.parse("a=b=CHANNEL_FAILURE:WHATSAPP")
    assert rule == FailureRule(pattern="a=b", code="CHANNEL_FAILURE", channel="WHATSAPP")
    rule = FailureRule.parse("^1555=RECIPIENT_NOT_OPTED_IN")
    assert rule.matches("SMS", "+15551234567") and rule.matches("RCS", "15551234567")
    assert not rule.matches("SMS", "+46701234567")
    assert not FailureRule(pattern=".", channel="RCS").matches("SMS", "+15551234567")


def test_command_line_options() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args([])
    assert (args.host, args.port) == ("127.0.0.1", 8765)
    assert settings_from_args(args) == SandboxSettings()
    args = parser.parse_args(
        [
            "--port", "0", "--latency-ms", "20", "--jitter-ms", "5", "--error-rate-500", "0.01",
            "--error-rate-503", "0.02", "--drop-rate", "0.001", "--rate-limit", "100",
            "--callback-url", "http://127.0.0.1:8080/sinch/callbacks", "--webhook-secret", "",
            "--fail-pattern", "0000$", "--fail-pattern", "^\\+44=RECIPIENT_NOT_OPTED_IN:WHATSAPP",
            "--app-id", "a1", "--app-id", "a2", "--seed", "3", "--reorder", "--no-submit",
            "--unknown-parameter", "error",
        ]
    )  # fmt: skip
    s = settings_from_args(args)
    assert (s.latency_ms, s.jitter_ms, s.rate_limit, s.seed) == (20, 5, 100, 3)
    assert (s.error_rate_500, s.error_rate_503, s.drop_rate) == (0.01, 0.02, 0.001)
    assert s.callback_url == "http://127.0.0.1:8080/sinch/callbacks"
    assert s.webhook_secret is None and s.reorder and s.triggers == ("MESSAGE_DELIVERY",)
    assert s.app_ids == ("a1", "a2") and s.unknown_parameter == "error"
    assert s.failure_rules == (
        FailureRule(pattern="0000$"),
        FailureRule(pattern="^\\+44", code="RECIPIENT_NOT_OPTED_IN", channel="WHATSAPP"),
    )
    # A namespace without the sandbox's options gives the defaults.
    assert settings_from_args(argparse.Namespace()) == SandboxSettings()


async def test_history_can_be_switched_off_for_long_runs(api: Api) -> None:
    await api.patch(record_history=False)
    assert (await api.send(text_send()))[0] == 200
    assert (await api.inspect("messages"))["total"] == 0
    assert (await api.inspect("stats"))["accepted_messages"] == 1
