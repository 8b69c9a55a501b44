"""The delivery-webhook server: verify -> store the raw event (group commit) -> apply status.

Sinch POSTs a signed callback per delivery event. The receiver checks its size, signature,
timestamp window, nonce and JSON depth, parses it, and answers 200 only once the raw body is
stored in the event table; many concurrent callbacks share one transaction. Stored events are
then applied to recipients by a separate task.

- :mod:`~campaign.receiver.settings`: :class:`ReceiverSettings`, :class:`ReceiverStats`
- :mod:`~campaign.receiver.checks`: pure checks (JSON depth, the nonce window)
- :mod:`~campaign.receiver.committer`: the group commit and the applier
- :mod:`~campaign.receiver.app`: the aiohttp application and its handlers
- :mod:`~campaign.receiver.connections`: :class:`ConnectionLimit`, how many connections at once
- :mod:`~campaign.receiver.server`: :class:`ReceiverServer` and :func:`serve`
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from campaign import lazy

if TYPE_CHECKING:
    from campaign.receiver.app import make_app
    from campaign.receiver.server import ReceiverServer, describe, serve
    from campaign.receiver.settings import ReceiverSettings, ReceiverStats

# Imported when first used: a run starts the receiver only to wait for delivery.
__getattr__ = lazy.attributes(
    __name__,
    {
        "make_app": "app",
        "ReceiverServer": "server",
        "describe": "server",
        "serve": "server",
        "ReceiverSettings": "settings",
        "ReceiverStats": "settings",
    },
)


__all__ = [
    "ReceiverServer",
    "ReceiverSettings",
    "ReceiverStats",
    "describe",
    "make_app",
    "serve",
]
