"""The load's SQLite insert alone: a file's slices, staged as `campaign run` stages them, then
stored with the ingest's own statements, without the rest of the run.

Reproduce:  .venv/bin/python bench/bench_insert.py                 (1M rows, 3 times, ~1 min)
            .venv/bin/python bench/bench_insert.py --rows 200000 --repeat 5

The file is `bench_batch.py`'s (numbers in random order, two parameters); the slices are
`campaign run`'s (`INGEST_SLICE_ROWS`), chunked by 1,000 for SMS. Each repeat stores them into
a new database at the schema's head, with the store's pragmas (WAL, its page cache), one
transaction per slice, as `Store.ingest` does. It prints the time to stage the slices (Polars:
their JSON) and each repeat's time to store them. Run it on two commits in turns to compare
them: the figures move with the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_batch import write_csv
from campaign import loading
from campaign.models import Channel
from campaign.run.load import INGEST_SLICE_ROWS
from campaign.store import ingest, staging
from campaign.store.engine import SQLITE_CACHE_MB
from campaign.store.repository import Store

NOW = datetime(2026, 1, 1, tzinfo=UTC)


async def empty_database(path: Path) -> int:
    """A database at the schema's head with one campaign; its id."""
    store = await Store.open(f"sqlite:///{path}")
    try:
        campaign = await store.campaigns.create(
            name="bench", key="K", mode="batch", channel="SMS", definition="{}", source="-", now=NOW
        )
        return campaign.id
    finally:
        await store.close()


def staged_slices(csv: Path, chunking: staging.Chunking) -> tuple[list[staging.Staged], float]:
    spec = loading.LoadSpec(csv, Channel.SMS, "phone", "US", ("first_name", "code"), {})
    source = loading.open_recipients(spec)
    found = source.duplicates()
    staged, seconds = [], 0.0
    for frame in source.slices(INGEST_SLICE_ROWS):
        started = time.perf_counter()
        staged.append(staging.stage(found.mark(frame), chunking, "sqlite"))
        seconds += time.perf_counter() - started
    return staged, seconds


def store_slices(
    path: Path, campaign_id: int, staged: list[staging.Staged], chunking: staging.Chunking
) -> float:
    connection = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
        connection.execute(f"PRAGMA {pragma}")
    connection.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_MB * 1024}")
    params = {"cid": campaign_id, "channel": "SMS", "now": ingest._sqlite_timestamp(NOW)}
    started, first = time.perf_counter(), 1
    for part in staged:
        connection.execute("BEGIN IMMEDIATE")
        for source in ingest._json_sources(part, chunking):
            statement = ingest._insert_sql(source.select)
            connection.execute(statement, source.bind({**params, "first": first}))
        connection.execute("COMMIT")
        first += -(-part.valid // chunking.size)
    seconds = time.perf_counter() - started
    stored = connection.execute("SELECT count(*) FROM recipients").fetchone()[0]
    connection.close()
    assert stored == sum(part.height for part in staged), stored
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"command: {' '.join([sys.executable, *sys.argv])}")
    chunking = staging.Chunking(1000, "K")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        write_csv(workdir / "recipients.csv", args.rows)
        staged, staging_s = staged_slices(workdir / "recipients.csv", chunking)
        empty = workdir / "empty.db"
        campaign_id = asyncio.run(empty_database(empty))
        print(f"{args.rows:,} rows in {len(staged)} slices: staged (JSON) in {staging_s:.2f} s")
        for repeat in range(1, args.repeat + 1):
            database = workdir / f"run{repeat}.db"
            shutil.copy(empty, database)
            seconds = store_slices(database, campaign_id, staged, chunking)
            print(f"    insert {repeat}  {seconds:.2f} s ({args.rows / seconds:,.0f} rows/s)")
            database.unlink()


if __name__ == "__main__":
    main()
