"""Benchmark: what the suppression check costs a load. A generated recipients file (bench_loading's
mixed formats) is loaded into a new SQLite database as `campaign run` loads it (first pass for
duplicates, slices staged and stored, one transaction each), once with an empty suppression list
and once against a list of ``--list`` identities (a tenth of them in the file), where the load
reads the list once and marks each slice's rows on it as it stages them (a Polars ``is_in``;
store.suppression.identities, staging.staged_frame). Each load in turn,
``--runs`` times; the median of each and their ratio are printed (the target is 1.25 at most).

Reproduce:  .venv/bin/python bench/bench_suppression.py                  (1M rows, 1M list)
            .venv/bin/python bench/bench_suppression.py --rows 200000 --list 200000 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_loading import generate
from campaign import loading
from campaign.models import Channel, Status
from campaign.store.repository import Store

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SLICE = 250_000


def _spec(path: Path) -> loading.LoadSpec:
    return loading.LoadSpec(
        path=path,
        channel=Channel.SMS,
        identity_column="phone",
        default_country="US",
        parameters=("first_name", "code"),
        defaults={"first_name": "there"},
    )


def suppression_list(path: Path, size: int, seed: int = 11) -> list[str]:
    """``size`` identities: a tenth of them valid identities of the file, the rest other
    numbers."""
    source = loading.open_recipients(_spec(path))
    found: list[str] = []
    for frame in source.slices(SLICE):
        found.extend(frame["identity"].drop_nulls().to_list())
    rng = random.Random(seed)
    ours = rng.sample(found, min(len(found), size // 10))
    others = {f"+4479{rng.randrange(10**8):08d}" for _ in range(size - len(ours))}
    return ours + sorted(others)[: size - len(ours)]


def fill_list(db: Path, identities: list[str]) -> None:
    """The list, written directly (not timed)."""
    connection = sqlite3.connect(db)
    connection.executemany(
        "INSERT OR IGNORE INTO suppressions (identity, source, created_at) VALUES (?, 'IMPORT', ?)",
        [(i, "2026-01-01 00:00:00") for i in identities],
    )
    connection.commit()
    connection.close()


async def _new_store(db: Path) -> tuple[Store, int]:
    store = await Store.open(f"sqlite:///{db}")
    campaign = await store.campaigns.create(
        name="bench",
        key="K",
        mode="individual",
        channel="SMS",
        definition="{}",
        source="-",
        now=NOW,
    )
    return store, campaign.id


async def timed_load(path: Path, db: Path, check: bool) -> tuple[float, int]:
    """Seconds to load ``path`` into the database at ``db`` (with the check: then the UPDATE),
    and how many recipients it suppressed."""
    store, campaign_id = await _new_store(db)
    try:
        started = time.perf_counter()
        source = loading.open_recipients(_spec(path))
        found = source.duplicates()
        listed = await store.suppression.identities() if check else None
        for frame in source.slices(SLICE):
            staged = store.ingest.stage(found.mark(frame), suppressed=listed)
            await store.ingest.write(campaign_id, "SMS", staged, NOW)
        seconds = time.perf_counter() - started
        counts = await store.recipients.counts(campaign_id)
        suppressed = counts.get(Status.SUPPRESSED, 0)
        return seconds, suppressed
    finally:
        await store.close()


async def _prepared(tmp: Path, name: str, identities: list[str] | None) -> Path:
    db = tmp / f"{name}.db"
    db.unlink(missing_ok=True)
    store, _ = await _new_store(db)  # the schema, then the list
    await store.close()
    if identities:
        fill_list(db, identities)
    return db


async def main_async(rows: int, size: int, runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        csv = tmp / "recipients.csv"
        generate(csv, rows)
        identities = suppression_list(csv, size)
        print(f"{rows:,} rows, a suppression list of {len(identities):,} identities")
        plain: list[float] = []
        checked: list[float] = []
        for run in range(runs):
            db = await _prepared(tmp, f"plain{run}", None)
            seconds, _ = await timed_load(csv, db, check=False)
            plain.append(seconds)
            db = await _prepared(tmp, f"checked{run}", identities)
            seconds, suppressed = await timed_load(csv, db, check=True)
            checked.append(seconds)
            print(
                f"run {run + 1}: without a list {plain[-1]:.2f} s, against the list "
                f"{checked[-1]:.2f} s ({suppressed:,} suppressed)"
            )
        a, b = statistics.median(plain), statistics.median(checked)
        print(f"median: without {a:.2f} s, with {b:.2f} s: {b / a:.3f}x (target: 1.25x at most)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--list", type=int, default=1_000_000, dest="size")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    asyncio.run(main_async(args.rows, args.size, args.runs))


if __name__ == "__main__":
    main()
