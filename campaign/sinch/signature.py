"""Sinch Conversation API webhook signatures.

``signature = base64(HMAC-SHA256(secret, raw_body + "." + nonce + "." + timestamp))``, standard
base64 with padding, sent in ``x-sinch-webhook-signature`` with the nonce, the timestamp (Unix
seconds) and the algorithm (``HmacSHA256``) in sibling headers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets as _secrets
from collections.abc import Mapping
from dataclasses import dataclass

SIGNATURE = "x-sinch-webhook-signature"
NONCE = "x-sinch-webhook-signature-nonce"
TIMESTAMP = "x-sinch-webhook-signature-timestamp"
ALGORITHM = "x-sinch-webhook-signature-algorithm"
ALGORITHM_VALUE = "HmacSHA256"
# Unix seconds: ASCII digits only (``int`` would also take "١٢٣", "+5", " 5_0 "), and few of
# them (a 5,000-digit number cannot be compared with the clock: OverflowError).
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


def compute(secret: str, body: bytes, nonce: str, timestamp: str) -> str:
    """The base64 HMAC-SHA256 signature of ``body`` for ``nonce`` and ``timestamp``."""
    signed = body + b"." + nonce.encode() + b"." + timestamp.encode()
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def sign(secret: str, body: bytes, *, timestamp: int, nonce: str | None = None) -> dict[str, str]:
    """The four headers that Sinch sends with a signed callback."""
    nonce = nonce or _secrets.token_hex(13).upper()
    ts = str(int(timestamp))
    return {
        NONCE: nonce,
        TIMESTAMP: ts,
        ALGORITHM: ALGORITHM_VALUE,
        SIGNATURE: compute(secret, body, nonce, ts),
    }


@dataclass(frozen=True)
class Verified:
    """A callback whose signature matched: its nonce and timestamp, for replay checks."""

    nonce: str
    timestamp: int


class SignatureError(ValueError):
    """The callback is unsigned or its signature does not match. ``str`` says which."""


def verify(secret: str, body: bytes, headers: Mapping[str, str]) -> Verified:
    """Check the signature headers of a callback; raise :class:`SignatureError` if wrong.

    ``headers`` must be case-insensitive (aiohttp's ``CIMultiDictProxy``) or lower-cased.
    The comparison is constant-time. Timestamp windows and nonce reuse are the caller's to
    check, with the returned :class:`Verified`.
    """
    signature = headers.get(SIGNATURE)
    nonce = headers.get(NONCE)
    timestamp = headers.get(TIMESTAMP)
    if not signature or not nonce or not timestamp:
        raise SignatureError("missing signature headers")
    algorithm = headers.get(ALGORITHM)
    if algorithm is not None and algorithm.lower() != ALGORITHM_VALUE.lower():
        raise SignatureError("unsupported signature algorithm")
    if not _TIMESTAMP.fullmatch(timestamp):
        raise SignatureError("malformed signature timestamp")
    # Header bytes that are not UTF-8 reach us as lone surrogates (aiohttp decodes with
    # surrogateescape): they cannot be encoded, so they are refused here, not left to raise.
    if not signature.isascii():
        raise SignatureError("malformed signature")
    if not _encodable(nonce):
        raise SignatureError("malformed signature nonce")
    ts = int(timestamp)
    expected = compute(secret, body, nonce, timestamp)
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        raise SignatureError("signature does not match")
    return Verified(nonce=nonce, timestamp=ts)


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True
