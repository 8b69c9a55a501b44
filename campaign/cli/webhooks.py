"""`campaign webhook setup|list|delete`: the app's webhooks at Sinch, so that delivery reports
reach `campaign receiver` without a ``callback_url`` on every request.

``setup`` is safe to repeat: the webhook for a target is created once, then brought up to date
(triggers, secret), and a run that finds it as wanted changes nothing and says so. Secrets are
sent to Sinch and never printed.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any

from campaign import errors, jsonutil
from campaign.cli import commands
from campaign.config import Config
from campaign.resources import open_resources
from campaign.sinch import webhooks
from campaign.sinch.client import SinchClient

DEFAULT_TRIGGERS = "MESSAGE_DELIVERY,MESSAGE_INBOUND"
_URL = re.compile(r"https?://[^/\s?#]+(?:[/?#]\S*)?")


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``campaign webhook`` and its actions."""
    hook = sub.add_parser(
        "webhook",
        aliases=["webhooks"],
        parents=[common],
        help="register the receiver's URL with Sinch (the app's webhooks)",
        description="Manage the webhooks of the configured app: where Sinch sends delivery "
        "reports and inbound messages. Sinch allows 5 per app.",
    )
    actions = hook.add_subparsers(dest="webhook_command", required=True, metavar="ACTION")
    setup = actions.add_parser(
        "setup",
        parents=[common],
        help="create or update the app's webhook for a URL (idempotent)",
        description="Create the app's webhook for --target, signed with SINCH_WEBHOOK_SECRET, or "
        "bring the existing one up to date. Running it again changes nothing.",
    )
    setup.add_argument("--target", required=True, metavar="URL", help="the receiver's public URL")
    setup.add_argument(
        "--triggers",
        default=DEFAULT_TRIGGERS,
        metavar="T,T...",
        help=f"the events to receive (default: {DEFAULT_TRIGGERS})",
    )
    setup.set_defaults(handler=setup_webhook, needs_config=True, needs_sinch=True)
    listing = actions.add_parser("list", parents=[common], help="the app's webhooks")
    listing.add_argument("--json", action="store_true", help="as JSON (secrets never shown)")
    listing.set_defaults(handler=list_webhooks, needs_config=True, needs_sinch=True)
    delete = actions.add_parser("delete", parents=[common], help="remove one of the app's webhooks")
    delete.add_argument("webhook_id", metavar="ID", help="as `campaign webhook list` shows it")
    delete.set_defaults(handler=delete_webhook, needs_config=True, needs_sinch=True)


async def setup_webhook(args: argparse.Namespace, config: Config | None) -> int:
    """Create the webhook for ``--target``, or update it; nothing when it is as wanted."""
    assert config is not None
    target = _target(args.target)
    triggers = webhooks.parse_triggers(args.triggers)
    secret = _secret(config)
    _say_where(config)
    async with open_resources(config, store=False) as resources:
        client = resources.need_client()
        existing = await webhooks.list_webhooks(client)
        match = next((w for w in existing if w.target == target), None)
        if match is None:
            return await _create(client, existing, target, triggers, secret)
        return await _update(client, match, triggers, secret)


async def list_webhooks(args: argparse.Namespace, config: Config | None) -> int:
    """Print the app's webhooks: id, target, triggers, whether signed (never the secret)."""
    assert config is not None
    _say_where(config)
    async with open_resources(config, store=False) as resources:
        found = await webhooks.list_webhooks(resources.need_client())
    if args.json:
        print(jsonutil.dumps([_view(w) for w in found]))
        return errors.EXIT_OK
    if not found:
        print(f"app {config.sinch.app_id} has no webhooks")
    for w in found:
        print(f"{w.id}  {w.target}  {','.join(w.triggers)}  {_signed(w)}")
    return errors.EXIT_OK


async def delete_webhook(args: argparse.Namespace, config: Config | None) -> int:
    """Remove one webhook (Sinch's 404 when the app has no such webhook)."""
    assert config is not None
    _say_where(config)
    async with open_resources(config, store=False) as resources:
        await webhooks.delete_webhook(resources.need_client(), args.webhook_id)
    print(f"deleted webhook {args.webhook_id}")
    return errors.EXIT_OK


async def _create(
    client: SinchClient,
    existing: list[webhooks.Webhook],
    target: str,
    triggers: tuple[str, ...],
    secret: str,
) -> int:
    """A new webhook, unless the app has as many as Sinch allows (exit 2, nothing changed)."""
    if len(existing) >= webhooks.MAX_PER_APP:
        raise errors.CampaignError(
            f"the app already has {len(existing)} webhooks, the most Sinch allows: delete one"
            " with `campaign webhook delete ID` (see `campaign webhook list`)"
        )
    created = await webhooks.create_webhook(client, target=target, triggers=triggers, secret=secret)
    print(f"created webhook {created.id} for {target} ({','.join(created.triggers)}, signed)")
    return errors.EXIT_OK


async def _update(
    client: SinchClient, found: webhooks.Webhook, triggers: tuple[str, ...], secret: str
) -> int:
    """Bring ``found`` up to date: only what differs is sent."""
    new_triggers = None if webhooks.same_triggers(found.triggers, triggers) else triggers
    new_secret = None if found.secret == secret else secret
    if new_triggers is None and new_secret is None:
        print(f"webhook {found.id} for {found.target} is already set up: nothing changed")
        return errors.EXIT_OK
    await webhooks.update_webhook(client, found.id, triggers=new_triggers, secret=new_secret)
    changed = [
        *(["triggers"] if new_triggers is not None else []),
        *(["secret"] if new_secret is not None else []),
    ]
    print(f"updated webhook {found.id} for {found.target}: {' and '.join(changed)}")
    return errors.EXIT_OK


def _target(url: str) -> str:
    """``--target`` checked: an absolute http(s) URL, as Sinch requires (exit 2 if not)."""
    if not _URL.fullmatch(url):
        raise errors.ConfigError(f"--target {url!r} is not an http(s) URL")
    return url


def _secret(config: Config) -> str:
    """The webhook secret: the receiver refuses unsigned callbacks, so a webhook without one
    would deliver nothing."""
    if config.sinch.webhook_secret is None:
        raise errors.ConfigError(
            "SINCH_WEBHOOK_SECRET is not set: the webhook would send unsigned callbacks, which"
            " the receiver refuses"
        )
    return config.sinch.webhook_secret.reveal()


def _say_where(config: Config) -> None:
    """With the built-in sandbox, what is registered lasts only as long as this command."""
    commands._say_if_sandbox(config)
    if config.sinch.sandbox:
        print(
            "campaign: note: [sinch] sandbox = true: the built-in sandbox keeps webhooks only"
            " while this command runs",
            file=sys.stderr,
        )


def _signed(w: webhooks.Webhook) -> str:
    return "signed" if w.signed else "UNSIGNED"


def _view(w: webhooks.Webhook) -> dict[str, Any]:
    """A webhook as `list --json` shows it: no secret, only whether there is one."""
    return {
        "id": w.id,
        "target": w.target,
        "target_type": w.target_type,
        "triggers": list(w.triggers),
        "signed": w.signed,
    }
