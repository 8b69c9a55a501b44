"""Database URLs, engines and migrations.

Users write plain URLs (``sqlite:///campaign.db``, ``postgresql://user@host/db``); the store
picks the drivers: aiosqlite / psycopg for the running engine, pysqlite / psycopg for Alembic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from campaign.errors import ConfigError, StoreSchemaError
from campaign.store.edge import Place, translating

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

logger = logging.getLogger(__name__)


def _parse(url: str) -> URL:
    try:
        return make_url(url)
    except ArgumentError:
        raise ConfigError("the database URL is not a valid SQLAlchemy URL") from None


def safe_url(url: str) -> str:
    """The URL with any password masked, for messages and logs."""
    try:
        return _parse(url).render_as_string(hide_password=True)
    except ConfigError:
        return "<invalid database URL>"


def async_url(url: str) -> URL:
    parsed = _parse(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend == "postgresql":
        return parsed.set(drivername="postgresql+psycopg")
    raise ConfigError(f"unsupported database {backend!r}: use sqlite or postgresql")


def sync_url(url: str) -> URL:
    parsed = async_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.set(drivername="sqlite")
    return parsed


# Seconds a SQLite write waits for another process's lock before it fails ("database is
# locked"); ``sqlite:///campaign.db?timeout=5`` sets another.
SQLITE_BUSY_TIMEOUT = 30.0


# SQLite's page cache per connection, in MiB (SQLite's own default); ``?cache_mb=64`` sets
# another. Every connection of the pool holds its own, so a larger one costs several times its
# size in memory, which a 10M-row run cannot spare (docs/benchmarks.md).
SQLITE_CACHE_MB = 2


# WAL pages after which a commit copies the WAL into the database itself (SQLite's default:
# 1,000). A load's slice writes about 2,000 pages, so at the default every slice's commit would
# wait for that copy and its fsyncs; the load has a Checkpointer copy them beside the next
# slice's insert instead, and this is the bound on the WAL (40 MB) for every writer.
SQLITE_AUTOCHECKPOINT_PAGES = 10_000


_N = TypeVar("_N", int, float)


def _url_number(parsed: URL, name: str, kind: type[_N], default: _N, least: _N, meaning: str) -> _N:
    """The SQLite URL's ``name`` query as a ``kind`` of at least ``least``, else ``default``."""
    value = parsed.query.get(name)
    if value is None:
        return default
    try:
        number = kind(value if isinstance(value, str) else value[0])
    except ValueError:
        raise ConfigError(f"the SQLite URL's {name} must be {meaning}") from None
    if number < least:
        raise ConfigError(f"the SQLite URL's {name} must be at least {least:g}")
    return number


def sqlite_busy_timeout(parsed: URL) -> float:
    """The URL's ``timeout`` query (seconds), else :data:`SQLITE_BUSY_TIMEOUT`."""
    return _url_number(parsed, "timeout", float, SQLITE_BUSY_TIMEOUT, 0.0, "a number of seconds")


def sqlite_cache_mb(parsed: URL) -> int:
    """The URL's ``cache_mb`` query (MiB of page cache per connection), else
    :data:`SQLITE_CACHE_MB`."""
    return _url_number(parsed, "cache_mb", int, SQLITE_CACHE_MB, 1, "a whole number of MiB")


def _sqlite_pragmas(dbapi_connection: Any, busy_timeout: float, cache_mb: int) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (status, report, the receiver) work while a run writes.
    _wal(cursor, busy_timeout)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA cache_size=-{cache_mb * 1024}")  # negative: KiB, not pages
    cursor.execute(f"PRAGMA wal_autocheckpoint={SQLITE_AUTOCHECKPOINT_PAGES}")
    cursor.close()


def _wal(cursor: Any, busy_timeout: float) -> None:
    """Switch a new database file to WAL. The switch needs the file to itself and does not
    wait for the busy timeout: two runs that open a new file at once found it "database is
    locked" at once. So it is tried again, every 50 ms, for up to the busy timeout (a file
    already in WAL is switched at once: this only waits at a new file's first moments)."""
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except Exception as exc:  # the driver's OperationalError, adapted or not
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def _sqlite_file(parsed: URL) -> Path | None:
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def _sqlite_connect(busy_timeout: float, cache_mb: int) -> Any:
    def connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver would only BEGIN at the first write (and never for DDL), leaving earlier
        # reads outside the transaction; SQLAlchemy's documented remedy: no driver BEGIN, emit
        # our own in "begin".
        dbapi_connection.isolation_level = None
        _sqlite_pragmas(dbapi_connection, busy_timeout, cache_mb)

    return connect


