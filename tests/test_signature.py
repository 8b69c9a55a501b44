from __future__ import annotations

import json

import pytest

from campaign.sinch import signature
from tests.conftest import FIXTURES

VECTOR = json.loads((FIXTURES / "webhook-signature" / "vector-dotnet-sdk.json").read_text())


def test_golden_vector_computes_sinch_signature() -> None:
    headers = VECTOR["headers"]
    got = signature.compute(
        VECTOR["secret"],
        VECTOR["raw_body"].encode(),
        headers[signature.NONCE],
        headers[signature.TIMESTAMP],
    )
    assert got == VECTOR["expected_signature"]


def test_golden_vector_verifies() -> None:
    verified = signature.verify(VECTOR["secret"], VECTOR["raw_body"].encode(), VECTOR["headers"])
    assert verified.nonce == "01FJA8B4A7BM43YGWSG9GBV067"
    assert verified.timestamp == 1634579353


def test_sign_then_verify_roundtrip() -> None:
    headers = signature.sign("s3cret", b'{"a":1}', timestamp=1700000000, nonce="N1")
    assert headers[signature.ALGORITHM] == "HmacSHA256"
    assert headers[signature.SIGNATURE].endswith("=")  # standard base64, padded
    assert signature.verify("s3cret", b'{"a":1}', headers).nonce == "N1"


@pytest.mark.parametrize(
    ("mutate", "why"),
    [
        (lambda h, b: (h, b + b" "), "does not match"),
        (lambda h, b: ({**h, signature.NONCE: "other"}, b), "does not match"),
        (lambda h, b: ({**h, signature.TIMESTAMP: "1634579354"}, b), "does not match"),
        (lambda h, b: ({k: v for k, v in h.items() if k != signature.SIGNATURE}, b), "missing"),
        (lambda h, b: ({**h, signature.TIMESTAMP: "soon"}, b), "malformed"),
        (lambda h, b: ({**h, signature.ALGORITHM: "HmacSHA1"}, b), "algorithm"),
    ],
)
def test_tampering_is_refused(mutate, why: str) -> None:  # type: ignore[no-untyped-def]
    headers, body = mutate(dict(VECTOR["headers"]), VECTOR["raw_body"].encode())
    with pytest.raises(signature.SignatureError, match=why):
        signature.verify(VECTOR["secret"], body, headers)


def test_wrong_secret_is_refused() -> None:
    with pytest.raises(signature.SignatureError):
        signature.verify("not-the-secret", VECTOR["raw_body"].encode(), VECTOR["headers"])
