"""Unit tests for campaign.rendering: local rendering must equal Sinch's regex substitution."""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaign import errors, models, rendering
from campaign.rendering import MessageTemplate, substitute_like_sinch
from tests.conftest import FIXTURES

MESSAGES = FIXTURES / "conversation-v1" / "messages"
FIXTURE_FILES = sorted(MESSAGES.glob("types/**/*.json")) + sorted(MESSAGES.glob("request/*.json"))


def _fixture_message(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data["message"] if path.parent.name == "request" else data


def _strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(path, string) for every string value, in document order."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}[{index}]")


def _inject(value: Any, counter: list[int]) -> Any:
    """Put a distinct `${p<i>}` into every string leaf, at the start, end, middle or alone."""
    if isinstance(value, dict):
        return {key: _inject(item, counter) for key, item in value.items()}
    if isinstance(value, list):
        return [_inject(item, counter) for item in value]
    if not isinstance(value, str):
        return value
    i = counter[0]
    counter[0] += 1
    middle = len(value) // 2
    return [
        f"${{p{i}}}{value}",
        f"{value} ${{ p{i} }}",
        f"${{p{i}}}",
        f"{value[:middle]}${{\tp{i}\n}}{value[middle:]} ${{first-name}}",
    ][i % 4]


# --- fixtures at depth -------------------------------------------------------------------------


def test_fixture_files_are_there() -> None:
    assert len(FIXTURE_FILES) == 19  # 10 message types + 9 send requests


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_fixture_message_renders_like_sinch_at_depth(path: Path) -> None:
    message = _inject(_fixture_message(path), counter := [0])
    leaves = counter[0]
    params = {f"p{i}": f"<v{i} ${{p0}} {{{{ 7*7 }}}} {{% raw %}}>" for i in range(leaves)}
    params["first-name"] = "Zoë"

    template = MessageTemplate.compile(message)
    rendered = template.render(params)

    assert rendered == substitute_like_sinch(message, params)
    assert set(template.names) == set(params) - ({"first-name"} if leaves < 4 else set())
    # Every leaf really was substituted, at whatever depth it sits.
    texts = [text for _, text in _strings(rendered)]
    assert len(texts) == leaves
    for i, text in enumerate(texts):
        assert f"<v{i} ${{p0}} {{{{ 7*7 }}}} {{% raw %}}>" in text
    assert json.loads(json.dumps(rendered)) == rendered


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_fixture_without_parameters_renders_unchanged(path: Path) -> None:
    message = _fixture_message(path)
    template = MessageTemplate.compile(message)
    assert template.names == ()
    assert template.render({}) == message


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_fixture_content_type(path: Path) -> None:
    expected = {
        "TextMessageDto": "text_message",
        "MediaMessageDto": "media_message",
        "TemplateMessageDto": "template_message",
        "CardMessageDto": "card_message",
        "ChoiceMessageDto": "choice_message",
        "CarouselMessageDto": "carousel_message",
        "LocationMessageDto": "location_message",
        "ListMessageChoiceDto": "list_message",
        "ListMessageProductDto": "list_message",
        "ContactInfoMessageDto": "contact_info_message",
    }
    stem = path.stem.replace("Send", "").replace("Request", "")
    key = expected.get(stem) or next(k for k in models.CONTENT_KEYS if k in _fixture_message(path))
    assert rendering.message_content_type(_fixture_message(path)) == key


# --- the property: Jinja rendering == the regex reference ----------------------------------------

