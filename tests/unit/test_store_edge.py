"""The store's edge without a database: which StoreError a driver's error becomes, that every
public coroutine and async generator of a query group is guarded, and that no password shows."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.exc import DataError, IntegrityError, OperationalError, ProgrammingError

from campaign import errors
from campaign.store import edge

PLACE = edge.Place.of("postgresql://campaign:pw-x9@db.example:5432/campaign")


class _PgError(Exception):
    def __init__(self, message: str, sqlstate: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def _wrapped(kind: type[Any], orig: Exception) -> Any:
    return kind("UPDATE recipients SET x = ?", {"x": "a callback body"}, orig)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (_wrapped(OperationalError, sqlite3.OperationalError("database is locked")), "Unavailable"),
        (_wrapped(OperationalError, sqlite3.OperationalError("database or disk is full")),
         "Unavailable"),
        (_wrapped(OperationalError, sqlite3.OperationalError("no such table: events")), "Schema"),
        (_wrapped(ProgrammingError, _PgError('relation "events" does not exist', "42P01")),
         "Schema"),
        (_wrapped(IntegrityError, sqlite3.IntegrityError("NOT NULL constraint failed")),
         "Refused"),
        (_wrapped(DataError, _PgError("value too long", "22001")), "Refused"),
        (_wrapped(ProgrammingError, _PgError("syntax error", "42601")), ""),
    ],
)  # fmt: skip
def test_each_driver_error_becomes_the_store_error_that_says_what_went_wrong(
    exc: Exception, expected: str
) -> None:
    found = edge.translate(exc, PLACE)  # type: ignore[arg-type]
    assert type(found) is getattr(errors, f"Store{expected}Error")
    assert str(found).startswith("database postgresql://campaign:***@db.example:5432/campaign: ")
    assert "UPDATE" not in str(found) and "callback body" not in str(found)


def test_the_password_is_kept_out_of_a_driver_message_that_quotes_it() -> None:
    exc = _wrapped(OperationalError, Exception("password pw-x9 refused\nDETAIL: more"))
    found = edge.translate(exc, PLACE)
    assert "pw-x9" not in str(found)
    assert found.reason == "password *** refused"


class _Group(edge.Group):
    def __init__(self) -> None:  # no database: only the place is read
        self._db = edge.Handle(None, None, None, "", PLACE)  # type: ignore[arg-type]
        self.closed = False

    async def fails(self) -> None:
        raise _wrapped(OperationalError, sqlite3.OperationalError("database is locked"))

    async def rows(self) -> AsyncIterator[int]:
        try:
            yield 1
            raise _wrapped(OperationalError, sqlite3.OperationalError("disk I/O error"))
        finally:
            self.closed = True

    async def _private(self) -> None:
        raise _wrapped(OperationalError, sqlite3.OperationalError("database is locked"))


async def test_public_coroutines_and_generators_are_guarded_private_ones_not() -> None:
    group = _Group()
    with pytest.raises(errors.StoreUnavailableError) as caught:
        await group.fails()
    assert isinstance(caught.value.__cause__, OperationalError)
    with pytest.raises(errors.StoreUnavailableError, match="disk I/O error"):
        async for _ in group.rows():
            pass
    with pytest.raises(OperationalError):
        await group._private()


async def test_a_generator_left_early_is_closed_at_once() -> None:
    group = _Group()
    pages = group.rows()
    async for _ in pages:
        break
    await pages.aclose()  # type: ignore[attr-defined]
    assert group.closed


def test_store_errors_are_campaign_errors_and_keep_their_type_when_copied() -> None:
    for kind in (
        errors.StoreUnavailableError,
        errors.StoreSchemaError,
        errors.StoreRefusedError,
        errors.CampaignBusyError,
        errors.ReportReadError,
    ):
        assert issubclass(kind, errors.StoreError)
        assert issubclass(kind, errors.CampaignError)
        error = kind("database x: it failed", reason="it failed")
        copy = type(error)(*error.args)  # as the receiver hands one error to many waiters
        assert str(copy) == "database x: it failed"


async def test_a_store_call_runs_to_its_end_when_its_caller_is_cancelled() -> None:
    """The caller's cancellation (even a second one) is raised once the call is over, and the
    call's own error, if any, is retrieved (no "exception never retrieved")."""
    events: list[str] = []
    release = asyncio.Event()

    async def call(fail: bool) -> int:
        events.append("begin")
        await release.wait()
        events.append("commit")
        if fail:
            raise RuntimeError("database is locked")
        return 1

    for fail in (False, True):
        events.clear()
        release.clear()
        caller = asyncio.create_task(edge.whole(call(fail)))
        await asyncio.sleep(0.01)
        caller.cancel()
        await asyncio.sleep(0.01)
        caller.cancel()  # cancelled again while it waits for the call
        await asyncio.sleep(0.01)
        assert not caller.done() and events == ["begin"]
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await caller
        assert events == ["begin", "commit"]


async def test_a_store_call_cancelled_itself_is_cancelled() -> None:
    inner: asyncio.Future[None] = asyncio.ensure_future(asyncio.sleep(10))
    outer = asyncio.create_task(edge.whole(inner))
    await asyncio.sleep(0.01)
    inner.cancel()  # as the loop's shutdown cancels every task
    with pytest.raises(asyncio.CancelledError):
        await outer
