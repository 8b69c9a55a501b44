"""Fast JSON (orjson) in the shapes that aiohttp and the rest of the code expect."""

from __future__ import annotations

from typing import Any

import orjson

loads = orjson.loads


def dumps(obj: Any) -> str:
    """Serialise to ``str`` (for aiohttp's ``json_serialize``)."""
    return orjson.dumps(obj).decode()


def dumpb(obj: Any) -> bytes:
    """Serialise to ``bytes``: the form to put on the wire."""
    return orjson.dumps(obj)
