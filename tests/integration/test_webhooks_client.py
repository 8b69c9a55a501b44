"""campaign.sinch.webhooks against the sandbox, over real HTTP on loopback."""

from __future__ import annotations

import pytest

from campaign import errors
from campaign.sinch import webhooks
from tests.integration.test_client import Harness
from tests.integration.test_client import sandbox as sandbox

TARGET = "https://hooks.example.com/sinch"
SECRET = "client-test-secret"


async def test_create_list_update_delete(sandbox: Harness) -> None:
    client = sandbox.client()
    created = await webhooks.create_webhook(
        client, target=TARGET, triggers=["MESSAGE_DELIVERY"], secret=SECRET
    )
    assert (created.target, created.triggers, created.secret) == (
        TARGET,
        ("MESSAGE_DELIVERY",),
        SECRET,
    )
    assert created.signed and created.app_id == client.config.app_id
    assert await webhooks.list_webhooks(client) == [created]

    # Only the fields named change: the secret stays.
    both = ("MESSAGE_DELIVERY", "MESSAGE_INBOUND")
    updated = await webhooks.update_webhook(client, created.id, triggers=both)
    assert updated.triggers == both and updated.secret == SECRET
    cleared = await webhooks.update_webhook(client, created.id, secret="")
    assert not cleared.signed and cleared.triggers == both

    await webhooks.delete_webhook(client, created.id)
    assert await webhooks.list_webhooks(client) == []
    with pytest.raises(errors.SinchPermanentError) as missing:
        await webhooks.delete_webhook(client, created.id)
    assert missing.value.status == 404


async def test_a_webhook_never_shows_its_secret(sandbox: Harness) -> None:
    client = sandbox.client()
    created = await webhooks.create_webhook(client, target=TARGET, triggers=["MESSAGE_DELIVERY"])
    assert not created.signed
    hook = webhooks.Webhook("id", "app", TARGET, ("MESSAGE_DELIVERY",), secret=SECRET)
    assert SECRET not in repr(hook) + str(hook) + f"{hook}"


async def test_sinch_refusals_are_permanent_errors(sandbox: Harness) -> None:
    client = sandbox.client()
    await webhooks.create_webhook(client, target=TARGET, triggers=["MESSAGE_DELIVERY"])
    with pytest.raises(errors.SinchPermanentError) as duplicate:
        await webhooks.create_webhook(client, target=TARGET, triggers=["MESSAGE_DELIVERY"])
    assert duplicate.value.status == 400 and duplicate.value.code == "INVALID_ARGUMENT"
    with pytest.raises(ValueError, match="at least one field"):
        await webhooks.update_webhook(client, "x")


def test_parse_triggers() -> None:
    assert webhooks.parse_triggers(" message_delivery,MESSAGE_INBOUND,message_delivery") == (
        "MESSAGE_DELIVERY",
        "MESSAGE_INBOUND",
    )
    with pytest.raises(errors.ConfigError, match="NOPE"):
        webhooks.parse_triggers("MESSAGE_DELIVERY,NOPE")
    with pytest.raises(errors.ConfigError, match="at least one"):
        webhooks.parse_triggers(" , ")
