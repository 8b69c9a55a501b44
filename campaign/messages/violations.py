"""A collector of field violations, and the small type checks every validator uses.

Each check records ``(dotted.path, description)`` and carries on, so that one 400 lists every
problem of a request, as Sinch's ``google.rpc.BadRequest`` details do.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from campaign.messages.channels import CHANNELS


class Violations:
    """The field violations found so far, in the order found."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def __bool__(self) -> bool:
        return bool(self.items)

    def add(self, field: str, description: str) -> None:
        """Record that ``field`` is wrong, and why."""
        self.items.append((field, description))

    def obj(self, value: Any, path: str) -> dict[str, Any] | None:
        """``value`` if it is a JSON object, else ``None`` after recording why."""
        if isinstance(value, dict):
            return value
        self.add(path, "must be an object")
        return None

    def string(
        self,
        obj: dict[str, Any],
        key: str,
        path: str,
        *,
        required: bool = True,
        max_len: int | None = None,
    ) -> str | None:
        """``obj[key]`` if it is a string (non-empty when ``required``)."""
        where = f"{path}.{key}" if path else key
        if key not in obj:
            if required:
                self.add(where, "is required")
            return None
        value: object = obj[key]
        if not isinstance(value, str):
            self.add(where, "must be a string")
            return None
        if required and not value:
            self.add(where, "must not be empty")
        elif max_len is not None and len(value) > max_len:
            self.add(where, f"must be at most {max_len} characters")
        return value

    def enum(self, obj: dict[str, Any], key: str, path: str, allowed: Collection[str]) -> None:
        """When present, ``obj[key]`` must be one of ``allowed``."""
        where = f"{path}.{key}" if path else key
        if key in obj and obj[key] not in allowed:
            self.add(where, f"must be one of {', '.join(sorted(allowed))}")

    def array(
        self,
        obj: dict[str, Any],
        key: str,
        path: str,
        *,
        minimum: int = 0,
        maximum: int | None = None,
    ) -> list[Any] | None:
        """``obj[key]`` if it is a list of an allowed length (required when ``minimum``)."""
        where = f"{path}.{key}" if path else key
        if key not in obj:
            if minimum:
                self.add(where, "is required")
            return None
        value = obj[key]
        if not isinstance(value, list):
            self.add(where, "must be an array")
            return None
        if len(value) < minimum:
            self.add(where, f"must have at least {minimum} item(s)")
        if maximum is not None and len(value) > maximum:
            self.add(where, f"must have at most {maximum} items")
            return value[:maximum]
        return value

    def string_map(
        self, obj: dict[str, Any], key: str, path: str, *, max_len: int | None = None
    ) -> dict[str, Any] | None:
        """When present, ``obj[key]`` must map strings to strings (of at most ``max_len``)."""
        where = f"{path}.{key}" if path else key
        if key not in obj:
            return None
        if (mapping := self.obj(obj[key], where)) is None:
            return None
        for name, value in mapping.items():
            if not isinstance(value, str):
                self.add(f"{where}.{name}", "must be a string")
            elif max_len is not None and len(value) > max_len:
                self.add(f"{where}.{name}", f"must be at most {max_len} characters")
        return mapping

    def channel_map(self, obj: dict[str, Any], key: str, path: str) -> dict[str, Any] | None:
        """When present, ``obj[key]`` must be an object keyed by known channel names."""
        where = f"{path}.{key}" if path else key
        if key not in obj or (mapping := self.obj(obj[key], where)) is None:
            return None
        for channel in mapping:
            if channel not in CHANNELS:
                self.add(f"{where}.{channel}", "unknown channel")
        return mapping
