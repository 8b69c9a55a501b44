"""How many connections the receiver holds at once.

aiohttp accepts every connection it is offered and leaves bounding them to the application.
So the listening socket gets this protocol factory in front of aiohttp's own (the runner's
``web.Server``): a connection is counted when it is made and uncounted when it is lost; while
``limit`` are open, a new one is answered ``503`` (``Retry-After: 1``) and closed at once,
unread and without an aiohttp handler (Sinch retries a failed callback). An admitted
connection is handed to aiohttp's protocol, and every call of asyncio's protocol interface is
passed on to it unchanged.

How long each connection may stay is aiohttp's ``keepalive_timeout`` (idle, headers included)
and the handler's body timeout, both set by :mod:`campaign.receiver.server` and the app.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import cast

from campaign.receiver.settings import ReceiverStats

log = logging.getLogger(__name__)

REFUSED_LOG_S = 60.0  # refused connections are logged at most this often (the count is exact)
_BUSY_BODY = b'{"error":"too_many_connections"}'
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Retry-After: 1\r\n"
    b"Content-Type: application/json\r\n"
    b"Content-Length: %d\r\n"
    b"Connection: close\r\n"
    b"\r\n"
) % len(_BUSY_BODY) + _BUSY_BODY

ProtocolFactory = Callable[[], asyncio.Protocol]


class ConnectionLimit:
    """Admits at most ``limit`` connections at once; counts them in ``stats``."""

    def __init__(self, limit: int, stats: ReceiverStats) -> None:
        self._limit = limit
        self._stats = stats
        self._unlogged = 0  # refused since the last log line
        self._log_at = 0.0  # time.monotonic() from which the next may be logged

    def factory(self, inner: ProtocolFactory) -> ProtocolFactory:
        """A protocol factory for ``loop.create_server`` that puts ``inner`` behind the limit."""
        return lambda: _Gate(self, inner)

    def _admit(self) -> bool:
        stats = self._stats
        if stats.connections < self._limit:
            stats.connections += 1
            return True
        stats.connections_refused += 1
        self._unlogged += 1
        moment = time.monotonic()
        if moment >= self._log_at:
            log.warning(
                "%d connections open, the most allowed: refused %d new ones (503)",
                self._limit,
                self._unlogged,
                extra={"action": "receiver.connections_full"},
            )
            self._unlogged = 0
            self._log_at = moment + REFUSED_LOG_S
        return False

    def _release(self) -> None:
        self._stats.connections -= 1


class _Gate(asyncio.Protocol):
    """One accepted connection: refused at once, or counted and passed to aiohttp's protocol."""

    __slots__ = ("_admitted", "_inner", "_limit", "_make")

    def __init__(self, limit: ConnectionLimit, make: ProtocolFactory) -> None:
        self._limit = limit
        self._make = make
        self._admitted = False
        self._inner: asyncio.Protocol | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self._limit._admit():
            stream = cast(asyncio.Transport, transport)
            stream.write(_BUSY)
            stream.close()
            return
        self._admitted = True
        self._inner = self._make()
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._admitted:
            self._admitted = False
            self._limit._release()
        inner, self._inner = self._inner, None
        if inner is not None:
            inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()
