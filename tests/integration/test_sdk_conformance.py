"""Conformance: the official ``sinch`` SDK, unmodified, cannot tell the sandbox from Sinch.

The SDK is synchronous (``requests``), so the sandbox runs in a background thread; callbacks go
to a plain ``http.server`` receiver in another thread.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from campaign import config
from campaign.sandbox import SandboxSettings, ThreadedSandbox
from tests.conftest import FIXTURES

sinch = pytest.importorskip("sinch", reason="the official SDK is a test dependency")
from sinch.domains.conversation.api.v1.exceptions import ConversationException  # noqa: E402

REQUESTS = FIXTURES / "conversation-v1" / "messages" / "request"
SMS = [{"channel": "SMS", "identity": "+15551234567"}]


class Receiver:
    """Collects POSTed callbacks: (headers, raw body)."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/callbacks"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def wait_for(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.received) >= count, f"got {len(self.received)} callbacks, wanted {count}"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rx = Receiver()
    rx.thread.start()
    try:
        yield rx
    finally:
        rx.server.shutdown()
        rx.server.server_close()


@pytest.fixture
def sandbox(receiver: Receiver) -> Iterator[ThreadedSandbox]:
    settings = SandboxSettings(
        callback_url=receiver.url,
        queued_delay_s=0.01,
        queued_jitter_s=0.0,
        delivered_delay_s=0.01,
        delivered_jitter_s=0.0,
        read_delay_s=0.01,
        read_jitter_s=0.0,
        seed=1,
    )
    with ThreadedSandbox(settings) as running:
        yield running


@pytest.fixture
def sdk(sandbox: ThreadedSandbox) -> Any:
    client = sinch.SinchClient(
        project_id=config.SANDBOX_PROJECT_ID,
        key_id=config.SANDBOX_KEY_ID,
        key_secret=config.SANDBOX_KEY_SECRET,
        conversation_region="us",
    )
    client.configuration.auth_origin = sandbox.url
    client.configuration.conversation_domain = sandbox.url
    return client


def stats(sandbox: ThreadedSandbox) -> dict[str, Any]:
    result: dict[str, Any] = requests.get(f"{sandbox.url}/_sandbox/stats", timeout=5).json()
    return result


def test_sdk_fetches_a_token_and_sends(sdk: Any, sandbox: ThreadedSandbox) -> None:
    response = sdk.conversation.messages.send_text_message(
        app_id=config.SANDBOX_APP_ID,
        text="Hi from the SDK",
        recipient_identities=SMS,
        channel_properties={"SMS_SENDER": "+15550000000"},
        message_metadata="m1",
        correlation_id="c1",
        ttl=60,
    )
    assert len(response.message_id) == 26
    assert response.accepted_time is not None
    assert stats(sandbox)["tokens_issued"] == 1
    recorded = requests.get(f"{sandbox.url}/_sandbox/messages", timeout=5).json()["messages"][0]
    assert recorded["message"] == {"text_message": {"text": "Hi from the SDK"}}
    assert recorded["correlation_id"] == "c1"
    assert recorded["message_metadata"] == "m1"


@pytest.mark.parametrize(
    "path", sorted(REQUESTS.glob("Send*MessageRequestDto.json")), ids=lambda p: p.stem
)
def test_sdk_sends_each_message_type(sdk: Any, sandbox: ThreadedSandbox, path: Path) -> None:
    message = json.loads(path.read_text())["message"]
    response = sdk.conversation.messages.send(
        app_id=config.SANDBOX_APP_ID, message=message, recipient_identities=SMS
    )
    assert len(response.message_id) == 26
    recorded = requests.get(f"{sandbox.url}/_sandbox/messages", timeout=5).json()["messages"]
    assert recorded[-1]["message_id"] == response.message_id
    content = next(k for k in message if k.endswith("_message") and k in recorded[-1]["message"])
    assert recorded[-1]["message"][content] == message[content]


def test_nine_message_types_are_covered() -> None:
    assert len(list(REQUESTS.glob("Send*MessageRequestDto.json"))) == 9


def test_sdk_raises_a_proper_exception_for_an_invalid_request(sdk: Any) -> None:
    with pytest.raises(ConversationException) as caught:
        sdk.conversation.messages.send(
            app_id=config.SANDBOX_APP_ID,
            message={"text_message": {"text": "x"}},
            recipient_identities=[{"channel": "SMS", "identity": "not-a-number"}],
        )
    assert caught.value.response_status_code == 400
    assert "INVALID_ARGUMENT" in str(caught.value)


def test_sdk_raises_for_an_unknown_app(sdk: Any) -> None:
    with pytest.raises(ConversationException) as caught:
        sdk.conversation.messages.send_text_message(
            app_id="no-such-app", text="x", recipient_identities=SMS
        )
    assert caught.value.response_status_code == 404


def test_sdk_recovers_from_an_expired_token(sdk: Any, sandbox: ThreadedSandbox) -> None:
    sdk.conversation.messages.send_text_message(
        app_id=config.SANDBOX_APP_ID, text="one", recipient_identities=SMS
    )
    requests.post(f"{sandbox.url}/_sandbox/expire-tokens", timeout=5)
    sdk.conversation.messages.send_text_message(
        app_id=config.SANDBOX_APP_ID, text="two", recipient_identities=SMS
    )
    assert stats(sandbox)["tokens_issued"] == 2
    assert stats(sandbox)["accepted_messages"] == 2


def test_sdk_refuses_bad_credentials(sandbox: ThreadedSandbox) -> None:
    from sinch.domains.authentication.exceptions import AuthenticationException

    client = sinch.SinchClient(
        project_id=config.SANDBOX_PROJECT_ID,
        key_id=config.SANDBOX_KEY_ID,
        key_secret="wrong",
        conversation_region="us",
    )
    client.configuration.auth_origin = sandbox.url
    client.configuration.conversation_domain = sandbox.url
    with pytest.raises(AuthenticationException):
        client.conversation.messages.send_text_message(
            app_id=config.SANDBOX_APP_ID, text="x", recipient_identities=SMS
        )


def test_sdk_validates_and_parses_the_sandbox_callbacks(
    sdk: Any, sandbox: ThreadedSandbox, receiver: Receiver
) -> None:
    sent = sdk.conversation.messages.send_text_message(
        app_id=config.SANDBOX_APP_ID,
        text="track me",
        recipient_identities=[{"channel": "WHATSAPP", "identity": "+15551234567"}],
        correlation_id="corr-1",
        message_metadata="meta-1",
    )
    # MESSAGE_SUBMIT, then QUEUED_ON_CHANNEL, DELIVERED and READ (WhatsApp has READ).
    receiver.wait_for(4)
    events = sdk.conversation.sinch_events(config.SANDBOX_WEBHOOK_SECRET)
    statuses = []
    for headers, body in receiver.received:
        assert events.validate_authentication_header(headers, body) is True
        assert events.validate_authentication_header(headers, body + b" ") is False
        event = events.parse_event(body, headers)
        assert event.correlation_id == "corr-1"
        report = getattr(event, "message_delivery_report", None)
        if report is not None:
            assert report.message_id == sent.message_id
            assert report.metadata == "meta-1"
            statuses.append(report.status)
    assert statuses == ["QUEUED_ON_CHANNEL", "DELIVERED", "READ"]
    wrong = sinch.SinchClient(project_id="p", key_id="k", key_secret="s")
    headers, body = receiver.received[0]
    assert (
        wrong.conversation.sinch_events("not-the-secret").validate_authentication_header(
            headers, body
        )
        is False
    )
