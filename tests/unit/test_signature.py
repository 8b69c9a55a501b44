"""campaign.sinch.signature against two webhook HMAC vectors.

Sinch's rule (Sinch API reference, "HMAC signing"):
``base64(HMAC-SHA256(key = secret, msg = raw_body + "." + nonce + "." + timestamp))``, UTF-8,
standard base64 with padding.

- ``DOTNET_VECTOR``: the published values from the Sinch .NET SDK's webhook test
  (sinch/sinch-sdk-dotnet ``tests/Sinch.Tests/Conversation/WebhooksTests.cs``, commit
  ``f408a0f2``). They are kept here as a constant. The algorithm header is not in that test;
  its value comes from Sinch's callback documentation.
- ``CAMPAIGN_VECTOR``: our own vector, in ``tests/fixtures/webhook-signature/``. Its expected
  signature is computed again below with ``hmac``/``hashlib``/``base64`` alone.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest

from campaign.sinch import signature
from tests.conftest import FIXTURES

DOTNET_VECTOR: dict[str, Any] = {
    "secret": "foo_secret1234",
    "raw_body": (
        '{"app_id":"","accepted_time":"2021-10-18T17:49:13.813615Z",'
        '"project_id":"e2df3a34-a71b-4448-9db5-a8d2baad28e4",'
        '"contact_create_notification":{"contact":{"id":"01FJA8B466Y0R2GNXD78MD9SM1",'
        '"channel_identities":[{"channel":"SMS","identity":"48123456789","app_id":""}],'
        '"display_name":"New Test Contact","email":"new.contact@email.com","external_id":"",'
        '"metadata":"","language":"EN_US"}},"message_metadata":""}'
    ),
    "headers": {
        "x-sinch-webhook-signature-nonce": "01FJA8B4A7BM43YGWSG9GBV067",
        "x-sinch-webhook-signature-timestamp": "1634579353",
        "x-sinch-webhook-signature-algorithm": "HmacSHA256",
        "x-sinch-webhook-signature": "6bpJoRmFoXVjfJIVglMoJzYXxnoxRujzR4k2GOXewOE=",
    },
    "expected_signature": "6bpJoRmFoXVjfJIVglMoJzYXxnoxRujzR4k2GOXewOE=",
}
CAMPAIGN_VECTOR: dict[str, Any] = json.loads(
    (FIXTURES / "webhook-signature" / "vector-campaign.json").read_text(encoding="utf-8")
)
VECTORS = pytest.mark.parametrize(
    "vector", [DOTNET_VECTOR, CAMPAIGN_VECTOR], ids=["dotnet-sdk", "campaign"]
)


def _independent_signature(secret: str, raw_body: str, nonce: str, timestamp: str) -> str:
    """Sinch's rule written out with the standard library alone, not with campaign code."""
    signed = (raw_body + "." + nonce + "." + timestamp).encode("utf-8")
    digest = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


@VECTORS
def test_the_expected_signature_is_sinchs_rule_recomputed(vector: dict[str, Any]) -> None:
    headers = vector["headers"]
    recomputed = _independent_signature(
        vector["secret"],
        vector["raw_body"],
        headers["x-sinch-webhook-signature-nonce"],
        headers["x-sinch-webhook-signature-timestamp"],
    )
    assert recomputed == vector["expected_signature"] == headers["x-sinch-webhook-signature"]
    assert recomputed.endswith("=")  # standard base64, padded


def test_our_vector_signs_non_ascii_utf8() -> None:
    body = CAMPAIGN_VECTOR["raw_body"]
    assert not body.isascii()
    assert json.loads(body)["message_delivery_report"]["status"] == "DELIVERED"
    assert CAMPAIGN_VECTOR["secret"] != DOTNET_VECTOR["secret"]


@VECTORS
def test_golden_vector_computes_sinch_signature(vector: dict[str, Any]) -> None:
    headers = vector["headers"]
    got = signature.compute(
        vector["secret"],
        vector["raw_body"].encode(),
        headers[signature.NONCE],
        headers[signature.TIMESTAMP],
    )
    assert got == vector["expected_signature"]


def test_golden_vector_verifies() -> None:
    verified = signature.verify(
        DOTNET_VECTOR["secret"], DOTNET_VECTOR["raw_body"].encode(), DOTNET_VECTOR["headers"]
    )
    assert verified.nonce == "01FJA8B4A7BM43YGWSG9GBV067"
    assert verified.timestamp == 1634579353


def test_our_vector_verifies() -> None:
    verified = signature.verify(
        CAMPAIGN_VECTOR["secret"], CAMPAIGN_VECTOR["raw_body"].encode(), CAMPAIGN_VECTOR["headers"]
    )
    assert verified.nonce == CAMPAIGN_VECTOR["headers"]["x-sinch-webhook-signature-nonce"]
    assert verified.timestamp == int(
        CAMPAIGN_VECTOR["headers"]["x-sinch-webhook-signature-timestamp"]
    )


def test_sign_then_verify_roundtrip() -> None:
    headers = signature.sign("s3cret", b'{"a":1}', timestamp=1700000000, nonce="N1")
    assert headers[signature.ALGORITHM] == "HmacSHA256"
    assert headers[signature.SIGNATURE].endswith("=")  # standard base64, padded
    assert signature.verify("s3cret", b'{"a":1}', headers).nonce == "N1"


@VECTORS
@pytest.mark.parametrize(
    ("mutate", "why"),
    [
        (lambda h, b: (h, b + b" "), "does not match"),
        (lambda h, b: ({**h, signature.NONCE: "other"}, b), "does not match"),
        (
            lambda h, b: ({**h, signature.TIMESTAMP: str(int(h[signature.TIMESTAMP]) + 1)}, b),
            "does not match",
        ),
        (lambda h, b: ({k: v for k, v in h.items() if k != signature.SIGNATURE}, b), "missing"),
        (lambda h, b: ({**h, signature.TIMESTAMP: "soon"}, b), "malformed"),
        (lambda h, b: ({**h, signature.ALGORITHM: "HmacSHA1"}, b), "algorithm"),
    ],
)
def test_tampering_is_refused(mutate, why: str, vector: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    headers, body = mutate(dict(vector["headers"]), vector["raw_body"].encode())
    with pytest.raises(signature.SignatureError, match=why):
        signature.verify(vector["secret"], body, headers)


@VECTORS
def test_wrong_secret_is_refused(vector: dict[str, Any]) -> None:
    with pytest.raises(signature.SignatureError):
        signature.verify("not-the-secret", vector["raw_body"].encode(), vector["headers"])