def _sqlite_driver(parsed: URL) -> tuple[URL, dict[str, Any]]:
    """The URL and connect arguments that the driver takes (``cache_mb`` is ours)."""
    return parsed.difference_update_query(["cache_mb"]), {"timeout": sqlite_busy_timeout(parsed)}


def _sqlite_engine(engine: Engine, parsed: URL) -> None:
    """Every SQLite connection of ``engine`` (either engine's): the URL's busy timeout and
    page cache, WAL, and transactions begun by us (:func:`_sqlite_begin`)."""
    timeout, cache_mb = sqlite_busy_timeout(parsed), sqlite_cache_mb(parsed)
    event.listen(engine, "connect", _sqlite_connect(timeout, cache_mb))
    event.listen(engine, "begin", _sqlite_begin)


def _sqlite_begin(conn: Connection) -> None:
    """BEGIN for every transaction, so its reads belong to it; BEGIN IMMEDIATE (take the write
    lock now, wait for it with busy_timeout) for read-then-write work such as applying events,
    which would otherwise fail when another writer commits between its read and its write."""
    immediate = conn.get_execution_options().get(SQLITE_IMMEDIATE, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


# Execution option: start this connection's transactions with BEGIN IMMEDIATE on SQLite.
SQLITE_IMMEDIATE = "campaign_sqlite_immediate"


class WriteGate:
    """Where writing transactions begin. On SQLite, one at a time in this process: SQLite
    takes one writer anyway, and a second connection waiting for the lock would poll it with
    sleeps of up to 100 ms (its busy handler), which costs more than the write. On Postgres,
    no gate: row locks do the work.

    On SQLite every writing transaction takes the write lock at BEGIN (BEGIN IMMEDIATE), and so
    waits for other processes through ``busy_timeout``. A deferred transaction that reads first
    cannot: when another process (the receiver) commits between its read and its first write,
    SQLite fails the write at once with "database is locked", whatever the busy timeout."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._lock = asyncio.Lock() if engine.dialect.name == "sqlite" else None

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A writing transaction (on SQLite, holding the write lock from its start)."""
        async with self._lock or contextlib.nullcontext(), self._engine.connect() as conn:
            await conn.execution_options(**{SQLITE_IMMEDIATE: True})
            async with conn.begin():
                yield conn


class Checkpointer:
    """On SQLite, copies what the WAL holds into the database (a PASSIVE checkpoint) in the
    background: a large write (a load's slice) asks for it after its commit, so the copy runs
    beside the next write instead of inside its commit (see
    :data:`SQLITE_AUTOCHECKPOINT_PAGES`). A checkpoint runs on its own connection, outside any
    transaction, and never waits for readers or writers; one at a time. It only saves time:
    when one fails, the next commit past the bound copies the WAL as SQLite always does."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._task: asyncio.Task[None] | None = None

    def soon(self) -> None:
        """Start a checkpoint unless one is under way (nothing on Postgres)."""
        if self._engine.dialect.name != "sqlite" or (self._task and not self._task.done()):
            return
        self._task = asyncio.get_running_loop().create_task(self._checkpoint())

    async def _checkpoint(self) -> None:
        try:
            async with self._engine.connect() as conn:
                raw = await conn.get_raw_connection()
                driver: Any = raw.driver_connection  # aiosqlite's: no BEGIN of ours around it
                cursor = await driver.execute("PRAGMA wal_checkpoint(PASSIVE)")
                await cursor.close()
        except (SQLAlchemyError, sqlite3.Error, OSError) as exc:
            logger.warning(
                "background checkpoint failed: %s", exc, extra={"action": "checkpoint_failed"}
            )

    async def wait(self) -> None:
        """Until the checkpoint under way, if any, is over (before the engine is disposed)."""
        if self._task is not None:
            await asyncio.wait([self._task])


def create_engine_async(url: str) -> AsyncEngine:
    """The running engine. Create it inside the event loop; ``await engine.dispose()`` last."""
    parsed = async_url(url)
    if parsed.get_backend_name() == "sqlite":
        driver_url, connect_args = _sqlite_driver(parsed)
        engine = create_async_engine(driver_url, connect_args=connect_args)
        _sqlite_engine(engine.sync_engine, parsed)
        return engine
    return create_async_engine(parsed, pool_size=5, max_overflow=5, pool_pre_ping=True)


def create_engine_sync(url: str) -> Engine:
    parsed = sync_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed)
    driver_url, connect_args = _sqlite_driver(parsed)
    sync_engine = create_engine(driver_url, connect_args=connect_args)
    _sqlite_engine(sync_engine, parsed)
    return sync_engine


# --- migrations --------------------------------------------------------------------------------
#
# Alembic (with Mako and Pygments, a tenth of a second to import) is imported only when the
# schema is to be changed or inspected: every command checks that the schema is at
# HEAD_REVISION by reading Alembic's version table itself.

# The newest migration under migrations/versions (tests/integration/test_store.py checks it
# against them).
HEAD_REVISION = "0016"


def alembic_config(connection: Connection | None = None) -> AlembicConfig:
    """Alembic's config pointing at the migrations shipped with the package."""
    from alembic.config import Config as AlembicConfig

    script_location = resources.files("migrations")
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(script_location))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str | None:
    """The newest migration, as Alembic reads it from the migration scripts."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    """The revision the database's schema is at (None: none yet), from Alembic's version
    table."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars()
    found = versions.all()
    return found[0] if len(found) == 1 else None


