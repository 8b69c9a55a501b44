"""Pure checks on a callback before it is stored: JSON nesting depth and nonce reuse.

Neither touches the network, the database or the event loop; both are tested on their own.
"""

from __future__ import annotations

import heapq
import itertools
import re

# A JSON string, escapes included (the unrolled form: no nested repetition to backtrack on).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = [0] * 256
_STEP[ord("[")] = _STEP[ord("{")] = 1
_STEP[ord("]")] = _STEP[ord("}")] = -1


def json_depth(body: bytes) -> int:
    """The deepest nesting of arrays and objects in ``body`` (a JSON text), without parsing it.

    Strings are removed first, so brackets inside them do not count; then the running sum of
    ``+1`` per opening and ``-1`` per closing bracket is taken, in C (no recursion, no Python
    loop per character). On text that is not valid JSON the answer may be too high, never too
    low; such a body is refused by the parser anyway.
    """
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    return max(itertools.accumulate(map(_STEP.__getitem__, brackets)))


def too_deep(body: bytes, limit: int) -> bool:
    """Whether ``body`` nests arrays and objects more than ``limit`` levels deep.

    The common case costs two ``bytes.count`` calls: a body with no more opening brackets
    than ``limit`` cannot be deeper than that.
    """
    if body.count(b"{") + body.count(b"[") <= limit:
        return False
    return json_depth(body) > limit


class NonceWindow:
    """The signature nonces seen recently, each kept until its timestamp leaves the window.

    A replay of a callback within the timestamp window carries a nonce still held here; after
    the window its timestamp alone refuses it. The map is bounded by ``max_size``: when full,
    the entries that expire first are dropped early (the database's unique nonce still keeps a
    replay from being stored twice; this map only lets us refuse it with a 401 first).
    """

    def __init__(self, max_size: int = 1_000_000) -> None:
        self._max_size = max_size
        self._expiry: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._expiry)

    def seen(self, nonce: str, now: float) -> bool:
        """Whether ``nonce`` was added and has not expired at ``now``."""
        self._prune(now)
        return nonce in self._expiry

    def add(self, nonce: str, expires_at: float) -> None:
        """Hold ``nonce`` until ``expires_at`` (Unix seconds)."""
        if len(self._expiry) >= self._max_size:
            self._drop_first()
        self._expiry[nonce] = expires_at
        heapq.heappush(self._heap, (expires_at, nonce))

    def discard(self, nonce: str) -> None:
        """Forget ``nonce`` (its callback was not stored, so sending it again is no replay)."""
        self._expiry.pop(nonce, None)

    def _prune(self, now: float) -> None:
        heap, expiry = self._heap, self._expiry
        while heap and heap[0][0] < now:
            expires_at, nonce = heapq.heappop(heap)
            if expiry.get(nonce) == expires_at:
                del expiry[nonce]
        if len(heap) > 2 * len(expiry) + 1024:
            # Discarded nonces leave their heap entries behind; rebuild now and then.
            self._heap = [(t, n) for n, t in expiry.items()]
            heapq.heapify(self._heap)

    def _drop_first(self) -> None:
        while self._heap:
            expires_at, nonce = heapq.heappop(self._heap)
            if self._expiry.get(nonce) == expires_at:
                del self._expiry[nonce]
                return
