"""The HTML report against the CSV report of the same 1M-recipient campaign (SQLite).

    .venv/bin/python -m bench.bench_report [--rows 1000000]

Builds the campaign straight into a migrated SQLite database (one executemany of generated
rows: a few seconds), then times `campaign report NAME -o report.csv` and `-o report.html`
through the CLI, each run twice, and prints the best of each and their ratio. The aim: the HTML
report at most 2x the CSV's (it reads a few hundred aggregated rows, the CSV every row).
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STATUSES = [("DELIVERED", 70), ("READ", 15), ("FAILED", 8), ("QUEUED", 5), ("REJECTED", 2)]
CODES = ["RECIPIENT_NOT_REACHABLE", "CHANNEL_FAILURE", "EXPIRED"]


def build(db: Path, rows: int) -> None:
    env = {**os.environ, "CAMPAIGN_DATABASE_URL": f"sqlite:///{db}"}
    subprocess.run([sys.executable, "-m", "campaign", "db", "upgrade"], env=env, check=True)
    rng = random.Random(5)
    weights = [w for _, w in STATUSES]
    names = [s for s, _ in STATUSES]
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO campaigns (id, name, key, mode, channel, definition, source, state,"
            " total_rows, created_at, updated_at) VALUES (1, 'bench', 'k1', 'batch', 'SMS',"
            " '{}', 'bench.csv', 'DONE', ?, '2026-12-05 08:00:00', '2026-12-05 09:00:00')",
            (rows,),
        )

        def generated():  # type: ignore[no-untyped-def]
            for position in range(1, rows + 1):
                status = rng.choices(names, weights)[0]
                failed = status == "FAILED"
                at = f"2026-12-05 08:{(position - 1) * 60 // rows:02d}:{position % 60:02d}.000000"
                yield (
                    1,
                    position,
                    "SMS",
                    f"+1201{position:07d}",
                    f"+1201{position:07d}",
                    status,
                    f"01MSG{position:021d}" if status != "REJECTED" else None,
                    rng.choice(CODES) if failed else None,
                    at,
                    at,
                    at,
                    "SMS" if status in ("DELIVERED", "READ") else None,
                )

        conn.executemany(
            "INSERT INTO recipients (campaign_id, position, channel, identity, identity_raw,"
            " status, message_id, error_code, sent_at, updated_at, status_at, channel_used)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            generated(),
        )


def timed(db: Path, output: Path) -> float:
    env = {**os.environ, "CAMPAIGN_DATABASE_URL": f"sqlite:///{db}"}
    best = float("inf")
    for _ in range(2):
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "campaign", "report", "bench", "-o", str(output)],
            env=env,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            sys.exit(done.stderr)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        started = time.perf_counter()
        build(db, args.rows)
        print(f"built {args.rows:,} recipients in {time.perf_counter() - started:.1f} s")
        csv = timed(db, Path(tmp) / "report.csv")
        html = timed(db, Path(tmp) / "report.html")
        size = (Path(tmp) / "report.html").stat().st_size / 1e6
    print(f"CSV report:  {csv:.2f} s")
    print(f"HTML report: {html:.2f} s ({size:.1f} MB), {html / csv:.2f}x the CSV's")
    print(f"reproduce: .venv/bin/python -m bench.bench_report --rows {args.rows}")


if __name__ == "__main__":
    main()
