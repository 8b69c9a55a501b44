"""``POST /v1/projects/{project_id}/messages:transcode``: a message in each channel's own form,
sent to nobody (a preview shows what each channel makes of a campaign's message).

Checked as Sinch checks it: ``app_id``, ``app_message`` (the AppMessage checks of
``messages:send``) and ``channels`` (at least one, each a ConversationChannel) are required;
``from`` and ``to`` are optional. The answer maps each channel to a JSON string
(:mod:`campaign.sandbox.native`)::

    {"transcoded_message": {"SMS": "{\\"body\\":\\"...\\"}", "WHATSAPP": "{...}"}}
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from campaign.messages import content
from campaign.messages.channels import CHANNELS
from campaign.messages.violations import Violations
from campaign.sandbox import guard, keys, native, responses

FIELDS: Final = frozenset({"app_id", "app_message", "channels", "from", "to", "project_id"})


def add_routes(router: web.UrlDispatcher, project: str) -> None:
    """Register the routes under ``project`` (``/v1/projects/{project_id}``)."""
    router.add_post(project + "/messages:transcode", transcode_message)


@guard.api_endpoint("conversation")
async def transcode_message(request: web.Request) -> web.StreamResponse:
    """``POST /v1/projects/{project_id}/messages:transcode``."""
    state = keys.state(request.app)
    body = await guard.read_json(request)
    if isinstance(body, web.Response):
        return body
    violations = check_transcode(body, strict=state.settings.reject_unknown_fields)
    if violations:
        return responses.invalid_argument(violations)
    assert isinstance(body, dict)  # check_transcode refuses anything else
    if not state.has_app(body["app_id"]):
        return responses.not_found(f"App {body['app_id']!r}")
    sender, to = body.get("from") or None, body.get("to") or None
    transcoded = {
        channel: native.transcode(body["app_message"], channel, sender, to)
        for channel in dict.fromkeys(body["channels"])
    }
    return responses.json_response({"transcoded_message": transcoded})


def check_transcode(body: Any, *, strict: bool = True) -> list[tuple[str, str]]:
    """Violations of a ``messages:transcode`` body (empty: valid)."""
    if not isinstance(body, dict):
        return [("", "the request body must be a JSON object")]
    v = Violations()
    v.string(body, "app_id", "")
    if "app_message" not in body:
        v.add("app_message", "is required")
    else:
        content.check_message(body["app_message"], "app_message", v, strict=strict)
    channels = v.array(body, "channels", "", minimum=1)
    for i, channel in enumerate(channels or ()):
        if channel not in CHANNELS:
            v.add(f"channels[{i}]", f"unknown channel {channel!r}")
    for key in ("from", "to", "project_id"):
        v.string(body, key, "", required=False)
    if strict:
        for key in body:
            if key not in FIELDS:
                v.add(key, "unknown field")
    return v.items
