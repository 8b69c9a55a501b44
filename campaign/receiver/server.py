"""Running the receiver: inside the caller's loop (``campaign run``) or as a service.

- :class:`ReceiverServer`: ``async with ReceiverServer(store, settings) as receiver:``;
  ``receiver.url`` is the callback URL (real port, path included), ``receiver.stats`` the
  live counters.
- :func:`serve`: what ``campaign receiver`` runs, until its stop event is set.

The store belongs to the caller: it is opened before the server starts and closed after it
stops.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from types import TracebackType

from aiohttp import web
from aiohttp.http import HttpProcessingError

from campaign import serving
from campaign.receiver import app as receiver_app
from campaign.receiver.connections import ConnectionLimit
from campaign.receiver.settings import ReceiverSettings, ReceiverStats
from campaign.store import engine as store_engine
from campaign.store import repository

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT_S = 10.0  # requests in flight get this long to be answered when stopping


class _MalformedInOneLine(logging.Filter):
    """aiohttp answers a request it cannot parse (a byte that is not allowed in the request
    line or a header name, a broken chunk) with 400, and logs it as an ERROR with a traceback:
    anyone could fill the log that way. Through this filter it is one INFO line, without the
    request's bytes; any other error aiohttp logs is left as it is."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError) or record.levelno < logging.WARNING:
            return True
        if not _HTTP_LOG.isEnabledFor(logging.INFO):
            return False
        reason = (str(exc.message).strip().splitlines() or [""])[0][:200]
        record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
        record.msg, record.args = "malformed request refused (%d): %s", (exc.code, reason)
        record.exc_info, record.exc_text = None, None
        return True


# The logger of the receiver's aiohttp server (``aiohttp.server`` is shared with the sandbox).
_HTTP_LOG = logging.getLogger(__name__ + ".http")
_HTTP_LOG.addFilter(_MalformedInOneLine())


class ReceiverServer:
    """The webhook server, listening on ``host:port`` from the running event loop.

    ``port=0`` picks a free port. Starting without a webhook secret raises
    :class:`~campaign.errors.ConfigError` unless ``settings.allow_unsigned``. Leaving the
    context stops accepting connections, answers the requests in flight, lets the committer
    store what is queued, then stops it: in reverse order of starting.

    The socket listens through a :class:`~campaign.receiver.connections.ConnectionLimit`
    (``settings.max_connections``); aiohttp's ``keepalive_timeout`` is
    ``settings.idle_timeout_s``, which aiohttp counts from the moment a connection opens and
    again from each response, and which closes it only while no whole request has arrived:
    it bounds both the time to send a request's headers and the keep-alive idle time.
    """

    def __init__(
        self,
        store: repository.Store,
        settings: ReceiverSettings,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        shutdown_timeout: float = SHUTDOWN_TIMEOUT_S,
    ) -> None:
        self.store = store
        self.settings = settings
        self.host = host
        self.port = port
        self._shutdown_timeout = shutdown_timeout
        self._serving: serving.Listening | None = None
        self._app: web.Application | None = None

    async def __aenter__(self) -> ReceiverServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Build the app (checking the settings), start the committer and listen."""
        app = receiver_app.make_app(self.store, self.settings)
        # No access log: a refused callback is logged once, by the handler, with its reason.
        runner = web.AppRunner(
            app,
            shutdown_timeout=self._shutdown_timeout,
            keepalive_timeout=self.settings.idle_timeout_s,
            access_log=None,
            logger=_HTTP_LOG,
        )
        limit = ConnectionLimit(self.settings.max_connections, app[receiver_app.STATE].stats)
        listening = await serving.listen(runner, self.host, self.port, wrap=limit.factory)
        self._app, self._serving = app, listening
        self.port = listening.port
        log.info(
            "receiver listening on %s (%s)",
            self.url,
            signing_mode(self.settings),
            extra={"action": "receiver.start"},
        )

    async def close(self) -> None:
        """Stop listening, answer the requests in flight, drain the committer."""
        listening, self._serving = self._serving, None
        if listening is not None:
            await listening.close()
            stats = self.stats
            log.info(
                "receiver stopped: %d received, %d stored, %d refused, %d unmatched",
                stats.received,
                stats.stored,
                sum(stats.rejected.values()),
                stats.unmatched,
                extra={"action": "receiver.stop"},
            )

    @property
    def base_url(self) -> str:
        """``http://host:port`` (no trailing slash)."""
        return serving.base_url(self.host, self.port)

    @property
    def url(self) -> str:
        """The callback URL to give Sinch (or the sandbox): base URL and path."""
        return self.base_url + self.settings.path

    @property
    def stats(self) -> ReceiverStats:
        """The live counters (still readable after the server stopped)."""
        if self._app is None:
            raise RuntimeError("the receiver has not started")
        return self._app[receiver_app.STATE].stats


def signing_mode(settings: ReceiverSettings) -> str:
    """Whether callbacks must be signed, in words (never the secret)."""
    window = f"timestamps within ±{settings.timestamp_window_s:g} s, nonces used once"
    if not settings.allow_unsigned:
        return f"callbacks must be signed (HMAC-SHA256, {window})"
    if settings.secret:
        return f"UNSIGNED callbacks accepted (--unsigned); signed ones are verified ({window})"
    return "UNSIGNED callbacks accepted and nothing verified (--unsigned: local tests only)"


def describe(server: ReceiverServer) -> list[str]:
    """Where ``server`` listens and how it checks callbacks, as printable lines."""
    s = server.settings
    return [
        f"Receiving Sinch callbacks on {server.url}",
        f"  signatures   {signing_mode(s)}",
        f"  health       {server.base_url}{s.path.rstrip('/')}/health",
        f"  body limit   {s.max_body_bytes} bytes, JSON depth {s.max_json_depth}",
        f"  database     {store_engine.safe_url(server.store.url)}",
        f"  connections  at most {s.max_connections}; headers within {s.idle_timeout_s:g} s"
        f" (and idle keep-alive), body within {s.body_timeout_s:g} s",
    ]


async def serve(
    store: repository.Store,
    settings: ReceiverSettings,
    host: str,
    port: int,
    stop: asyncio.Event,
    print_fn: Callable[[str], object] = print,
) -> ReceiverStats:
    """Serve until ``stop`` is set (the CLI sets it on SIGINT/SIGTERM), then stop gracefully.

    Prints where it listens first. Returns the final counters.
    """
    async with ReceiverServer(store, settings, host, port) as server:
        for line in describe(server):
            print_fn(line)
        await stop.wait()
    return server.stats
