"""The app's webhooks at Sinch (``/v1/projects/{project}/webhooks``), as typed calls.

Sinch answers a webhook with its secret; :class:`Webhook` keeps it (to tell whether a
registration is up to date) but never shows it in its ``repr`` or ``str``, so a webhook can be
logged or printed safely.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from campaign import errors
from campaign.models import WEBHOOK_TRIGGERS
from campaign.sinch.client import SinchClient

MAX_PER_APP: Final = 5
TRIGGERS: Final = WEBHOOK_TRIGGERS


@dataclass(frozen=True)
class Webhook:
    """One webhook of the app. ``secret`` is "" when callbacks to it are unsigned."""

    id: str
    app_id: str
    target: str
    triggers: tuple[str, ...]
    target_type: str = "HTTP"
    secret: str = field(default="", repr=False)

    @property
    def signed(self) -> bool:
        """Whether Sinch signs the callbacks it sends here."""
        return bool(self.secret)


async def list_webhooks(client: SinchClient) -> list[Webhook]:
    """The webhooks of the configured app."""
    data = await client.conversation("GET", f"/apps/{client.config.app_id}/webhooks")
    items = data.get("webhooks", []) if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise errors.SinchPermanentError("the webhook list answered an unexpected shape")
    return [_webhook(item) for item in items]


async def create_webhook(
    client: SinchClient,
    *,
    target: str,
    triggers: Sequence[str],
    secret: str | None = None,
    target_type: str = "HTTP",
) -> Webhook:
    """Register ``target`` for ``triggers`` on the configured app (Sinch refuses a sixth
    webhook, or a second one with the same target, with a 400)."""
    body: dict[str, Any] = {
        "app_id": client.config.app_id,
        "target": target,
        "target_type": target_type,
        "triggers": list(triggers),
    }
    if secret:
        body["secret"] = secret
    return _webhook(await client.conversation("POST", "/webhooks", body))


async def update_webhook(
    client: SinchClient,
    webhook_id: str,
    *,
    target: str | None = None,
    triggers: Sequence[str] | None = None,
    secret: str | None = None,
) -> Webhook:
    """Change the fields given (``secret=""`` removes the secret); the others stay as they
    are, whatever Sinch adds to webhooks later, because the ``update_mask`` names only these."""
    changes: dict[str, Any] = {}
    if target is not None:
        changes["target"] = target
    if triggers is not None:
        changes["triggers"] = list(triggers)
    if secret is not None:
        changes["secret"] = secret
    if not changes:
        raise ValueError("update_webhook needs at least one field to change")
    mask = ",".join(changes)
    body = {key: value for key, value in changes.items() if value != ""}
    answer = await client.conversation(
        "PATCH", f"/webhooks/{webhook_id}", body, params={"update_mask": mask}
    )
    return _webhook(answer)


async def delete_webhook(client: SinchClient, webhook_id: str) -> None:
    """Remove the webhook ``webhook_id`` (a 404 when there is none)."""
    await client.conversation("DELETE", f"/webhooks/{webhook_id}")


def parse_triggers(text: str) -> tuple[str, ...]:
    """``MESSAGE_DELIVERY,message_inbound`` as trigger names, in order, without repeats;
    :class:`~campaign.errors.ConfigError` naming any that Sinch does not know."""
    names = tuple(dict.fromkeys(t.strip().upper() for t in text.split(",") if t.strip()))
    if not names:
        raise errors.ConfigError("--triggers: name at least one trigger")
    if unknown := [n for n in names if n not in TRIGGERS]:
        raise errors.ConfigError(
            f"--triggers: unknown trigger {', '.join(unknown)} (Sinch's: {', '.join(TRIGGERS)})"
        )
    return names


def same_triggers(a: Iterable[str], b: Iterable[str]) -> bool:
    """Whether two trigger lists subscribe to the same events (order does not matter)."""
    return set(a) == set(b)


def _webhook(data: Any) -> Webhook:
    """A webhook from Sinch's JSON."""
    try:
        return Webhook(
            id=str(data["id"]),
            app_id=str(data.get("app_id", "")),
            target=str(data["target"]),
            triggers=tuple(str(t) for t in data.get("triggers", [])),
            target_type=str(data.get("target_type", "HTTP")),
            secret=str(data.get("secret") or ""),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise errors.SinchPermanentError("a webhook answered an unexpected shape") from exc
