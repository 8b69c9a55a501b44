"""campaign.store.export: where connectorx reads a report from, and how a failed read is told."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from campaign.store import export


def test_a_sqlite_file_is_read_by_its_absolute_path_quoted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my campaigns").mkdir()
    sqlite3.connect(tmp_path / "my campaigns" / "c%1 é.db").close()
    source = export.report_source(make_url("sqlite:///my campaigns/c%1 é.db?timeout=5"))
    assert source.uri == "sqlite://" + str(tmp_path).replace(" ", "%20") + (
        "/my%20campaigns/c%251%20%C3%A9.db"
    )


def test_a_postgres_url_keeps_its_password_for_connectorx_only() -> None:
    source = export.report_source(make_url("postgresql+psycopg://u:s3cr3t-pw@db:5433/c"))
    assert source.uri == "postgresql://u:s3cr3t-pw@db:5433/c"
    assert "s3cr3t-pw" not in source.shown and "s3cr3t-pw" not in repr(source.shown)


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "sqlite:///file:x?mode=memory"])
def test_an_in_memory_database_has_no_report(url: str) -> None:
    with pytest.raises(export.ReportReadError, match="a report needs a database file"):
        export.report_source(make_url(url))


def test_pages_cover_every_position_once() -> None:
    assert list(export.page_bounds(1, 5, 2)) == [(0, 2), (2, 4), (4, 5)]
    assert list(export.page_bounds(3, 3, 10)) == [(2, 3)]
    covered = [
        p for after, up_to in export.page_bounds(7, 1000, 97) for p in range(after + 1, up_to + 1)
    ]
    assert covered == list(range(7, 1001))


def test_a_failed_read_says_why_in_one_line_without_the_password(database_url: str) -> None:
    url = make_url(database_url).set(password="s3cr3t-pw")  # trust auth lets it in
    if url.get_backend_name() == "sqlite":
        sqlite3.connect(url.database or "").close()  # a database without the store's tables
    source = export.report_source(url)
    with pytest.raises(export.ReportReadError) as caught:
        export.read_page(source, 1, 0, 10)
    text = str(caught.value)
    assert text.startswith(f"database {source.shown}: cannot read the report: ")
    assert "s3cr3t-pw" not in text and "\n" not in text


def test_a_missing_sqlite_file_is_not_created_by_a_report(tmp_path: Path) -> None:
    with pytest.raises(export.ReportReadError, match="no such file"):
        export.report_source(make_url(f"sqlite:///{tmp_path / 'absent.db'}"))
    assert not (tmp_path / "absent.db").exists()