NAMES = st.one_of(
    st.sampled_from(
        ["a", "b", "first-name", "código", "a.b", "x[0]", "1st", "_p", "items", "__class__"]
    ),
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=8).filter(
        lambda s: rendering.PARAMETER_RE.fullmatch("${" + s + "}") is not None
    ),
)
SPACE = st.sampled_from(["", " ", "  ", "\t", "\n", "\u00a0", "\u2028"])
REFERENCE = st.builds(lambda a, n, b: "${" + a + n + b + "}", SPACE, NAMES, SPACE)
NOISE = st.sampled_from(
    [
        "{{", "}}", "{%", "%}", "{#", "#}", "$", "{", "}", "${", "${}", "${ }", "${a b}",
        "$$", "\n", "\r\n", "\r", "# ", "## x\n", "\x00", "\x00{%", "%}\x00", '"', "'", "\\",
        "\\x41", "\\n", "é", "😀", "\ud800", "{% raw %}", "{% endraw %}", "{{ 7*7 }}",
        "{% for x in range(3) %}", "{{ ''.__class__ }}", "\u0085", "-", "+",
    ]
)  # fmt: skip
TEXT = st.lists(st.one_of(REFERENCE, NOISE, st.text(max_size=5)), max_size=8).map("".join)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), TEXT, TEXT, TEXT
)
MESSAGES_ST = st.dictionaries(
    TEXT,
    st.recursive(
        SCALARS,
        lambda children: st.one_of(
            st.lists(children, max_size=4), st.dictionaries(TEXT, children, max_size=4)
        ),
        max_leaves=20,
    ),
    max_size=4,
)
VALUES = st.lists(st.one_of(REFERENCE, NOISE, st.text(max_size=5)), max_size=5).map("".join)


@settings(max_examples=300, deadline=None)
@given(message=MESSAGES_ST, data=st.data())
def test_render_equals_regex_substitution(message: dict[str, Any], data: st.DataObject) -> None:
    names = rendering.parameters_of(message)
    params = {name: data.draw(VALUES) for name in names}
    params.update(data.draw(st.dictionaries(NAMES, VALUES, max_size=2)))

    template = MessageTemplate.compile(message)

    assert template.names == names
    assert template.render(params) == substitute_like_sinch(message, params)


@settings(max_examples=200, deadline=None)
@given(message=MESSAGES_ST, data=st.data())
def test_undefined_name_raises(message: dict[str, Any], data: st.DataObject) -> None:
    names = rendering.parameters_of(message)
    if not names:
        return
    params = {name: data.draw(VALUES) for name in names}
    dropped = data.draw(st.lists(st.sampled_from(names), min_size=1, unique=True))
    for name in dropped:
        del params[name]
    first_missing = next(name for name in names if name not in params)

    with pytest.raises(rendering.MissingParameterError) as caught:
        MessageTemplate.compile(message).render(params)
    assert caught.value.name == first_missing
    with pytest.raises(rendering.MissingParameterError) as reference:
        substitute_like_sinch(message, params, unknown="error")
    assert reference.value.name == first_missing


# --- values are inserted literally --------------------------------------------------------------

HOSTILE_VALUES = [
    "${x}",
    "${ x }",
    "$${x}",
    "{{ 7*7 }}",
    "{% raw %}",
    "{% endraw %}",
    "{% for i in range(10) %}x{% endfor %}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{# comment #}",
    "# line statement",
    "\x00{% x %}\x00",
    '"; DROP TABLE recipients; --',
    "\\x41\\n\\u0041",
    "a\r\nb\rc\n",
    "",
    "x" * 100_000,
]


@pytest.mark.parametrize("value", HOSTILE_VALUES, ids=range(len(HOSTILE_VALUES)))
def test_value_is_inserted_literally(value: str) -> None:
    message = {"text_message": {"text": "Hi ${v}!"}, "n": ["${v}", {"deep": "<${v}>"}]}
    params = {"v": value, "x": "NOT-SUBSTITUTED"}

    rendered = MessageTemplate.compile(message).render(params)

    assert rendered == {
        "text_message": {"text": f"Hi {value}!"},
        "n": [value, {"deep": f"<{value}>"}],
    }
    assert rendered == substitute_like_sinch(message, params)


