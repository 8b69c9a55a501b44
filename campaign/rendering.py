"""``${name}`` substitution into Conversation API message JSON, rendered strictly with Jinja2.

A campaign message is any AppMessage as a JSON-like dict. ``${name}`` may appear anywhere inside
any string value; each recipient's ``parameters`` (string to string) supply the values. Sinch's
Batch API substitutes server-side, and our sandbox emulates it with one regex pass whose
replacement text is never re-scanned (:func:`substitute_like_sinch`). Local rendering
(:class:`MessageTemplate`) must give exactly the same result, so it is built on the same regex:

1. A pre-pass splits every string leaf with :data:`PARAMETER_RE`. Each match becomes the Jinja
   lookup ``${_p["<name>"]}``; each piece of text between matches becomes the Jinja string
   constant ``${"<text>"}``. Both string literals are pure ASCII: every character outside a
   small safe set (letters, digits, space, some punctuation) is written as a ``\\xNN``,
   ``\\uNNNN`` or ``\\UNNNNNNNN`` escape, which is exactly what Jinja's string lexer decodes. So
   the template source holds no message text outside a string literal, and no quote, brace,
   dollar, percent, hash, backslash or newline of the message reaches the lexer: ``{{ }}``,
   ``{% %}``, ``{#``, ``#`` lines, ``\\r\\n`` all stay literal, byte for byte.
2. The environment uses ``${`` / ``}`` for variables and NUL-framed strings, which the
   generated source never contains, for blocks and comments; line statements are off.
   Jinja folds the string constants into the compiled code, so they cost nothing per render.
3. Values are output with ``str()``, never evaluated, and never re-scanned.
4. Lookups go through :meth:`_Environment.getitem`, which, unlike the sandbox's, never falls
   back to attributes (``${items}`` must not find ``dict.items``); a missing name becomes an
   undefined that raises :class:`MissingParameterError` when output.

Only string leaves with at least one ``${name}`` get a template; every other value is shared
with the compiled message, and containers are rebuilt per render so that each result can be
mutated or serialised on its own.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final, Literal, NoReturn

from jinja2 import StrictUndefined, Template, TemplateSyntaxError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import missing

from campaign import errors, models

# The Sinch parameter grammar: `${name}`, name without whitespace, braces or dollars, optional
# whitespace inside the braces.
PARAMETER_RE: Final = re.compile(r"\$\{\s*([^\s{}$]+)\s*\}")

UnknownPolicy = Literal["literal", "empty", "error"]

# The name of the parameters mapping inside the generated templates.
_PARAMS_VAR: Final = "_p"


# --- errors ------------------------------------------------------------------------------------


class RenderError(errors.CampaignError):
    """A campaign message cannot be compiled or rendered."""


class TemplateError(RenderError):
    """The message cannot be compiled into a template (not JSON-like, or a Jinja syntax error)."""


class InvalidMessageError(RenderError):
    """The message is not a usable AppMessage: no content key, several, or a malformed one."""


class MissingParameterError(RenderError):
    """The message uses ``${name}`` and the recipient has no value (or ``None``) for it."""

    def __init__(self, name: str) -> None:
        super().__init__(name)  # args == (name,): picklable across process pools
        self.name = name

    def __str__(self) -> str:
        return f"no value for message parameter {self.name!r}"


class InvalidParameterError(RenderError):
    """A recipient's parameter value is not a string."""

    def __init__(self, name: str, type_name: str) -> None:
        super().__init__(name, type_name)
        self.name = name
        self.type_name = type_name

    def __str__(self) -> str:
        return f"message parameter {self.name!r} must be a string, not {self.type_name}"


# --- the reference implementation --------------------------------------------------------------


