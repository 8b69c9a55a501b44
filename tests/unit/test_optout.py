"""Opt-out keywords: trimmed and case-folded, whole replies only."""

from __future__ import annotations

import pytest

from campaign.cli.suppress import normalise
from campaign.optout import DEFAULT_KEYWORDS, Keywords, reply_text


@pytest.mark.parametrize("text", ["STOP", " stop ", "Stop\n", "unsubscribe", "StopAll", "quit"])
def test_the_default_keywords_opt_out(text: str) -> None:
    assert Keywords().opts_out(text)


@pytest.mark.parametrize("text", ["stop it", "STOP!", "", "  ", "hello", None, "STOPP"])
def test_anything_else_does_not(text: str | None) -> None:
    assert not Keywords().opts_out(text)


def test_other_languages_are_configured() -> None:
    keywords = Keywords((*DEFAULT_KEYWORDS, "ARRÊT", "Straße"))
    assert keywords.opts_out("arrêt")
    assert keywords.opts_out("STRASSE")  # case-folded, not just lowered
    assert not Keywords(("HALT",)).opts_out("stop")


def test_the_reply_text_of_an_inbound_message() -> None:
    assert reply_text({"contact_message": {"text_message": {"text": "STOP"}}}) == "STOP"
    assert reply_text({"contact_message": {"media_message": {"url": "x"}}}) is None
    assert reply_text({}) is None


def test_identities_are_normalised_like_recipients() -> None:
    assert normalise(" +1 (201) 555-0001 ") == "+12015550001"
    assert normalise("030 1234567", "DE") == "+49301234567"
    assert normalise("Ana@Example.com ") == "Ana@Example.com"
    assert normalise("  ") is None


def test_the_list_finds_exactly_its_identities() -> None:
    """A binary search over hashes, checked against the identities themselves: a value whose
    hash is near one on the list, an empty list and nulls are never taken for listed."""
    import polars as pl

    from campaign.store.suppression import Listed

    listed = Listed.of(pl.Series([f"+1201555{i:04d}" for i in range(0, 1000, 3)]))
    values = pl.Series([f"+1201555{i:04d}" for i in range(1000)] + [None, "zzz"], dtype=pl.String)
    assert listed.holds(values).to_list() == [i % 3 == 0 for i in range(1000)] + [False, False]
    assert (
        listed.holds(values).to_list()
        == values.is_in(listed.identities.implode()).fill_null(False).to_list()
    )
    empty = Listed.of(pl.Series([], dtype=pl.String))
    assert not empty.holds(values).any()
    # Identities sharing a hash cannot be told apart by it: the lookup is then a set's.
    shared = Listed(pl.Series([1, 1], dtype=pl.UInt64), pl.Series(["a", "b"]), exact=False)
    assert shared.holds(pl.Series(["b", "c"])).to_list() == [True, False]
