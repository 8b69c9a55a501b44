"""Shared fixtures. The environment never leaks into tests: SINCH_* and CAMPAIGN_* are cleared."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from campaign.store.engine import upgrade_sync
from campaign.store.repository import Store

# The Sinch API bodies and the signature vector the tests read: written for this project, kept
# in the repository (tests/fixtures/README.md). Tests read nothing outside the repository.
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("SINCH_", "CAMPAIGN_")):
            monkeypatch.delenv(name)


# --- databases ---------------------------------------------------------------------------------
# Store tests run on real SQLite and real Postgres. Each Postgres test gets its own database.
# Without a server they are skipped with the reason, unless CAMPAIGN_REQUIRE_POSTGRES=1 (as in
# .ci/run), which turns the skip into a failure.

POSTGRES_URL = os.environ.get(
    "CAMPAIGN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REQUIRE_POSTGRES = os.environ.get("CAMPAIGN_REQUIRE_POSTGRES") == "1"


def _postgres_admin() -> Any:
    import psycopg

    return psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3)


@pytest.fixture(scope="session")
def postgres_available() -> str | None:
    """None when Postgres answers, else why not."""
    try:
        with _postgres_admin() as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # any failure to connect means: no Postgres here
        return f"PostgreSQL not reachable at {POSTGRES_URL} ({type(exc).__name__})"
    return None


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_available: str | None
) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'campaign.db'}"
        return
    if postgres_available is not None:
        if REQUIRE_POSTGRES:
            pytest.fail(postgres_available + "; CAMPAIGN_REQUIRE_POSTGRES=1 forbids skipping")
        pytest.skip(postgres_available + "; set CAMPAIGN_TEST_POSTGRES_URL to run these")
    name = f"campaign_test_{uuid.uuid4().hex[:12]}"
    with _postgres_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = make_url(POSTGRES_URL)
    url = base.set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with _postgres_admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    """A store on ``database_url`` with the schema built by the migrations: Postgres is
    migrated as `campaign db upgrade` would; SQLite migrates itself on open."""
    if database_url.startswith("postgresql"):
        upgrade_sync(database_url)
    opened = await Store.open(database_url)
    try:
        yield opened
    finally:
        await opened.close()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With CAMPAIGN_FORBID_SKIPS=1 (CI), a skipped test fails the run: CI must run them all."""
    if os.environ.get("CAMPAIGN_FORBID_SKIPS") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter is not None else 0
    if skipped and exitstatus == pytest.ExitCode.OK:
        if reporter is not None:
            reporter.write_line(
                f"ci: {skipped} test(s) skipped; CAMPAIGN_FORBID_SKIPS=1 forbids it", red=True
            )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