def substitute_like_sinch(
    message: Mapping[str, Any], params: Mapping[str, str], unknown: UnknownPolicy = "literal"
) -> dict[str, Any]:
    """Substitute ``${name}`` the way the Sinch Batch API does: one regex pass per string.

    Replacement text is inserted as-is and never re-scanned. ``unknown`` says what happens to a
    name without a value (``None`` counts as no value): ``"literal"`` keeps the ``${...}`` text,
    ``"empty"`` replaces it with ``""``, ``"error"`` raises :class:`MissingParameterError`.
    Keys, numbers, booleans and nulls are untouched. Returns new containers throughout.
    """

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        value = params.get(name)
        if value is None:
            if unknown == "literal":
                return match.group(0)
            if unknown == "empty":
                return ""
            raise MissingParameterError(name)
        if not isinstance(value, str):
            raise InvalidParameterError(name, type(value).__name__)
        return value

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return PARAMETER_RE.sub(replace, value)
        if isinstance(value, Mapping):
            return {key: walk(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [walk(item) for item in value]
        return value

    result: dict[str, Any] = walk(message)
    return result


# --- inspection --------------------------------------------------------------------------------


def _strings(value: Any) -> Iterator[str]:
    """Every string value inside ``value``, depth first in document order (keys excluded)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def parameters_of(message: Mapping[str, Any]) -> tuple[str, ...]:
    """The parameter names ``message`` uses, each once, in order of first use."""
    seen: dict[str, None] = {}
    for text in _strings(message):
        if "${" in text:
            for match in PARAMETER_RE.finditer(text):
                seen.setdefault(match.group(1), None)
    return tuple(seen)


def text_pieces(text: str) -> tuple[tuple[bool, str], ...]:
    """``text`` split by the parameter grammar: ``(False, literal)`` and ``(True, name)``
    pieces, in order; joining the literals and the values gives the rendered text."""
    pieces: list[tuple[bool, str]] = []
    position = 0
    for match in PARAMETER_RE.finditer(text):
        if match.start() > position:
            pieces.append((False, text[position : match.start()]))
        pieces.append((True, match.group(1)))
        position = match.end()
    if position < len(text):
        pieces.append((False, text[position:]))
    return tuple(pieces)


def message_content_type(message: Mapping[str, Any]) -> str:
    """Which of the nine content keys (:data:`campaign.models.CONTENT_KEYS`) ``message`` has.

    A key whose value is ``null`` counts as absent. Raises :class:`InvalidMessageError` when the
    message has none of them, several, or a content value that is not an object.
    """
    if not isinstance(message, Mapping):
        raise InvalidMessageError(f"a message must be an object, not {type(message).__name__}")
    present = [key for key in models.CONTENT_KEYS if message.get(key) is not None]
    if not present:
        raise InvalidMessageError(
            "a message needs exactly one of " + ", ".join(models.CONTENT_KEYS) + "; it has none"
        )
    if len(present) > 1:
        raise InvalidMessageError(
            "a message needs exactly one content key; it has " + ", ".join(present)
        )
    (key,) = present
    if not isinstance(message[key], Mapping):
        raise InvalidMessageError(f"{key} must be an object, not {type(message[key]).__name__}")
    return key


# --- the Jinja environment ---------------------------------------------------------------------


class _ParameterUndefined(StrictUndefined):
    """StrictUndefined that names the missing parameter in a :class:`MissingParameterError`."""

    __slots__ = ()

    # Output is the only thing generated templates do with a value. (StrictUndefined binds its
    # dunders to the base class's _fail_with_undefined_error, so overriding that has no effect.)
    def __str__(self, *args: Any, **kwargs: Any) -> NoReturn:
        if self._undefined_obj is not missing and isinstance(self._undefined_name, str):
            raise MissingParameterError(self._undefined_name)
        super().__str__()  # raises UndefinedError


class _Environment(ImmutableSandboxedEnvironment):
    """The sandbox, with item lookups that never fall back to attributes."""

    def getitem(self, obj: Any, argument: Any) -> Any:
        """``obj[argument]`` if it is a string; an undefined if it is missing or ``None``."""
        try:
            value = obj[argument]
        except (TypeError, LookupError):
            return self.undefined(obj=obj, name=argument)
        if isinstance(value, str):
            return value
        if value is None:
            return self.undefined(obj=obj, name=argument)
        raise InvalidParameterError(str(argument), type(value).__name__)


# Blocks and comments get delimiters the generated source never contains (see the module
# docstring); line statements and line comments are off.
_ENV: Final = _Environment(
    variable_start_string="${",
    variable_end_string="}",
    block_start_string="\x00{%",
    block_end_string="%}\x00",
    comment_start_string="\x00{#",
    comment_end_string="#}\x00",
    line_statement_prefix=None,
    line_comment_prefix=None,
    trim_blocks=False,
    lstrip_blocks=False,
    newline_sequence="\n",
    keep_trailing_newline=True,
    autoescape=False,
    undefined=_ParameterUndefined,
    cache_size=0,
)

# Characters written as themselves inside a generated string literal; everything else is escaped.
_SAFE_CHARS: Final = re.compile(r"[A-Za-z0-9 _.,:;!?@/+=*&^~|<>()\[\]'-]*")
_UNSAFE_CHAR: Final = re.compile(r"[^A-Za-z0-9 _.,:;!?@/+=*&^~|<>()\[\]'-]")


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _jinja_string(text: str) -> str:
    """``text`` as a Jinja string literal that decodes back to exactly ``text``."""
    if _SAFE_CHARS.fullmatch(text):
        return f'"{text}"'
    return '"' + _UNSAFE_CHAR.sub(_escape_char, text) + '"'


def _template_source(text: str) -> str | None:
    """The Jinja source for one string leaf, or ``None`` when it uses no parameter."""
    parts: list[str] = []
    position = 0
    for match in PARAMETER_RE.finditer(text):
        if match.start() > position:
            parts.append("${" + _jinja_string(text[position : match.start()]) + "}")
        parts.append("${" + _PARAMS_VAR + "[" + _jinja_string(match.group(1)) + "]}")
        position = match.end()
    if not parts:
        return None
    if position < len(text):
        parts.append("${" + _jinja_string(text[position:]) + "}")
    return "".join(parts)


# --- compiled messages -------------------------------------------------------------------------

# A compiled node: takes the render's Jinja context and returns the rendered value.
_Render = Callable[[Context | None], Any]


def _leaf_renderer(template: Template) -> _Render:
    # Template.render() would build a new context (a copy of the environment's globals and
    # more) for every leaf, which is most of its cost; one render shares one context across all
    # its leaves instead. The generated code only reads ``_p``, so sharing it is safe.
    root = template.root_render_func

    def render_leaf(context: Context | None) -> str:
        assert context is not None  # a message with a leaf template has a context
        return "".join(root(context))

    return render_leaf


def _dict_renderer(base: dict[str, Any], children: tuple[tuple[str, _Render], ...]) -> _Render:
    def render_dict(context: Context | None) -> dict[str, Any]:
        result = base.copy()  # static values shared, key order kept
        for key, render in children:
            result[key] = render(context)
        return result

    return render_dict


def _list_renderer(base: list[Any], children: tuple[tuple[int, _Render], ...]) -> _Render:
    def render_list(context: Context | None) -> list[Any]:
        result = base.copy()
        for index, render in children:
            result[index] = render(context)
        return result

    return render_list


class _Compiler:
    """Turns a JSON-like value into a tree of renderers; identical leaves share a template."""

    def __init__(self) -> None:
        self.leaves: dict[str, _Render] = {}
        self.first_template: Template | None = None

    def node(self, value: Any, path: str) -> _Render | None:
        """The renderer for ``value``, or ``None`` when the value itself can be shared."""
        if isinstance(value, str):
            return self.leaf(value, path) if "${" in value else None
        if value is None or isinstance(value, bool | int | float):
            return None
        if isinstance(value, Mapping):
            base: dict[str, Any] = {}
            dict_children: list[tuple[str, _Render]] = []
            for key, item in value.items():
                if not isinstance(key, str):
                    raise TemplateError(f"{path}: object keys must be strings, not {key!r}")
                base[key] = item
                render = self.node(item, f"{path}.{key}")
                if render is not None:
                    dict_children.append((key, render))
            return _dict_renderer(base, tuple(dict_children))
        if isinstance(value, list | tuple):
            items = list(value)
            list_children: list[tuple[int, _Render]] = []
            for index, item in enumerate(items):
                render = self.node(item, f"{path}[{index}]")
                if render is not None:
                    list_children.append((index, render))
            return _list_renderer(items, tuple(list_children))
        raise TemplateError(f"{path}: {type(value).__name__} is not a JSON value")

    def leaf(self, text: str, path: str) -> _Render | None:
        if text in self.leaves:
            return self.leaves[text]
        source = _template_source(text)
        if source is None:
            return None
        try:
            template = _ENV.from_string(source)
        except TemplateSyntaxError as exc:
            raise TemplateError(f"{path}: cannot compile {text!r}: {exc.message}") from exc
        if self.first_template is None:
            self.first_template = template
        render = self.leaves[text] = _leaf_renderer(template)
        return render


class MessageTemplate:
    """A campaign message compiled once, rendered once per recipient.

    Thread-safe; picklable (it is recompiled on unpickling), so it can go to a process pool.
    """

    __slots__ = ("_context_template", "_message", "_render", "names")

    names: tuple[str, ...]
    """The parameter names the message uses, in order of first use."""

    def __init__(
        self,
        message: dict[str, Any],
        render: _Render,
        names: tuple[str, ...],
        context_template: Template | None,
    ) -> None:
        self._message = message
        self._render = render
        self.names = names
        self._context_template = context_template

    @classmethod
    def compile(cls, message: Mapping[str, Any]) -> MessageTemplate:
        """Compile ``message``; raises :class:`TemplateError` if it cannot be."""
        if not isinstance(message, Mapping):
            raise TemplateError(f"a message must be an object, not {type(message).__name__}")
        compiler = _Compiler()
        render = compiler.node(message, "message")
        assert render is not None  # a mapping always gets a renderer
        # A private copy of the source, for pickling: the caller may mutate theirs.
        source = substitute_like_sinch(message, {})
        return cls(source, render, parameters_of(message), compiler.first_template)

    @property
    def message(self) -> dict[str, Any]:
        """The message as written (``${...}`` in place), a copy: for server-side substitution."""
        return copy.deepcopy(self._message)

    def render(self, params: Mapping[str, str]) -> dict[str, Any]:
        """The message for one recipient: a new dict, with every ``${name}`` replaced.

        Raises :class:`MissingParameterError` for the first name (in message order) without a
        value, :class:`InvalidParameterError` for a value that is not a string.
        """
        template = self._context_template
        # Every template of the message shares one context; `shared` skips copying globals.
        context = None if template is None else template.new_context({_PARAMS_VAR: params}, True)
        result: dict[str, Any] = self._render(context)
        return result

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self).compile, (self._message,))

    def __repr__(self) -> str:
        return f"MessageTemplate(names={self.names!r})"
