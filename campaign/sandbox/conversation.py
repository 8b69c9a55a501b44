"""The Conversation API endpoints: ``messages:send`` and the app list."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from campaign.sandbox import guard, keys, records, responses, validation


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
    if body["app_id"] not in settings.app_ids:
        return responses.not_found(f"App {body['app_id']!r}")
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
    settings = keys.state(request.app).settings
    apps = [
        {
            "id": app_id,
            "display_name": f"Sandbox app {app_id}",
            "channel_credentials": [],
            "conversation_metadata_report_view": "NONE",
            "retention_policy": {"retention_type": "MESSAGE_EXPIRE_POLICY", "ttl_days": 180},
            "dispatch_retention_policy": {"retention_type": "MESSAGE_EXPIRE_POLICY", "ttl_days": 0},
            "processing_mode": "DISPATCH",
            "rate_limits": {"outbound": 20, "inbound": 25, "webhooks": 25},
            "callback_settings": {"secret_for_overridden_callback_urls": ""},
        }
        for app_id in settings.app_ids
    ]
    return responses.json_response({"apps": apps})