HOSTILE_TEXTS = [
    "{{ 7*7 }} ${a}",
    "${a} {% for x in y %}{{ x }}{% endfor %}",
    "{% raw %}${a}{% endraw %}",
    "{# not a comment #} ${a}",
    "# not a line statement\n## nor this ${a}\n",
    "${a}\r\n\r\nwindows\rmac\n",
    "trailing newline ${a}\n",
    "\x00{% x %}\x00 \x00{# y #}\x00 ${a}",
    "{{ ''.__class__ }} ${a} }} %} #}",
    "\\${a} \\\\ \\n \\x00 \\u2028 \"'",
    "price: $5, ${a}, $ {a}, ${}, ${ }, ${a b}, ${x, $",
    "${${a}}",
    "emoji 😀 lone surrogate \ud800 nel \u0085 ls \u2028 ${a}",
    "${a}" * 1000,
    ("long text {{ }} {% %} " * 5000) + "${a}",
]


@pytest.mark.parametrize("text", HOSTILE_TEXTS, ids=range(len(HOSTILE_TEXTS)))
def test_message_text_stays_literal(text: str) -> None:
    message = {"text_message": {"text": text}}

    rendered = MessageTemplate.compile(message).render({"a": "A"})

    assert rendered == {"text_message": {"text": text.replace("${a}", "A")}}
    assert rendered == substitute_like_sinch(message, {"a": "A"})


def test_text_without_parameters_is_shared_not_templated() -> None:
    message = {"text_message": {"text": "{{ 7*7 }} $5 ${} ${a b}"}}
    template = MessageTemplate.compile(message)
    assert template.names == ()
    assert template.render({})["text_message"]["text"] is message["text_message"]["text"]


# --- the name grammar ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reference", ["${name}", "${ name }", "${\tname\n}", "${   name}", "${name  }", "${\u00a0name}"]
)
def test_whitespace_inside_braces(reference: str) -> None:
    message = {"text_message": {"text": f"<{reference}>"}}
    template = MessageTemplate.compile(message)
    assert template.names == ("name",)
    assert template.render({"name": "N"}) == {"text_message": {"text": "<N>"}}


@pytest.mark.parametrize("text", ["${}", "${ }", "${a b}", "${a", "$ {a}", "${a{b}}", "${a$b}"])
def test_not_the_grammar_stays_literal(text: str) -> None:
    message = {"text_message": {"text": text}}
    params = {"a": "A", "b": "B", "a b": "AB", "a{b": "X", "a$b": "Y"}
    rendered = MessageTemplate.compile(message).render(params)
    assert rendered == substitute_like_sinch(message, params)


def test_grammar_edge_cases() -> None:
    message = {"a": "${${a}}", "b": "$${a}", "c": "${a}}", "d": "{${a}", "e": "${a}${a}"}
    rendered = MessageTemplate.compile(message).render({"a": "A"})
    assert rendered == {"a": "${A}", "b": "$A", "c": "A}", "d": "{A", "e": "AA"}


@pytest.mark.parametrize(
    "name",
    [
        "first-name",
        "código",
        "名前",
        '";DROP_TABLE_recipients;--',
        "'quoted'",
        "back\\slash",
        "a.b",
        "x[0]",
        "1st",
        "_p",
        "__class__",
        "items",
        "range",
        "%>#",
        "😀",
    ],
)
def test_non_identifier_names(name: str) -> None:
    message = {"text_message": {"text": f"Hi ${{{name}}} and ${{ {name} }}!"}}
    template = MessageTemplate.compile(message)
    assert template.names == (name,)
    assert template.render({name: "V"}) == {"text_message": {"text": "Hi V and V!"}}
    with pytest.raises(rendering.MissingParameterError) as caught:
        template.render({})
    assert caught.value.name == name


@pytest.mark.parametrize("name", ["items", "keys", "get", "values", "__class__", "copy"])
def test_missing_name_never_falls_back_to_an_attribute(name: str) -> None:
    template = MessageTemplate.compile({"text_message": {"text": f"${{{name}}}"}})
    with pytest.raises(rendering.MissingParameterError):
        template.render({"other": "x"})


