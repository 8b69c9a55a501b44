"""The bulk proof of a batch's recipients: it vouches only for what the item checks pass."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaign.sandbox import bulkcheck, validation

from .helpers import APP, sms

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def item(identity: str = "+15551234567", **extra: Any) -> dict[str, Any]:
    return {
        "recipient": sms(identity),
        "parameters": {"first_name": "Ann", "code": "042"},
        "message_metadata": {"recipient": "c:1"},
        **extra,
    }


def check(items: list[Any], *, strict: bool, bulk: bool) -> list[tuple[str, str]]:
    """``check_batch`` of a body with ``items``, with or without the bulk proof."""
    body = {"app_id": APP, "message": {"text_message": {"text": "Hi"}}}
    with pytest.MonkeyPatch.context() as patch:
        if not bulk:
            patch.setattr(bulkcheck, "all_valid", lambda items, known: False)
        return validation.check_batch(
            body | {"recipient_and_params": items}, now=NOW, strict=strict
        )


def test_vouches_for_the_usual_shapes() -> None:
    known = validation.RECIPIENT_FIELDS
    assert bulkcheck.all_valid([item(f"+1201{i:07d}") for i in range(1000)], known)
    assert bulkcheck.all_valid([{"recipient": sms()}], known)
    messenger = {
        "identified_by": {"channel_identities": [{"channel": "MESSENGER", "identity": "x"}]}
    }
    assert bulkcheck.all_valid([item(), {"recipient": messenger}], known)
    assert bulkcheck.all_valid([item(extra=1)], None)


@pytest.mark.parametrize(
    "bad",
    [
        "nope",
        {"parameters": {}},
        item(extra=1),
        item("+1555123456\n"),
        item("+15551234567\n+15551234567"),
        item("15551"),
        item(""),
        item(parameters={"x": 1}),
        item(parameters=[]),
        item(message_metadata=None),
        item(conversation_metadata="x"),
        {"recipient": {"contact_id": "c", **sms()}},
        {"recipient": {"identified_by": {"channel_identities": []}}},
        {"recipient": {"identified_by": {"channel_identities": "SMS"}}},
        {"recipient": {"identified_by": {"channel_identities": [{"channel": ["SMS"]}]}}},
        {"recipient": {"identified_by": {"channel_identities": [{"channel": "SMS"}]}}},
        {
            "recipient": {
                "identified_by": {"channel_identities": [{"channel": "FAX", "identity": "1"}]}
            }
        },
        {
            "recipient": {
                "identified_by": {"channel_identities": [{"channel": "LINE", "identity": " "}]}
            }
        },
    ],
)
def test_refuses_what_the_item_checks_refuse(bad: Any) -> None:
    assert check([bad], strict=True, bulk=False)
    assert not bulkcheck.all_valid([item(), bad], validation.RECIPIENT_FIELDS)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=4), inner, max_size=2)
    ),
    max_leaves=4,
)


def _mostly(
    good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any] = _JSON
) -> st.SearchStrategy[Any]:
    """``good`` nine times in ten, ``bad`` otherwise: a list of items, each with a dozen
    places that can go wrong, is then valid often enough to exercise both answers."""
    return st.integers(0, 9).flatmap(lambda k: good if k else bad)


_BAD_IDENTITIES = st.sampled_from(
    ["15551", "", " ", "+0155512345", "+1555123456\n", "1\n+15551234567", "+١٥٥٥١٢٣٤٥٦٧"]
)
_ENTRY = st.fixed_dictionaries(
    {
        "channel": _mostly(
            st.sampled_from(["SMS", "WHATSAPP", "LINE"]), st.sampled_from(["sms", "FAX"]) | _JSON
        ),
        "identity": _mostly(
            st.from_regex(r"\+?[1-9][0-9]{6,14}", fullmatch=True), _BAD_IDENTITIES | _JSON
        ),
    },
    optional={"extra": _JSON},
)
_IDENTIFIED = st.fixed_dictionaries(
    {
        "identified_by": _mostly(
            st.fixed_dictionaries(
                {"channel_identities": _mostly(st.lists(_mostly(_ENTRY), min_size=1, max_size=2))}
            )
        )
    }
)
_CONTACT = st.fixed_dictionaries({"contact_id": _mostly(st.text(max_size=2))})
_RECIPIENT = _mostly(
    _IDENTIFIED, _CONTACT | st.builds(lambda a, b: a | b, _IDENTIFIED, _CONTACT) | _JSON
)
_ITEM = st.fixed_dictionaries(
    {"recipient": _RECIPIENT},
    optional={
        "parameters": _mostly(st.dictionaries(st.text(max_size=3), _mostly(st.text(max_size=3)))),
        "message_metadata": _mostly(st.dictionaries(st.text(max_size=3), _JSON, max_size=2)),
        "conversation_metadata": _mostly(st.just({})),
        "extra": _JSON,
    },
)


@settings(max_examples=400, deadline=None)
@given(items=st.lists(_mostly(_ITEM), min_size=1, max_size=3), strict=st.booleans())
def test_same_answer_with_and_without_the_bulk_proof(items: list[Any], strict: bool) -> None:
    fast = check(items, strict=strict, bulk=True)
    slow = check(items, strict=strict, bulk=False)
    assert fast == slow
    if bulkcheck.all_valid(items, validation.RECIPIENT_FIELDS if strict else None):
        assert slow == []


def body_of(items: list[Any]) -> bytes:
    body = {"app_id": APP, "message": {"text_message": {"text": "Hi"}}, "batch_metadata": {}}
    # The standard library's encoder: it writes integers of any size, as a client may.
    return json.dumps(body | {"recipient_and_params": items}, ensure_ascii=False).encode()


def test_a_batch_of_the_usual_shape_is_proven_as_it_is_parsed() -> None:
    items = [item(f"+1201{i:07d}") for i in range(1000)]
    proven = bulkcheck.proven_batch(body_of(items), validation.MAX_RECIPIENTS)
    assert proven is not None
    body, items_json, size = proven
    assert body == {
        "app_id": APP,
        "message": {"text_message": {"text": "Hi"}},
        "batch_metadata": {},
    }
    assert size == 1000 and orjson.loads(memoryview(items_json)) == items
    assert validation.check_batch(body, now=NOW, items_proven=True) == []


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b'{"app_id": "a"}',
        body_of([]),
        body_of([item()] * (validation.MAX_RECIPIENTS + 1)),
        body_of([item("15551")]) + b"{",
    ],
)
def test_what_is_not_proven_takes_the_ordinary_road(raw: bytes) -> None:
    assert bulkcheck.proven_batch(raw, validation.MAX_RECIPIENTS) is None


@pytest.mark.parametrize("bad", test_refuses_what_the_item_checks_refuse.pytestmark[0].args[1])
def test_proves_nothing_that_the_item_checks_refuse(bad: Any) -> None:
    assert bulkcheck.proven_batch(body_of([item(), bad]), validation.MAX_RECIPIENTS) is None


@settings(max_examples=400, deadline=None)
@given(items=st.lists(_mostly(_ITEM), min_size=1, max_size=3))
def test_proven_as_parsed_exactly_when_the_bulk_proof_vouches(items: list[Any]) -> None:
    """Parsing into typed structs proves what the bulk proof of the parsed items proves, no
    more: a proven batch has no violation, whichever way it is checked."""
    proven = bulkcheck.proven_batch(body_of(items), validation.MAX_RECIPIENTS)
    assert (proven is not None) == bulkcheck.all_valid(items, validation.RECIPIENT_FIELDS)
    if proven is not None:
        assert check(items, strict=True, bulk=False) == []
