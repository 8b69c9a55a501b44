"""``${name}`` substitution into a batch message, the way the Batch API describes it.

Every string at any depth of the message is scanned once; each ``${name}`` is replaced by the
recipient's ``parameters[name]``. Replacement text is never scanned again, so a value that
itself contains ``${other}`` arrives literally. Keys of objects are left alone. What happens
to a name the recipient has no value for is a policy (Sinch does not document it):
``literal`` keeps ``${name}``, ``empty`` removes it, ``error`` refuses the batch.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from campaign.sandbox.settings import UnknownParameterPolicy

# The name grammar that campaign.rendering also uses (kept separate on purpose: the sandbox
# stands for Sinch, and the engine's renderer is tested against it): no whitespace, braces or
# dollars in a name; whitespace around it inside the braces is allowed.
PLACEHOLDER: Final = re.compile(r"\$\{\s*([^\s{}$]+)\s*\}")


class UnknownParameterError(ValueError):
    """A ``${name}`` in the message has no value and the policy is ``error``."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no value for parameter {name!r}")
        self.name = name


def render(
    message: Any,
    parameters: Mapping[str, str],
    policy: UnknownParameterPolicy = "literal",
) -> Any:
    """A copy of ``message`` with every ``${name}`` in its strings substituted."""

    def replace(match: re.Match[str]) -> str:
        name = match[1]
        value = parameters.get(name)
        if value is not None:
            return value
        if policy == "literal":
            return match[0]
        if policy == "empty":
            return ""
        raise UnknownParameterError(name)

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return PLACEHOLDER.sub(replace, value) if "${" in value else value
        if isinstance(value, dict):
            return {key: walk(item) for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item) for item in value]
        return value

    return walk(message)


Renderer = Callable[[Mapping[str, str]], Any]


def compile_message(message: Any, policy: UnknownParameterPolicy = "literal") -> Renderer:
    """:func:`render` for one message and many recipients: the message is walked once, and
    each render rebuilds only the path to the strings that hold a ``${name}`` (everything else
    is shared between the results, as read-only as the request it came from)."""

    def node(value: Any) -> Renderer | None:  # None: nothing to substitute below
        if isinstance(value, str):
            return _leaf(value, policy)
        if isinstance(value, dict):
            children = [(key, node(item)) for key, item in value.items()]
            dynamic = [(key, child) for key, child in children if child is not None]
            if not dynamic:
                return None

            def render_dict(parameters: Mapping[str, str]) -> dict[str, Any]:
                out = dict(value)
                for key, child in dynamic:
                    out[key] = child(parameters)
                return out

            return render_dict
        if isinstance(value, list):
            items = [node(item) for item in value]
            if all(item is None for item in items):
                return None
            pairs = list(zip(value, items, strict=True))

            def render_list(parameters: Mapping[str, str]) -> list[Any]:
                return [item if child is None else child(parameters) for item, child in pairs]

            return render_list
        return None

    compiled = node(message)
    if compiled is None:
        return lambda parameters: message
    return compiled


def _leaf(text: str, policy: UnknownParameterPolicy) -> Renderer | None:
    """One string's renderer: split once by the grammar, joined per recipient."""
    pieces: list[tuple[str | None, str]] = []  # (name or None for literal text, raw text)
    position = 0
    for match in PLACEHOLDER.finditer(text):
        if match.start() > position:
            pieces.append((None, text[position : match.start()]))
        pieces.append((match[1], match[0]))
        position = match.end()
    if not pieces:
        return None
    if position < len(text):
        pieces.append((None, text[position:]))

    def render_leaf(parameters: Mapping[str, str]) -> str:
        out = []
        for name, raw in pieces:
            if name is None:
                out.append(raw)
                continue
            value = parameters.get(name)
            if value is None:
                if policy == "error":
                    raise UnknownParameterError(name)
                value = raw if policy == "literal" else ""
            out.append(value)
        return "".join(out)

    return render_leaf
