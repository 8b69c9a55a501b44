"""The Conversation API endpoints: ``messages:send`` and the apps (list and one)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from campaign.sandbox import guard, keys, records, responses, validation
from campaign.sandbox.state import SandboxState


@guard.api_endpoint("conversation")
async def send_message(request: web.Request) -> web.StreamResponse:
    """``POST /v1/projects/{project_id}/messages:send``."""
    state = keys.state(request.app)
    settings = state.settings
    body = await guard.read_json(request)
    if isinstance(body, web.Response):
        return body
    violations = validation.check_send(body, strict=settings.reject_unknown_fields)
    if violations:
        return responses.invalid_argument(violations)
    assert isinstance(body, dict)  # check_send refuses anything else
    if not state.has_app(body["app_id"]):
        return responses.not_found(f"App {body['app_id']!r}")
    if settings.processing_mode == "DISPATCH":
        refused = validation.dispatch_violations([("recipient", body["recipient"])])
        if refused:
            return responses.invalid_argument(refused)
    if not state.has_room(body["app_id"]):
        return responses.queue_full(body["app_id"], settings.queue_limit)
    message = records.from_send(body, settings.project_id, datetime.now(UTC))
    state.record(message)
    return responses.json_response(
        {
            "message_id": message.message_id,
            "accepted_time": responses.iso_millis(message.accepted_time),
        }
    )


@guard.api_endpoint("conversation")
async def list_apps(request: web.Request) -> web.StreamResponse:
    """``GET /v1/projects/{project_id}/apps`` (also under ``/v1beta``)."""
    state = keys.state(request.app)
    return responses.json_response({"apps": [_app(state, a) for a in state.apps()]})


@guard.api_endpoint("conversation")
async def get_app(request: web.Request) -> web.StreamResponse:
    """``GET /v1/projects/{project_id}/apps/{app_id}`` (also under ``/v1beta``)."""
    state = keys.state(request.app)
    app_id = request.match_info["app_id"]
    if not state.has_app(app_id):
        return responses.not_found(f"App {app_id!r}")
    answer = responses.json_response(_app(state, app_id))
    state.read_app(app_id)
    return answer


def _app(state: SandboxState, app_id: str) -> dict[str, Any]:
    """The App resource of ``app_id``, with its MT queue as it stands now."""
    settings = state.settings
    return {
        "id": app_id,
        "display_name": f"Sandbox app {app_id}",
        "channel_credentials": [],
        "conversation_metadata_report_view": "NONE",
        "retention_policy": {"retention_type": "MESSAGE_EXPIRE_POLICY", "ttl_days": 180},
        "dispatch_retention_policy": {"retention_type": "MESSAGE_EXPIRE_POLICY", "ttl_days": 0},
        "processing_mode": settings.processing_mode,
        "rate_limits": {"outbound": settings.outbound_rate, "inbound": 25, "webhooks": 25},
        "queue_stats": {
            "outbound_size": state.queue(app_id).size(time.monotonic()),
            "outbound_limit": settings.queue_limit,
        },
        "callback_settings": {
            "secret_for_overridden_callback_urls": settings.secret_for_overridden_urls() or ""
        },
    }
