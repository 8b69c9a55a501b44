"""Credentials: the OAuth2 token endpoint and the checks on every API call.

``POST /oauth2/token`` trades HTTP Basic ``key_id:key_secret`` for a random bearer token.
API calls carry ``Bearer <token>``; the Conversation endpoints also take Basic directly, the
Batch endpoints do not. Expired and unknown tokens are told apart the way the Sinch SDKs
expect: only an expired one has ``expired`` in its ``WWW-Authenticate`` challenge.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import time

from aiohttp import web

from campaign.sandbox import keys, responses
from campaign.sandbox.settings import SandboxSettings
from campaign.sandbox.state import SandboxState

INVALID_TOKEN = 'Bearer error="invalid_token"'
EXPIRED_TOKEN = 'Bearer error="invalid_token", error_description="token expired"'
BASIC_REALM = 'Basic realm="Realm"'


def basic_credentials(header: str) -> tuple[str, str] | None:
    """``(user, password)`` from an ``Authorization: Basic ...`` header value, if well formed."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def valid_key(settings: SandboxSettings, user: str, password: str) -> bool:
    """Whether ``user:password`` is the sandbox's access key (constant-time)."""
    ok_user = hmac.compare_digest(user.encode(), settings.key_id.encode())
    ok_secret = hmac.compare_digest(password.encode(), settings.key_secret.encode())
    return ok_user and ok_secret


def authenticate(
    request: web.Request, state: SandboxState, *, allow_basic: bool
) -> web.Response | None:
    """``None`` when the request may proceed, else the 401 to answer."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        verdict = state.tokens.check(value.strip(), time.monotonic())
        if verdict == "valid":
            return None
        return unauthenticated(EXPIRED_TOKEN if verdict == "expired" else INVALID_TOKEN)
    if scheme == "basic" and allow_basic:
        creds = basic_credentials(header)
        if creds is not None and valid_key(state.settings, *creds):
            return None
        return unauthenticated(BASIC_REALM)
    return unauthenticated("Bearer" if not allow_basic else f"Bearer, {BASIC_REALM}")


def unauthenticated(challenge: str) -> web.Response:
    """401 UNAUTHENTICATED in the Conversation API's shape."""
    return responses.api_error(
        401,
        "Request had invalid credentials.",
        headers={"WWW-Authenticate": challenge},
    )


async def token(request: web.Request) -> web.Response:
    """``POST /oauth2/token``: the client-credentials grant."""
    state = keys.state(request.app)
    settings = state.settings
    if settings.faults_on_token:
        if settings.latency_ms or settings.jitter_ms:
            jitter = state.fault_rng.uniform(0.0, settings.jitter_ms)
            await asyncio.sleep((settings.latency_ms + jitter) / 1000)
        roll = state.fault_rng.random()
        if roll < settings.error_rate_500 + settings.error_rate_503:
            state.stats.errors_injected += 1
            status = 500 if roll < settings.error_rate_500 else 503
            return responses.api_error(status, "The service is temporarily unavailable")
    form = await request.post()
    creds = basic_credentials(request.headers.get("Authorization", ""))
    if creds is None and isinstance(form.get("client_id"), str):
        creds = (str(form["client_id"]), str(form.get("client_secret", "")))
    if creds is None or not valid_key(settings, *creds):
        state.stats.auth_failures += 1
        detail = "The key id and secret do not match an access key of this project."
        body = {
            "error": "invalid_client",
            "error_description": detail,
            "type": "https://developers.sinch.com/docs/errors/registry/invalid-credentials",
            "title": "Invalid credentials",
            "detail": detail,
        }
        return responses.json_response(body, status=401, headers={"WWW-Authenticate": BASIC_REALM})
    if form.get("grant_type") != "client_credentials":
        return responses.json_response(
            {
                "error": "unsupported_grant_type",
                "error_description": "Only grant_type=client_credentials is supported.",
            },
            status=400,
        )
    access_token = state.tokens.issue(settings.token_lifetime, time.monotonic())
    state.stats.tokens_issued += 1
    return responses.json_response(
        {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": settings.token_lifetime,
            "scope": "",
        },
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )
