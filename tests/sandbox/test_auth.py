"""The token endpoint and the credentials checks on API calls."""

from __future__ import annotations

import aiohttp

from campaign.sandbox import SandboxServer

from .helpers import APP, KEY_ID, PROJECT, Api, basic, text_send

TOKEN_PATH = "/oauth2/token"
UNAUTHENTICATED = {
    "error": {
        "code": 401,
        "message": "Request had invalid credentials.",
        "status": "UNAUTHENTICATED",
        "details": [],
    }
}


async def _token(
    session: aiohttp.ClientSession, url: str, data: object, authorization: str | None
) -> tuple[int, dict[str, object], aiohttp.typedefs.LooseHeaders]:
    headers = {"Authorization": authorization} if authorization else {}
    async with session.post(url + TOKEN_PATH, data=data, headers=headers) as response:
        return response.status, await response.json(), response.headers


async def test_token_success_has_exactly_the_four_keys(
    sandbox: tuple[SandboxServer, Api], session: aiohttp.ClientSession
) -> None:
    server, _ = sandbox
    status, body, headers = await _token(
        session, server.url, {"grant_type": "client_credentials"}, basic()
    )
    assert status == 200
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == ""
    assert isinstance(body["access_token"], str) and len(body["access_token"]) >= 32
    assert headers["Content-Type"].startswith("application/json")


async def test_tokens_are_random(
    sandbox: tuple[SandboxServer, Api], session: aiohttp.ClientSession
) -> None:
    server, _ = sandbox
    tokens = set()
    for _ in range(3):
        _, body, _ = await _token(
            session, server.url, {"grant_type": "client_credentials"}, basic()
        )
        tokens.add(body["access_token"])
    assert len(tokens) == 3
    assert server.state.stats.tokens_issued == 4  # one more from the fixture


async def test_bad_credentials_401_with_both_error_shapes(
    sandbox: tuple[SandboxServer, Api], session: aiohttp.ClientSession
) -> None:
    server, _ = sandbox
    for authorization in (basic(KEY_ID, "wrong"), basic("nobody", "x"), None, "Basic !!!"):
        status, body, headers = await _token(
            session, server.url, {"grant_type": "client_credentials"}, authorization
        )
        assert status == 401
        assert body["error"] == "invalid_client"
        assert body["error_description"]
        assert body["title"] == "Invalid credentials"
        assert body["detail"]
        assert headers["WWW-Authenticate"] == 'Basic realm="Realm"'


async def test_wrong_grant_type_is_400(
    sandbox: tuple[SandboxServer, Api], session: aiohttp.ClientSession
) -> None:
    server, _ = sandbox
    for data in ({"grant_type": "password"}, {}, {"grant_type": ""}):
        status, body, _ = await _token(session, server.url, data, basic())
        assert status == 400
        assert body["error"] == "unsupported_grant_type"


async def test_client_credentials_in_the_form_are_accepted(
    sandbox: tuple[SandboxServer, Api], session: aiohttp.ClientSession
) -> None:
    server, _ = sandbox
    data = {
        "grant_type": "client_credentials",
        "client_id": KEY_ID,
        "client_secret": server.settings.key_secret,
    }
    status, body, _ = await _token(session, server.url, data, None)
    assert status == 200 and body["access_token"]


async def test_token_lifetime_is_configurable(
    sandbox: tuple[SandboxServer, Api], session: aiohttp.ClientSession
) -> None:
    server, api = sandbox
    await api.patch(token_lifetime=120)
    _, body, _ = await _token(session, server.url, {"grant_type": "client_credentials"}, basic())
    assert body["expires_in"] == 120


async def test_unknown_bearer_token(api: Api) -> None:
    status, body, headers = await api.send(
        text_send(), headers={"Authorization": "Bearer not-a-token"}
    )
    assert status == 401
    assert body == UNAUTHENTICATED
    assert headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert "expired" not in headers["WWW-Authenticate"]


async def test_expired_bearer_token(api: Api) -> None:
    status, _, _ = await api.send(text_send())
    assert status == 200
    expired = await api.call("POST", "/_sandbox/expire-tokens", headers={})
    assert expired[1] == {"expired": 1}
    status, body, headers = await api.send(text_send())
    assert status == 401
    assert body == UNAUTHENTICATED
    assert headers["WWW-Authenticate"] == (
        'Bearer error="invalid_token", error_description="token expired"'
    )
    # A fresh token works again.
    await api.fetch_token()
    assert (await api.send(text_send()))[0] == 200


async def test_missing_auth_is_401(api: Api) -> None:
    status, body, _ = await api.send(text_send(), headers={"X-Nothing": "1"})
    assert status == 401 and body == UNAUTHENTICATED
    status, body, _ = await api.batch({}, headers={"X-Nothing": "1"})
    assert status == 401 and body == UNAUTHENTICATED


async def test_basic_accepted_on_conversation_not_on_batch(api: Api) -> None:
    status, body, _ = await api.send(text_send(), headers={"Authorization": basic()})
    assert status == 200, body
    status, body, _ = await api.send(text_send(), headers={"Authorization": basic(KEY_ID, "wrong")})
    assert status == 401 and body == UNAUTHENTICATED
    batch = {
        "app_id": APP,
        "message": {"text_message": {"text": "hi"}},
        "recipient_and_params": [{"recipient": {"contact_id": "c1"}}],
    }
    status, body, _ = await api.batch(batch, headers={"Authorization": basic()})
    assert status == 401 and body == UNAUTHENTICATED
    status, _, _ = await api.batch(batch)
    assert status == 200


async def test_apps_listing_v1_and_v1beta(api: Api) -> None:
    for prefix in ("v1", "v1beta"):
        for headers in (api.auth(), {"Authorization": basic()}):
            status, body, _ = await api.call(
                "GET", f"/{prefix}/projects/{PROJECT}/apps", headers=headers
            )
            assert status == 200
            assert [app["id"] for app in body["apps"]] == [APP]
            assert body["apps"][0]["display_name"]


async def test_unknown_project_is_404(api: Api) -> None:
    status, body, _ = await api.call("POST", "/v1/projects/nope/messages:send", json=text_send())
    assert status == 404
    assert body["error"]["status"] == "NOT_FOUND" and body["error"]["code"] == 404
    status, body, _ = await api.call("GET", "/v1/projects/nope/messages/x")
    assert status == 404


async def test_unknown_path_answers_json_404(api: Api) -> None:
    status, body, _ = await api.call("GET", "/v1/nothing/here")
    assert status == 404 and body["error"]["status"] == "NOT_FOUND"
