"""The sandbox's webhook management API, and callbacks to the webhooks it registered.

Over real HTTP: the sandbox and the receivers listen on loopback ports.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web

from campaign.sandbox import SandboxSettings, arguments
from campaign.sinch import signature

from .helpers import (
    APP,
    FAST_CALLBACKS,
    PROJECT,
    WEBHOOK_SECRET,
    Api,
    Receiver,
    SandboxFactory,
    basic,
    text_send,
)

WEBHOOKS = f"/v1/projects/{PROJECT}/webhooks"
LIST = f"/v1/projects/{PROJECT}/apps/{APP}/webhooks"

# The Java SDK's EventDestinationRequestDto.json fixture, our app in place of "an app id".
REQUEST: dict[str, Any] = {
    "app_id": APP,
    "target": "https://fake.url/ConversationEvent",
    "target_type": "HTTP",
    "secret": "my secret value",
    "triggers": ["CAPABILITY", "CHANNEL_EVENT", "CONTACT_CREATE", "UNSUPPORTED"],
    "client_credentials": {
        "client_id": "a client id",
        "client_secret": "a client secret",
        "endpoint": "https://fake.url",
        "scope": "a scope",
        "response_type": "a response type",
        "token_request_type": "BASIC",
    },
}


def hook(target: str, **extra: Any) -> dict[str, Any]:
    """A minimal create body for ``target``."""
    return {"app_id": APP, "target": target, "triggers": ["MESSAGE_DELIVERY"], **extra}


def violations(body: Any) -> list[str]:
    return [v["field"] for d in body["error"]["details"] for v in d["field_violations"]]


async def test_create_answers_the_webhook_with_an_id_and_get_and_list_show_it(api: Api) -> None:
    status, created, _ = await api.call("POST", WEBHOOKS, json=REQUEST)
    assert status == 200, created
    # The EventDestinationResponseDto.json shape: the request plus an id (secret included).
    assert {k: v for k, v in created.items() if k != "id"} == REQUEST
    assert len(created["id"]) == 26
    assert (await api.call("GET", f"{WEBHOOKS}/{created['id']}"))[:2] == (200, created)
    status, listed, _ = await api.call("GET", LIST)
    assert (status, listed) == (200, {"webhooks": [created]})


async def test_target_type_defaults_to_http_and_basic_auth_is_accepted(api: Api) -> None:
    body = hook("https://example.com/a")
    status, created, _ = await api.call(
        "POST", WEBHOOKS, json=body, headers={"Authorization": basic()}
    )
    assert status == 200 and created["target_type"] == "HTTP" and "secret" not in created


async def test_patch_with_update_mask_changes_only_the_named_fields(api: Api) -> None:
    _, created, _ = await api.call("POST", WEBHOOKS, json=REQUEST)
    url = f"{WEBHOOKS}/{created['id']}"
    change = {
        "triggers": ["MESSAGE_DELIVERY"],
        "secret": "new",
        "target": "https://other.example/x",
    }
    status, patched, _ = await api.call("PATCH", url + "?update_mask=triggers,secret", json=change)
    assert status == 200, patched
    assert patched == {**created, "triggers": ["MESSAGE_DELIVERY"], "secret": "new"}
    # A field the mask names and the body lacks is cleared.
    status, cleared, _ = await api.call("PATCH", url + "?update_mask=secret", json={})
    assert status == 200 and "secret" not in cleared
    # Without a mask, the fields the body gives.
    status, moved, _ = await api.call("PATCH", url, json={"target": "https://other.example/x"})
    assert status == 200 and moved["target"] == "https://other.example/x"
    assert moved["triggers"] == ["MESSAGE_DELIVERY"]
    assert (await api.call("GET", url))[1] == moved


async def test_patch_refuses_fields_that_cannot_change_and_bad_values(api: Api) -> None:
    _, created, _ = await api.call("POST", WEBHOOKS, json=hook("https://example.com/a"))
    url = f"{WEBHOOKS}/{created['id']}"
    status, body, _ = await api.call("PATCH", url + "?update_mask=app_id", json={"app_id": "x"})
    assert status == 400 and violations(body) == ["update_mask.app_id"]
    status, body, _ = await api.call("PATCH", url, json={"triggers": ["NOPE"]})
    assert status == 400 and violations(body) == ["triggers[0]"]
    # The webhook as read back may be sent whole: nothing changes.
    assert (await api.call("PATCH", url, json=created))[:2] == (200, created)


async def test_delete_removes_the_webhook(api: Api) -> None:
    _, created, _ = await api.call("POST", WEBHOOKS, json=hook("https://example.com/a"))
    assert (await api.call("DELETE", f"{WEBHOOKS}/{created['id']}"))[:2] == (200, {})
    assert (await api.call("GET", LIST))[1] == {"webhooks": []}
    for method in ("GET", "PATCH", "DELETE"):
        status, body, _ = await api.call(method, f"{WEBHOOKS}/{created['id']}", json={})
        assert status == 404 and body["error"]["status"] == "NOT_FOUND"


async def test_at_most_five_webhooks_per_app(api: Api) -> None:
    for i in range(5):
        assert (await api.call("POST", WEBHOOKS, json=hook(f"https://example.com/{i}")))[0] == 200
    status, body, _ = await api.call("POST", WEBHOOKS, json=hook("https://example.com/5"))
    assert status == 400 and body["error"]["status"] == "INVALID_ARGUMENT"
    assert violations(body) == ["app_id"]
    assert len((await api.call("GET", LIST))[1]["webhooks"]) == 5


async def test_a_duplicate_target_is_refused_on_create_and_on_update(api: Api) -> None:
    await api.call("POST", WEBHOOKS, json=hook("https://example.com/a"))
    status, body, _ = await api.call("POST", WEBHOOKS, json=hook("https://example.com/a"))
    assert status == 400 and body["error"]["status"] == "INVALID_ARGUMENT"
    assert violations(body) == ["target"]
    _, other, _ = await api.call("POST", WEBHOOKS, json=hook("https://example.com/b"))
    url = f"{WEBHOOKS}/{other['id']}"
    status, body, _ = await api.call("PATCH", url, json={"target": "https://example.com/a"})
    assert status == 400 and violations(body) == ["target"]


@pytest.mark.parametrize(
    ("change", "fields"),
    [
        ({"target": "ftp://example.com"}, ["target"]),
        ({"target": "https://conversation-api.eu.sinch.com/x"}, ["target"]),
        ({"target": "https://example.com/" + "x" * 742}, ["target"]),
        ({"triggers": []}, ["triggers"]),
        ({"triggers": ["MESSAGE_DELIVERY", "SOMETHING"]}, ["triggers[1]"]),
        ({"target_type": "SMTP"}, ["target_type"]),
        ({"secret": 5}, ["secret"]),
        ({"colour": "red"}, ["colour"]),
        (
            {"client_credentials": {"client_id": "i"}},
            ["client_credentials.client_secret", "client_credentials.endpoint"],
        ),
    ],
)
async def test_invalid_webhooks_get_field_violations(
    api: Api, change: dict[str, Any], fields: list[str]
) -> None:
    status, body, _ = await api.call(
        "POST", WEBHOOKS, json={**hook("https://example.com/a"), **change}
    )
    assert status == 400 and violations(body) == fields
    status, body, _ = await api.call("POST", WEBHOOKS, json={"app_id": APP})
    assert status == 400 and violations(body) == ["target", "triggers"]


async def test_unknown_app_project_and_credentials(api: Api) -> None:
    status, _, _ = await api.call(
        "POST", WEBHOOKS, json={**hook("https://e.com"), "app_id": "NOPE"}
    )
    assert status == 404
    assert (await api.call("GET", f"/v1/projects/{PROJECT}/apps/NOPE/webhooks"))[0] == 404
    assert (await api.call("GET", f"/v1/projects/other/apps/{APP}/webhooks"))[0] == 404
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": basic(password="x")}):
        assert (await api.call("GET", LIST, headers=headers or {"X": "y"}))[0] == 401
    assert (await api.call("POST", WEBHOOKS, json=hook("https://e.com"), headers={"X": "y"}))[
        0
    ] == 401


async def test_reset_forgets_the_webhooks(api: Api) -> None:
    await api.call("POST", WEBHOOKS, json=hook("https://example.com/a"))
    assert (await api.call("POST", "/_sandbox/reset", headers={}))[0] == 200
    assert (await api.call("GET", LIST))[1] == {"webhooks": []}


async def test_the_app_shows_the_secret_for_overridden_urls(make_sandbox: SandboxFactory) -> None:
    async with make_sandbox(override_secret="over") as (_, api):
        _, app, _ = await api.call("GET", f"/v1/projects/{PROJECT}/apps/{APP}")
        assert app["callback_settings"] == {"secret_for_overridden_callback_urls": "over"}
        await api.patch(override_secret="")
        _, app, _ = await api.call("GET", f"/v1/projects/{PROJECT}/apps/{APP}")
        assert app["callback_settings"] == {"secret_for_overridden_callback_urls": ""}


# --- callbacks to registered webhooks --------------------------------------------------------


@asynccontextmanager
async def receivers(count: int) -> AsyncIterator[list[Receiver]]:
    """``count`` callback receivers, each on its own loopback port."""
    found = [Receiver() for _ in range(count)]
    app = web.Application()
    for i, rec in enumerate(found):
        app.router.add_post(f"/r{i}", rec.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    for i, rec in enumerate(found):
        rec.url = f"http://127.0.0.1:{port}/r{i}"
    try:
        yield found
    finally:
        await runner.cleanup()


def kinds(rec: Receiver) -> list[str]:
    """``SUBMIT`` or the delivery status of each callback ``rec`` received."""
    return [
        "SUBMIT" if "message_submit_notification" in b else b["message_delivery_report"]["status"]
        for b in rec.bodies
    ]


def assert_signed_with(rec: Receiver, secret: str) -> None:
    for _, raw, headers in rec.calls:
        signature.verify(secret, raw, {k.lower(): v for k, v in headers.items()})
        with pytest.raises(signature.SignatureError):
            signature.verify(secret + "x", raw, {k.lower(): v for k, v in headers.items()})


def unsigned(rec: Receiver) -> bool:
    return all(signature.SIGNATURE not in {k.lower() for k in h} for _, _, h in rec.calls)


async def test_every_matching_webhook_receives_the_callbacks_signed_with_its_own_secret(
    make_sandbox: SandboxFactory,
) -> None:
    async with receivers(4) as (a, b, c, d), make_sandbox(**FAST_CALLBACKS) as (_, api):
        await api.call("POST", WEBHOOKS, json=hook(a.url, secret="secret-a"))
        both = ["MESSAGE_DELIVERY", "MESSAGE_SUBMIT"]
        await api.call("POST", WEBHOOKS, json=hook(b.url, secret="secret-b", triggers=both))
        await api.call("POST", WEBHOOKS, json=hook(c.url, triggers=["MESSAGE_INBOUND"]))
        await api.call("POST", WEBHOOKS, json=hook(d.url, target_type="DISMISS"))
        assert (await api.send(text_send()))[0] == 200
        await a.wait_for(lambda bodies: len(bodies) == 2)
        await b.wait_for(lambda bodies: len(bodies) == 3)
        await asyncio.sleep(0.1)
        assert kinds(a) == ["QUEUED_ON_CHANNEL", "DELIVERED"]
        assert kinds(b) == ["SUBMIT", "QUEUED_ON_CHANNEL", "DELIVERED"]
        assert c.calls == [] and d.calls == []
        assert_signed_with(a, "secret-a")
        assert_signed_with(b, "secret-b")


async def test_a_webhook_without_a_secret_gets_unsigned_callbacks_and_settings_url_still_works(
    with_callbacks: SandboxFactory, receiver: Receiver
) -> None:
    async with receivers(1) as (a,), with_callbacks() as (_, api):
        await api.call("POST", WEBHOOKS, json=hook(a.url))
        await api.send(text_send())
        await a.wait_for(lambda bodies: kinds(a)[-1:] == ["DELIVERED"])
        await receiver.wait_for(lambda bodies: len(bodies) == 3)  # the settings' URL: all
        assert unsigned(a)
        assert not unsigned(receiver)


async def test_a_request_callback_url_overrides_the_webhooks_signed_with_the_override_secret(
    make_sandbox: SandboxFactory,
) -> None:
    settings = {**FAST_CALLBACKS, "override_secret": "the-override"}
    async with receivers(2) as (a, mine), make_sandbox(**settings) as (_, api):
        await api.call("POST", WEBHOOKS, json=hook(a.url, secret="secret-a"))
        await api.send(text_send(callback_url=mine.url))
        await mine.wait_for(lambda bodies: kinds(mine)[-1:] == ["DELIVERED"])
        await asyncio.sleep(0.1)
        assert a.calls == []
        assert_signed_with(mine, "the-override")


async def test_batch_callbacks_reach_the_webhooks_without_history(
    make_sandbox: SandboxFactory,
) -> None:
    async with (
        receivers(1) as (a,),
        make_sandbox(**FAST_CALLBACKS, record_history=False) as (
            _,
            api,
        ),
    ):
        await api.call("POST", WEBHOOKS, json=hook(a.url, secret="s"))
        recipients = [{"recipient": {"contact_id": f"c{i}"}} for i in range(3)]
        body = {"app_id": APP, "message": {"text_message": {"text": "Hi"}}}
        status, answer, _ = await api.batch({**body, "recipient_and_params": recipients})
        assert status == 200, answer
        await a.wait_for(lambda bodies: kinds(a).count("DELIVERED") == 3)
        assert_signed_with(a, "s")


async def test_a_deleted_webhook_receives_nothing_more(
    make_sandbox: SandboxFactory,
) -> None:
    slow = {**FAST_CALLBACKS, "delivered_delay_s": 0.5}
    async with receivers(1) as (a,), make_sandbox(**slow) as (_, api):
        _, created, _ = await api.call("POST", WEBHOOKS, json=hook(a.url))
        await api.send(text_send())
        await a.wait_for(lambda bodies: kinds(a) == ["QUEUED_ON_CHANNEL"])
        await api.call("DELETE", f"{WEBHOOKS}/{created['id']}")
        await asyncio.sleep(0.7)
        assert kinds(a) == ["QUEUED_ON_CHANNEL"]


def test_the_override_secret_option_and_its_default() -> None:
    parser = argparse.ArgumentParser()
    arguments.add_arguments(parser)
    given = arguments.settings_from_args(parser.parse_args(["--override-secret", "OVER-XYZ"]))
    assert given.secret_for_overridden_urls() == "OVER-XYZ" and "OVER-XYZ" not in repr(given)
    default = arguments.settings_from_args(parser.parse_args([]))
    assert default.secret_for_overridden_urls() == WEBHOOK_SECRET
    assert SandboxSettings(override_secret="").secret_for_overridden_urls() is None
    assert SandboxSettings(webhook_secret=None).secret_for_overridden_urls() is None