@dataclass(frozen=True)
class Migrated:
    """What :func:`upgrade_sync` did: the schema's revision before and after (None: no schema),
    and the migrations it ran, oldest first (none: the schema was at ``revision`` already)."""

    before: str | None
    after: str | None
    steps: tuple[str, ...]


def revision_name(revision: str | None) -> str:
    """A revision as its migration script is named (``0011_duplicates_decided_by_the_load``);
    ``(empty)`` for a database without a schema."""
    if revision is None:
        return "(empty)"
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config()).get_revision(revision)
    return Path(script.path).stem if script is not None and script.path else revision


def upgrade_sync(url: str, revision: str = "head") -> Migrated:
    """Run the migrations up to ``revision`` (blocking), and say what was run. A database that
    cannot be used: :class:`~campaign.errors.StoreError`."""
    with translating(Place.of(url)):
        return _upgrade(url, revision)


def _upgrade(url: str, revision: str) -> Migrated:
    from alembic import command
    from alembic.script import ScriptDirectory

    parsed = sync_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = _sqlite_file(parsed)
        if path is not None and not path.parent.exists():
            raise ConfigError(f"database directory {path.parent} does not exist")
    engine = create_engine_sync(url)
    try:
        with engine.connect() as connection:
            # On SQLite, one transaction that holds the write lock from its start: two runs
            # that start at once on a new database migrate it one after the other (the second
            # finds it at head), not both at once ("table campaigns already exists").
            connection.execution_options(**{SQLITE_IMMEDIATE: True})
            with connection.begin():
                # Read in the same transaction: on SQLite, no other process migrates between.
                before = current_revision(connection)
                command.upgrade(alembic_config(connection), revision)
                after = current_revision(connection)
    finally:
        engine.dispose()
    steps: tuple[str, ...] = ()
    if after is not None and after != before:
        script = ScriptDirectory.from_config(alembic_config())
        ran = script.iterate_revisions(after, before or "base")
        steps = tuple(reversed([step.revision for step in ran if step is not None]))
    return Migrated(before, after, steps)


def downgrade_sync(url: str, revision: str) -> None:
    from alembic import command

    with translating(Place.of(url)):
        _downgrade(command, url, revision)


def _downgrade(command: Any, url: str, revision: str) -> None:
    engine = create_engine_sync(url)
    try:
        with engine.begin() as connection:
            command.downgrade(alembic_config(connection), revision)
    finally:
        engine.dispose()


async def prepare(engine: AsyncEngine, url: str) -> None:
    """Make sure the schema is at head: SQLite is migrated automatically, Postgres must have been
    upgraded with ``campaign db upgrade`` (schema changes there are an operator's decision)."""
    async with engine.connect() as connection:
        current = await connection.run_sync(current_revision)
    if current == HEAD_REVISION:
        return
    if engine.dialect.name == "sqlite":
        await asyncio.to_thread(upgrade_sync, url)
        return
    raise StoreSchemaError(
        f"the database {safe_url(url)} is at schema revision {current or 'none'}, not "
        f"{HEAD_REVISION}: run `campaign db upgrade`"
    )
