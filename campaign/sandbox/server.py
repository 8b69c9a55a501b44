"""Running the sandbox: inside your loop, in a background thread, or until cancelled.

- :class:`SandboxServer`: ``async with SandboxServer(settings) as sandbox:``, for async code
  and tests; ``sandbox.url`` is the base URL, ``sandbox.state`` the live state.
- :class:`ThreadedSandbox`: ``with ThreadedSandbox(settings) as sandbox:``, for synchronous
  callers (the official ``sinch`` SDK); the server runs on its own loop in a thread.
- :func:`serve_forever`: what ``campaign sandbox`` runs.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from collections.abc import Callable
from types import TracebackType

from aiohttp import web

from campaign import serving
from campaign.sandbox import app as sandbox_app
from campaign.sandbox import keys
from campaign.sandbox.settings import SandboxSettings
from campaign.sandbox.state import SandboxState

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT_S = 2.0
THREAD_START_TIMEOUT_S = 30.0


class SandboxServer:
    """The sandbox app served over TCP from the running event loop.

    ``port=0`` picks a free port; :attr:`url` then carries the real one. Leaving the context
    stops the listener, the callback sender and the batch scheduler, in reverse order.
    """

    def __init__(
        self,
        settings: SandboxSettings | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.settings = settings or SandboxSettings()
        self.host = host
        self.port = port
        self._serving: serving.Listening | None = None
        self._app: web.Application | None = None
        self._state: SandboxState | None = None  # still readable once closed

    async def __aenter__(self) -> SandboxServer:
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
        """Build the app and start listening."""
        app = sandbox_app.make_app(self.settings)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        listening = await serving.listen(runner, self.host, self.port)
        self._app, self._serving = app, listening
        self._state = keys.state(app)
        self.port = listening.port
        log.info("sandbox listening on %s", self.url, extra={"action": "sandbox.start"})

    async def close(self) -> None:
        """Stop listening and shut the app's services down."""
        listening, self._serving = self._serving, None
        if listening is not None:
            await listening.close()
            log.info("sandbox stopped", extra={"action": "sandbox.stop"})
        if self._app is not None:
            self._app[keys.STATE].state = None

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:54321`` (no trailing slash)."""
        return serving.base_url(self.host, self.port)

    @property
    def state(self) -> SandboxState:
        """The live state of the running sandbox (messages, batches, stats, settings)."""
        if self._state is None:
            raise RuntimeError("the sandbox is not running")
        return self._state


class ThreadedSandbox:
    """A :class:`SandboxServer` on its own event loop in a daemon thread.

    For synchronous code: ``with ThreadedSandbox() as sandbox: requests.post(sandbox.url...)``.
    Reading :attr:`state` from the caller's thread is fine for inspection between calls.
    """

    def __init__(
        self,
        settings: SandboxSettings | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._server = SandboxServer(settings, host=host, port=port)
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    def __enter__(self) -> ThreadedSandbox:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start the thread and wait until the server listens (or failed to)."""
        self._thread = threading.Thread(target=self._main, name="campaign-sandbox", daemon=True)
        self._thread.start()
        if not self._ready.wait(THREAD_START_TIMEOUT_S):
            raise RuntimeError("the sandbox thread did not start in time")
        if self._error is not None:
            self._thread.join()
            raise self._error

    def stop(self) -> None:
        """Stop the server and join the thread."""
        loop, stop, thread = self._loop, self._stop, self._thread
        if loop is not None and stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
        if thread is not None:
            thread.join()
        self._thread = None

    @property
    def url(self) -> str:
        """The base URL of the running server."""
        return self._server.url

    @property
    def state(self) -> SandboxState:
        """The live state (owned by the sandbox thread; read it, do not mutate it)."""
        return self._server.state

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to the starting thread, not lost
            self._error = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with self._server:
            self._ready.set()
            await self._stop.wait()


async def serve_forever(
    settings: SandboxSettings,
    host: str = "127.0.0.1",
    port: int = 8765,
    print_fn: Callable[[str], object] = print,
) -> None:
    """Serve until cancelled, first printing where and with which test credentials. The
    process is the sandbox's alone: its collector is kept short (:func:`short_collections`)."""
    async with SandboxServer(settings, host=host, port=port) as server:
        for line in describe(server):
            print_fn(line)
        await short_collections()


# Seconds between two freezes of what the sandbox keeps (see short_collections).
FREEZE_EVERY_S = 0.1


async def short_collections() -> None:
    """Keep the cyclic collector's pauses short, for ever: every tenth of a second, collect the
    young generations and freeze what survives, so that a full collection never walks the
    history and each young one walks only a tenth of a second's worth of objects.

    The sandbox times each request's arrival when its loop gets to it (as Sinch's ingress
    would on arrival). Its history (messages, arrivals) grows by thousands of objects a
    second; a collection that walks it stops the loop, and the requests that waited meanwhile
    are timed together: a burst that no client sent, and 429s for it (docs/benchmarks.md).
    Frozen objects that later become cyclic garbage are not reclaimed: the cycles of requests
    under way at a freeze. The memory that costs was not measurable next to the history."""
    while True:
        await asyncio.sleep(FREEZE_EVERY_S)
        gc.collect(1)
        gc.freeze()


def describe(server: SandboxServer) -> list[str]:
    """Where ``server`` listens and the (test) credentials it accepts, as printable lines."""
    s = server.settings
    url = server.url
    lines = [
        f"Sinch sandbox listening on {url}",
        f"  auth_url          {url}/oauth2/token",
        f"  conversation_url  {url}",
        f"  batch_url         {url}",
        f"  project id        {s.project_id}",
        f"  app id            {', '.join(s.app_ids)}",
        f"  key id            {s.key_id}",
        f"  key secret        {s.key_secret}",
        f"  webhook secret    {s.webhook_secret or '(none: callbacks unsigned)'}",
        f"  callbacks to      {s.callback_url or '(per-request callback_url only)'}",
        f"  rate limit        {s.rate_limit or 'unlimited'} requests/s per project",
        f"  MT queue          {s.queue_limit} messages per app, drained at {s.outbound_rate}/s",
        f"  inspect           {url}/_sandbox/stats, /_sandbox/messages, /_sandbox/callbacks",
    ]
    return lines
