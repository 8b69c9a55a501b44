"""``${name}`` substitution in batch messages (pure)."""

from __future__ import annotations

import pytest
import ulid

from campaign.sandbox import records, substitution
from campaign.sandbox.settings import UnknownParameterPolicy


def test_substitutes_at_any_depth_and_leaves_keys_alone() -> None:
    message = {
        "card_message": {
            "title": "Hi ${name}",
            "choices": [
                {"text_message": {"text": "Code ${code}, ${name}!"}, "postback_data": "${code}"},
                {"url_message": {"title": "Go", "url": "https://x.test/${code}"}},
            ],
            "${name}": "key untouched",
            "height": "MEDIUM",
        }
    }
    out = substitution.render(message, {"name": "Jane", "code": "42"})
    assert out == {
        "card_message": {
            "title": "Hi Jane",
            "choices": [
                {"text_message": {"text": "Code 42, Jane!"}, "postback_data": "42"},
                {"url_message": {"title": "Go", "url": "https://x.test/42"}},
            ],
            "${name}": "key untouched",
            "height": "MEDIUM",
        }
    }
    assert message["card_message"]["title"] == "Hi ${name}"  # the input is not mutated


def test_values_are_literal_never_rescanned() -> None:
    out = substitution.render(
        {"text_message": {"text": "${a} and ${b}"}}, {"a": "${b}", "b": "${a}"}
    )
    assert out == {"text_message": {"text": "${b} and ${a}"}}


def test_non_strings_are_kept() -> None:
    message = {
        "location_message": {"coordinates": {"latitude": 1.5, "longitude": 2}, "x": [True, None]}
    }
    assert substitution.render(message, {}) == message


@pytest.mark.parametrize(
    ("policy", "expected"),
    [("literal", "Hi ${name}, ${missing}"), ("empty", "Hi ${name}, ")],
)
def test_unknown_parameter_policies(policy: UnknownParameterPolicy, expected: str) -> None:
    out = substitution.render({"t": "Hi ${name}, ${missing}"}, {"name": "${name}"}, policy)
    assert out == {"t": expected}


def test_unknown_parameter_error_policy() -> None:
    with pytest.raises(substitution.UnknownParameterError) as info:
        substitution.render({"t": ["ok ${a}", "${b}"]}, {"a": "1"}, "error")
    assert info.value.name == "b"


def test_dollar_without_braces_is_text() -> None:
    out = substitution.render({"t": "$5 ${ x } $name ${} ${a b}"}, {"name": "n", "x": "X"})
    assert out == {"t": "$5 X $name ${} ${a b}"}


def test_a_compiled_message_renders_as_render_does() -> None:
    message = {
        "card_message": {
            "title": "Hi ${name}",
            "description": "static",
            "choices": [
                {"text_message": {"text": "${ code }!"}},
                {"url_message": {"title": "t", "url": "https://x/${name}"}},
                {"call_message": {"title": "c", "phone_number": "+1"}},
            ],
            "height": 3,
        }
    }
    for policy in ("literal", "empty"):
        compiled = substitution.compile_message(message, policy)
        for parameters in ({"name": "A${code}", "code": "7"}, {"name": "B"}, {}):
            assert compiled(parameters) == substitution.render(message, parameters, policy)
    assert compiled({"name": "A"}) is not compiled({"name": "A"})  # a new object each time
    static = {"text_message": {"text": "no parameters"}}
    assert substitution.compile_message(static)({"x": "y"}) == static
    with pytest.raises(substitution.UnknownParameterError):
        substitution.compile_message(message, "error")({"name": "A"})


def test_ids_for_a_batch_are_distinct_ulids() -> None:
    ids = records.new_ids(1000)
    assert len(set(ids)) == 1000
    assert all(len(i) == 26 and str(ulid.ULID.from_str(i)) == i for i in ids)
    assert ids == sorted(ids)  # monotonic, as a ULID generator within one millisecond
