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
