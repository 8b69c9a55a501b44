"""Shared fixtures. The environment never leaks into tests: SINCH_* and CAMPAIGN_* are cleared."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FIXTURES = SHARED / "spec" / "fixtures"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("SINCH_", "CAMPAIGN_")):
            monkeypatch.delenv(name)
