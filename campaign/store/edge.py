"""The store's edge: what its query groups share, and where database errors become
:class:`~campaign.errors.StoreError`.

Every public coroutine (and async generator) of a :class:`Group` runs inside
:func:`translating`: a ``SQLAlchemyError`` leaves it as the :class:`StoreError` subclass that says
what went wrong, its message naming the database with the password masked and the driver's first
line (never the SQL or its parameters), the original kept as ``__cause__``. Nothing outside
``campaign/store/`` sees SQLAlchemy's exceptions.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    ResourceClosedError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from campaign.errors import (
    StoreError,
    StoreRefusedError,
    StoreSchemaError,
    StoreUnavailableError,
)

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from campaign.store.engine import Checkpointer, WriteGate

# Postgres SQLSTATEs of a schema that is not this version's: a missing table, column, function.
_SCHEMA_STATES = frozenset({"42P01", "42703", "42883"})
_SCHEMA_WORDS = ("no such table", "no such column", "has no column named")
_UNAVAILABLE = (
    OperationalError,
    InterfaceError,
    DisconnectionError,
    PoolTimeoutError,
    ResourceClosedError,
)


@dataclass(frozen=True)
class Place:
    """Which database, as messages show it: its URL with the password masked, and the password
    (to be kept out of any driver message quoted)."""

    shown: str
    password: str | None = field(default=None, repr=False)

    @classmethod
    def of(cls, url: str) -> Place:
        try:
            parsed = make_url(url)
        except Exception:  # an invalid URL is reported by whoever parses it
            return cls("<invalid database URL>")
        password = parsed.password
        return cls(parsed.render_as_string(hide_password=True), str(password) if password else None)


def reason_of(exc: BaseException) -> str:
    """The driver's first line (or the exception's type), without the SQL under it."""
    orig = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    first = next((line.strip() for line in str(orig).splitlines() if line.strip()), "")
    return first or type(orig).__name__


def translate(exc: SQLAlchemyError, place: Place) -> StoreError:
    """The :class:`StoreError` that says what ``exc`` means (not raised: ``raise ... from``)."""
    reason = reason_of(exc)
    if place.password:
        reason = reason.replace(place.password, "***")
    message = f"database {place.shown}: {reason}"
    orig = getattr(exc, "orig", None)
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    kind: type[StoreError] = StoreError
    if state in _SCHEMA_STATES or any(word in reason for word in _SCHEMA_WORDS):
        kind = StoreSchemaError
    elif isinstance(exc, IntegrityError | DataError):
        kind = StoreRefusedError
    elif isinstance(exc, _UNAVAILABLE):
        kind = StoreUnavailableError
    return kind(message, reason=reason)


@contextlib.contextmanager
def translating(place: Place) -> Iterator[None]:
    """Inside: a ``SQLAlchemyError`` leaves as a :class:`StoreError` (``__cause__``: it)."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise translate(exc, place) from exc


@dataclass(frozen=True)
class Handle:
    """What every query group holds: the engine, the write gate, the checkpointer, the URL."""

    engine: AsyncEngine
    writes: WriteGate
    checkpoints: Checkpointer
    url: str
    place: Place

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name


_F = TypeVar("_F", bound=Callable[..., Any])
_T = TypeVar("_T")


def _guard(function: _F) -> _F:
    if inspect.isasyncgenfunction(function):

        @functools.wraps(function)
        async def generator(self: Group, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            with translating(self._db.place):
                inner = function(self, *args, **kwargs)
                try:
                    async for item in inner:
                        yield item
                finally:  # closed now, as the caller closes this one (its cleanup runs)
                    await inner.aclose()

        return generator  # type: ignore[return-value]

    @functools.wraps(function)
    async def coroutine(self: Group, *args: Any, **kwargs: Any) -> Any:
        with translating(self._db.place):
            return await whole(function(self, *args, **kwargs))

    return coroutine  # type: ignore[return-value]


async def whole(call: Awaitable[_T]) -> _T:
    """Await ``call`` (a store call) to its end, even when the caller is cancelled meanwhile:
    the caller's cancellation is raised once the call is over.

    A statement cut short by a cancellation leaves its cursor alive in the traceback, and
    SQLite cannot close a connection whose statement is not finalized: that connection, taken
    out of the pool, keeps its write lock until the garbage collector frees the cursor. Every
    other write then waits out the busy timeout and fails "database is locked" (a run's end,
    which cancels its heartbeat, could leave the database locked for all that followed)."""
    task = asyncio.ensure_future(call)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        if task.done():  # the call itself was cancelled (the loop is shutting down)
            raise
        while not task.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait([task])
        if not task.cancelled():
            task.exception()  # retrieved: the caller's cancellation is what it sees
        raise


class Group:
    """A group of the store's queries (``store.campaigns``, ``store.recipients``...). Its public
    coroutines and async generators are wrapped by :func:`translating` when the class is made:
    the store's edge is the same for every group, with no ``try`` in any query."""

    def __init__(self, db: Handle) -> None:
        self._db = db
        self.engine = db.engine
        self.writes = db.writes

    @property
    def dialect(self) -> str:
        return self._db.dialect

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, value in list(vars(cls).items()):
            if name.startswith("_"):
                continue
            if inspect.iscoroutinefunction(value) or inspect.isasyncgenfunction(value):
                setattr(cls, name, _guard(value))
