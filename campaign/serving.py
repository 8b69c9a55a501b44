"""Serving an aiohttp app over TCP from the running event loop: what the receiver and the
sandbox share.

:func:`listen` sets the app's runner up and binds the socket; when the bind fails (a port
taken raises the bind's :class:`OSError`, ``EADDRINUSE``, which the CLI turns into one line)
the runner is cleaned up before the error goes on, so nothing is left half started.
:meth:`Listening.close` stops in reverse order: no new connections first, then the requests
in flight are answered and the app's own services shut down.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web

from campaign import descriptors

BACKLOG = 4096

ProtocolFactory = Callable[[], asyncio.Protocol]
# Puts a protocol factory in front of aiohttp's own (the receiver's connection limit).
Wrap = Callable[[ProtocolFactory], ProtocolFactory]


class Listening:
    """An app that listens: its runner and its listening socket."""

    def __init__(self, runner: web.AppRunner, listener: asyncio.Server) -> None:
        self.runner = runner
        self.listener = listener

    @property
    def port(self) -> int:
        """The port bound (the real one when 0 was asked for)."""
        return int(self.listener.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop accepting, then answer the requests in flight and shut the app down."""
        self.listener.close()  # the connections it accepted are aiohttp's to close
        await self.runner.cleanup()


async def listen(
    runner: web.AppRunner, host: str, port: int, *, wrap: Wrap | None = None
) -> Listening:
    """Set ``runner`` up and listen on ``host:port`` (0: any free port)."""
    # Before the first connection: a table grown while serving stops the loop, and the
    # requests that arrive meanwhile are timed as one burst (campaign.descriptors).
    descriptors.reserve()
    await runner.setup()
    try:
        assert runner.server is not None  # set up just now
        factory: ProtocolFactory = runner.server
        listener = await asyncio.get_running_loop().create_server(
            wrap(factory) if wrap else factory, host, port, backlog=BACKLOG
        )
    except BaseException:
        await runner.cleanup()
        raise
    return Listening(runner, listener)


def base_url(host: str, port: int) -> str:
    """``http://host:port`` (no trailing slash; an IPv6 host in brackets)."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"
