"""Running the sandbox: in-loop server, background thread for sync callers, serve_forever."""

from __future__ import annotations

import asyncio
import gc
import json
import urllib.error
import urllib.request
import weakref

import pytest
import requests

from campaign.sandbox import SandboxServer, SandboxSettings, ThreadedSandbox, serve_forever

from .helpers import APP, KEY_ID, KEY_SECRET, PROJECT, basic, text_send


async def test_server_url_uses_the_real_port() -> None:
    async with SandboxServer() as server:
        assert server.port > 0
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert server.state.settings == SandboxSettings()
    with pytest.raises(RuntimeError):
        SandboxServer().state  # noqa: B018


def _send_one(sandbox: ThreadedSandbox) -> requests.Response:
    """A token, then one text message, from synchronous code."""
    token = requests.post(
        sandbox.url + "/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(KEY_ID, KEY_SECRET),
        timeout=5,
    ).json()["access_token"]
    return requests.post(
        f"{sandbox.url}/v1/projects/{PROJECT}/messages:send",
        json=text_send(),
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )


def test_threaded_sandbox_from_sync_code() -> None:
    with ThreadedSandbox(SandboxSettings(rate_limit=0)) as sandbox:
        response = _send_one(sandbox)
        assert response.status_code == 200 and len(response.json()["message_id"]) == 26
        request = urllib.request.Request(
            f"{sandbox.url}/v1beta/projects/{PROJECT}/apps", headers={"Authorization": basic()}
        )
        with urllib.request.urlopen(request, timeout=5) as answer:
            assert json.loads(answer.read())["apps"][0]["id"] == APP
        assert sandbox.state.stats.accepted_messages == 1
        url = sandbox.url
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + "/_sandbox/stats", timeout=2)


def test_a_closed_sandbox_lets_go_of_what_it_recorded() -> None:
    """aiohttp keeps every app it built middlewares for (up to 1,024); a closed sandbox's app,
    kept that way, must not keep its messages: a test suite that starts sandbox after sandbox
    held 3.6 million objects (1.3 GB) by the end of one module."""
    sandbox = ThreadedSandbox(SandboxSettings(rate_limit=0))
    with sandbox:
        answer = _send_one(sandbox)
        assert answer.status_code == 200, answer.text
        state = weakref.ref(sandbox.state)
    assert len(sandbox.state.messages) == 1  # still readable once closed
    del sandbox
    gc.collect()
    assert state() is None


def test_threaded_sandbox_reports_startup_errors() -> None:
    with ThreadedSandbox() as first:
        port = int(first.url.rsplit(":", 1)[1])
        with pytest.raises(OSError, match="in use"), ThreadedSandbox(port=port):
            pass


def test_official_sdk_against_the_sandbox() -> None:
    sinch = pytest.importorskip("sinch")
    with ThreadedSandbox() as sandbox:
        client = sinch.SinchClient(
            project_id=PROJECT, key_id=KEY_ID, key_secret=KEY_SECRET, conversation_region="us"
        )
        client.configuration.auth_origin = sandbox.url
        client.configuration.conversation_domain = sandbox.url
        response = client.conversation.messages.send_text_message(
            app_id=APP,
            text="Hi from the SDK",
            recipient_identities=[{"channel": "SMS", "identity": "+15551234567"}],
            message_metadata="m1",
            correlation_id="c1",
            ttl=60,
        )
        assert len(response.message_id) == 26
        # An expired token is refreshed by the SDK (it keys on "expired" in WWW-Authenticate).
        requests.post(sandbox.url + "/_sandbox/expire-tokens", timeout=5)
        client.conversation.messages.send_text_message(
            app_id=APP,
            text="again",
            recipient_identities=[{"channel": "SMS", "identity": "+15551234567"}],
        )
        stats = sandbox.state.stats
        assert stats.accepted_messages == 2 and stats.tokens_issued == 2
        recorded = sandbox.state.messages[0]
        assert recorded.message == {"text_message": {"text": "Hi from the SDK"}}
        assert recorded.options["ttl"] == "60s"


async def test_serve_forever_prints_credentials_and_stops_on_cancel() -> None:
    lines: list[str] = []
    printed = asyncio.Event()

    def collect(line: str) -> None:
        lines.append(line)
        printed.set()

    task = asyncio.create_task(serve_forever(SandboxSettings(), "127.0.0.1", 0, collect))
    await asyncio.wait_for(printed.wait(), 5)
    text = "\n".join(lines)
    for expected in (PROJECT, APP, KEY_ID, KEY_SECRET, "sandbox-webhook-secret", "/oauth2/token"):
        assert expected in text
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
