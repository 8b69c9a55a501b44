"""The Conversation API's webhook management, and who receives each callback.

Sinch keeps up to five webhooks per app. Each names a ``target`` URL, the ``triggers`` it
wants and, optionally, a ``secret`` that signs what it receives; a second webhook with the
same target is refused (400 INVALID_ARGUMENT), as is a sixth. The sandbox keeps them in its
state (:attr:`SandboxState.webhooks`), answers them with their secret as Sinch does, and
:func:`subscribers` tells the callback dispatcher where each event of an app goes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from aiohttp import web

from campaign.messages.violations import Violations
from campaign.models import WEBHOOK_TRIGGERS
from campaign.sandbox import guard, keys, records, responses
from campaign.sandbox.state import SandboxState

MAX_PER_APP: Final = 5
MAX_TARGET: Final = 742
TARGET_TYPES: Final = frozenset({"HTTP", "DISMISS"})
TRIGGERS: Final = frozenset(WEBHOOK_TRIGGERS)  # EventDestinationTrigger of the Sinch SDKs
FIELDS: Final = frozenset(
    {"app_id", "target", "target_type", "secret", "triggers", "client_credentials"}
)
UPDATABLE: Final = FIELDS - {"app_id"}
CREDENTIAL_FIELDS: Final = frozenset(
    {"client_id", "client_secret", "endpoint", "scope", "response_type", "token_request_type"}
)
_URL: Final = re.compile(r"https?://([^/\s?#:]+)(?::\d+)?(?:[/?#]\S*)?")
# Sinch refuses to call itself back.
_SINCH_HOST: Final = re.compile(r"conversation-api\..*\.sinch\.com", re.IGNORECASE)


def add_routes(router: web.UrlDispatcher, project: str) -> None:
    """Register the routes under ``project`` (``/v1/projects/{project_id}``)."""
    router.add_post(project + "/webhooks", create_webhook)
    router.add_get(project + "/apps/{app_id}/webhooks", list_webhooks)
    router.add_get(project + "/webhooks/{webhook_id}", get_webhook)
    router.add_patch(project + "/webhooks/{webhook_id}", update_webhook)
    router.add_delete(project + "/webhooks/{webhook_id}", delete_webhook)


def subscribers(state: SandboxState, app_id: str) -> list[dict[str, Any]]:
    """The webhooks of ``app_id`` that Sinch calls (target type HTTP; DISMISS drops events)."""
    return [
        hook
        for hook in state.webhooks.values()
        if hook["app_id"] == app_id and hook.get("target_type", "HTTP") == "HTTP"
    ]


# --- handlers ------------------------------------------------------------------------------


@guard.api_endpoint("conversation")
async def create_webhook(request: web.Request) -> web.StreamResponse:
    """``POST /v1/projects/{project_id}/webhooks``: the webhook, with its new ``id``."""
    state = keys.state(request.app)
    body = await guard.read_json(request)
    if isinstance(body, web.Response):
        return body
    if not isinstance(body, dict):
        return responses.invalid_argument([("", "the request body must be a JSON object")])
    violations = check_webhook(body, strict=state.settings.reject_unknown_fields)
    if violations:
        return responses.invalid_argument(violations)
    if not state.has_app(body["app_id"]):
        return responses.not_found(f"App {body['app_id']!r}")
    refused = _refusal(state, body, None)
    if refused is not None:
        return refused
    hook = {"id": records.new_id(), "target_type": "HTTP", **body}
    state.webhooks[hook["id"]] = hook
    return responses.json_response(hook)


@guard.api_endpoint("conversation")
async def list_webhooks(request: web.Request) -> web.StreamResponse:
    """``GET /v1/projects/{project_id}/apps/{app_id}/webhooks``: ``{"webhooks": [...]}``."""
    state = keys.state(request.app)
    app_id = request.match_info["app_id"]
    if not state.has_app(app_id):
        return responses.not_found(f"App {app_id!r}")
    hooks = [hook for hook in state.webhooks.values() if hook["app_id"] == app_id]
    return responses.json_response({"webhooks": hooks})


@guard.api_endpoint("conversation")
async def get_webhook(request: web.Request) -> web.StreamResponse:
    """``GET /v1/projects/{project_id}/webhooks/{webhook_id}``."""
    hook = _found(request)
    if isinstance(hook, web.Response):
        return hook
    return responses.json_response(hook)


@guard.api_endpoint("conversation")
async def delete_webhook(request: web.Request) -> web.StreamResponse:
    """``DELETE /v1/projects/{project_id}/webhooks/{webhook_id}``: ``{}``."""
    hook = _found(request)
    if isinstance(hook, web.Response):
        return hook
    del keys.state(request.app).webhooks[hook["id"]]
    return responses.json_response({})


@guard.api_endpoint("conversation")
async def update_webhook(request: web.Request) -> web.StreamResponse:
    """``PATCH /v1/projects/{project_id}/webhooks/{webhook_id}[?update_mask=a,b]``.

    With an update mask, exactly the fields it names change (one named but absent from the
    body is cleared, as a protobuf field mask does); without one, the fields the body gives.
    """
    state = keys.state(request.app)
    hook = _found(request)
    if isinstance(hook, web.Response):
        return hook
    body = await guard.read_json(request)
    if isinstance(body, web.Response):
        return body
    if not isinstance(body, dict):
        return responses.invalid_argument([("", "the request body must be a JSON object")])
    paths = _mask(request.query, body, hook)
    if isinstance(paths, web.Response):
        return paths
    updated = {key: value for key, value in hook.items() if key != "id"}
    for path in paths:
        if path in body:
            updated[path] = body[path]
        else:
            updated.pop(path, None)
    violations = check_webhook(updated, strict=state.settings.reject_unknown_fields)
    if violations:
        return responses.invalid_argument(violations)
    refused = _refusal(state, updated, hook["id"])
    if refused is not None:
        return refused
    state.webhooks[hook["id"]] = {"id": hook["id"], **updated}
    return responses.json_response(state.webhooks[hook["id"]])


# --- checks --------------------------------------------------------------------------------


def check_webhook(body: dict[str, Any], *, strict: bool = True) -> list[tuple[str, str]]:
    """Violations of a webhook (a create body, or an updated webhook without its id)."""
    v = Violations()
    v.string(body, "app_id", "")
    target = v.string(body, "target", "", max_len=MAX_TARGET)
    if target:
        match = _URL.fullmatch(target)
        if match is None:
            v.add("target", "must be an http(s) URL")
        elif _SINCH_HOST.fullmatch(match[1]):
            v.add("target", "must not be a Sinch Conversation API host")
    v.enum(body, "target_type", "", TARGET_TYPES)
    v.string(body, "secret", "", required=False)
    triggers = v.array(body, "triggers", "", minimum=1)
    for i, trigger in enumerate(triggers or ()):
        if trigger not in TRIGGERS:
            v.add(f"triggers[{i}]", f"unknown trigger {trigger!r}")
    if "client_credentials" in body:
        _check_credentials(body["client_credentials"], v, strict=strict)
    if strict:
        for key in body:
            if key not in FIELDS:
                v.add(key, "unknown field")
    return v.items


def _check_credentials(value: Any, v: Violations, *, strict: bool) -> None:
    """``client_credentials``: Sinch fetches an OAuth token at ``endpoint`` with them."""
    creds = v.obj(value, "client_credentials")
    if creds is None:
        return
    for key in ("client_id", "client_secret", "endpoint"):
        v.string(creds, key, "client_credentials")
    for key in ("scope", "response_type"):
        v.string(creds, key, "client_credentials", required=False)
    v.enum(creds, "token_request_type", "client_credentials", {"BASIC", "FORM"})
    if strict:
        for key in creds:
            if key not in CREDENTIAL_FIELDS:
                v.add(f"client_credentials.{key}", "unknown field")


def _refusal(
    state: SandboxState, hook: Mapping[str, Any], own_id: str | None
) -> web.Response | None:
    """The 400 for a target the app already has a webhook for, or for a sixth webhook."""
    app_id, target = hook["app_id"], hook["target"]
    others = [h for h in state.webhooks.values() if h["app_id"] == app_id and h["id"] != own_id]
    if any(h["target"] == target for h in others):
        return _invalid(
            f"App {app_id!r} already has a webhook with target {target!r}",
            "target",
            "a webhook with this target already exists for the app",
        )
    if own_id is None and len(others) >= MAX_PER_APP:
        return _invalid(
            f"App {app_id!r} already has {MAX_PER_APP} webhooks, the most an app may have",
            "app_id",
            f"at most {MAX_PER_APP} webhooks per app",
        )
    return None


def _invalid(message: str, field: str, description: str) -> web.Response:
    """400 INVALID_ARGUMENT with ``message`` and one field violation."""
    detail = {
        "@type": responses.BAD_REQUEST_TYPE,
        "field_violations": [{"field": field, "description": description}],
    }
    return responses.api_error(400, message, details=[detail])


def _found(request: web.Request) -> dict[str, Any] | web.Response:
    """The webhook the path names, or the 404."""
    webhook_id = request.match_info["webhook_id"]
    hook = keys.state(request.app).webhooks.get(webhook_id)
    if hook is None:
        return responses.not_found(f"Webhook {webhook_id!r}")
    return hook


def _mask(
    query: Mapping[str, str], body: Mapping[str, Any], hook: Mapping[str, Any]
) -> list[str] | web.Response:
    """The fields a PATCH changes: ``update_mask`` (or ``update_mask.paths``, as gRPC
    transcoding spells it), comma-separated; without one, those the body gives."""
    raw = query.get("update_mask") or query.get("update_mask.paths")
    if raw is not None:
        paths = [p.strip() for p in raw.split(",") if p.strip()]
    else:
        # The webhook as read back (id, same app_id) may be sent whole.
        paths = [k for k in body if k != "id" and not (k == "app_id" and body[k] == hook["app_id"])]
    bad = [(f"update_mask.{p}", "cannot be updated") for p in paths if p not in UPDATABLE]
    if bad:
        return responses.invalid_argument(bad)
    return paths