# --- errors -------------------------------------------------------------------------------------


def test_missing_parameter_error() -> None:
    template = MessageTemplate.compile({"text_message": {"text": "${a} ${b} ${c}"}})
    with pytest.raises(rendering.MissingParameterError) as caught:
        template.render({"a": "A", "c": "C"})
    error = caught.value
    assert isinstance(error, errors.CampaignError)
    assert error.name == "b"
    assert "'b'" in str(error)
    again = pickle.loads(pickle.dumps(error))
    assert (type(again), again.name, str(again)) == (type(error), "b", str(error))


def test_none_value_is_missing() -> None:
    template = MessageTemplate.compile({"text_message": {"text": "${a}"}})
    with pytest.raises(rendering.MissingParameterError):
        template.render({"a": None})  # type: ignore[dict-item]


def test_non_string_value_is_refused() -> None:
    template = MessageTemplate.compile({"text_message": {"text": "${a}"}})
    with pytest.raises(rendering.InvalidParameterError, match="'a' must be a string, not int"):
        template.render({"a": 3})  # type: ignore[dict-item]
    with pytest.raises(rendering.InvalidParameterError):
        substitute_like_sinch({"t": "${a}"}, {"a": 3})  # type: ignore[dict-item]


@pytest.mark.parametrize(
    "message",
    [
        {"text_message": {"text": {1, 2}}},
        {"text_message": {"text": b"bytes"}},
        {"text_message": {1: "int key"}},
    ],
)
def test_compile_refuses_non_json(message: dict[str, Any]) -> None:
    with pytest.raises(rendering.TemplateError, match=r"message\.text_message"):
        MessageTemplate.compile(message)


def test_compile_refuses_non_mapping() -> None:
    with pytest.raises(rendering.TemplateError):
        MessageTemplate.compile(["${a}"])  # type: ignore[arg-type]


def test_jinja_syntax_error_becomes_template_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rendering, "_template_source", lambda text: "${ _p[ }")
    with pytest.raises(rendering.TemplateError, match="cannot compile") as caught:
        MessageTemplate.compile({"text_message": {"text": "${a}"}})
    assert isinstance(caught.value, errors.CampaignError)


# --- structure ----------------------------------------------------------------------------------


def test_numbers_bools_nulls_and_keys_untouched() -> None:
    message = {
        "${a}": "${a}",
        "n": [1, 2.5, -0.0, True, False, None, 10**30],
        "location_message": {"coordinates": {"latitude": 47.6279809, "longitude": -2.8}},
        "nested": {"${a} key": {"x": "${a}"}},
    }
    rendered = MessageTemplate.compile(message).render({"a": "A"})
    assert rendered == {
        "${a}": "A",
        "n": [1, 2.5, -0.0, True, False, None, 10**30],
        "location_message": {"coordinates": {"latitude": 47.6279809, "longitude": -2.8}},
        "nested": {"${a} key": {"x": "A"}},
    }
    assert [type(v) for v in rendered["n"]] == [int, float, float, bool, bool, type(None), int]
    assert list(rendered) == list(message)  # key order kept


def test_tuples_render_as_lists_like_the_reference() -> None:
    message = {"a": ("${a}", "b")}
    rendered = MessageTemplate.compile(message).render({"a": "A"})
    assert rendered == {"a": ["A", "b"]} == substitute_like_sinch(message, {"a": "A"})


def test_renders_are_independent() -> None:
    message = {
        "card_message": {
            "title": "${a}",
            "choices": [{"text_message": {"text": "static"}, "postback_data": "p"}],
            "media_message": {"url": "https://x/${a}.png"},
        }
    }
    template = MessageTemplate.compile(message)
    first = template.render({"a": "1"})
    second = template.render({"a": "2"})

    first["card_message"]["choices"][0]["text_message"]["text"] = "mutated"
    first["card_message"]["choices"].append({})
    first["card_message"]["media_message"]["url"] = "mutated"
    first["extra"] = True

    assert second == {
        "card_message": {
            "title": "2",
            "choices": [{"text_message": {"text": "static"}, "postback_data": "p"}],
            "media_message": {"url": "https://x/2.png"},
        }
    }
    assert template.render({"a": "2"}) == second
    assert first["card_message"]["choices"] is not second["card_message"]["choices"]


def test_compile_does_not_alias_the_callers_message() -> None:
    message: dict[str, Any] = {"text_message": {"text": "${a}"}, "agent": {"type": "BOT"}}
    template = MessageTemplate.compile(message)
    message["text_message"]["text"] = "changed ${b}"
    message["agent"]["type"] = "HUMAN"
    assert template.render({"a": "A"}) == {"text_message": {"text": "A"}, "agent": {"type": "BOT"}}
    rendered = template.render({"a": "A"})
    assert rendered["agent"] is not message["agent"]


def test_identical_leaves_share_one_template() -> None:
    message = {"a": "${x} and ${y}", "b": ["${x} and ${y}", {"c": "${x} and ${y}"}]}
    rendered = MessageTemplate.compile(message).render({"x": "X", "y": "Y"})
    assert rendered == {"a": "X and Y", "b": ["X and Y", {"c": "X and Y"}]}


def test_template_pickles() -> None:
    message = {"text_message": {"text": "Hi ${ first-name }, {{ 7*7 }}"}}
    template = pickle.loads(pickle.dumps(MessageTemplate.compile(message)))
    assert template.names == ("first-name",)
    assert template.render({"first-name": "Zoë"}) == {"text_message": {"text": "Hi Zoë, {{ 7*7 }}"}}


def test_parameters_of_order_and_uniqueness() -> None:
    message = {
        "text_message": {"text": "${b} ${a} ${ b } ${c}"},
        "${z}": ["${d}", {"e": "${a}${e}"}, 7, None],
        "x": "${c}",
    }
    assert rendering.parameters_of(message) == ("b", "a", "c", "d", "e")
    assert MessageTemplate.compile(message).names == ("b", "a", "c", "d", "e")
    assert rendering.parameters_of({"text_message": {"text": "$5 ${} ${a b}"}}) == ()


# --- the reference ------------------------------------------------------------------------------


def test_substitute_like_sinch_unknown_policies() -> None:
    message = {"t": "${a} ${ b }!"}
    assert substitute_like_sinch(message, {"a": "A"}) == {"t": "A ${ b }!"}
    assert substitute_like_sinch(message, {"a": "A"}, unknown="empty") == {"t": "A !"}
    with pytest.raises(rendering.MissingParameterError, match="'b'"):
        substitute_like_sinch(message, {"a": "A"}, unknown="error")


def test_substitute_like_sinch_never_rescans() -> None:
    assert substitute_like_sinch({"t": "${a}${b}"}, {"a": "${b}", "b": "${a}"}) == {"t": "${b}${a}"}


# --- message_content_type -----------------------------------------------------------------------


@pytest.mark.parametrize("key", models.CONTENT_KEYS)
def test_content_type_each_key(key: str) -> None:
    assert rendering.message_content_type({key: {}, "agent": {"type": "BOT"}}) == key


def test_content_type_ignores_null() -> None:
    message = {"text_message": {"text": "x"}, "media_message": None}
    assert rendering.message_content_type(message) == "text_message"


@pytest.mark.parametrize(
    ("message", "match"),
    [
        ({}, "none"),
        ({"agent": {"type": "BOT"}}, "none"),
        ({"text_message": None}, "none"),
        ({"text_message": {}, "media_message": {}}, "text_message, media_message"),
        ({"text_message": "hi"}, "text_message must be an object"),
        (["text_message"], "must be an object"),
    ],
)
def test_content_type_errors(message: Any, match: str) -> None:
    with pytest.raises(rendering.InvalidMessageError, match=match) as caught:
        rendering.message_content_type(message)
    assert isinstance(caught.value, errors.CampaignError)
