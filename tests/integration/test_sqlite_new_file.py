"""Several processes that open one new SQLite file at once (two cron runs, a run and
`campaign status`): switching the new file to WAL needs it to itself and does not wait for
the busy timeout, so without a retry one of them failed at once with "database is locked"
(12 of 60 tries of three processes)."""

from __future__ import annotations

import multiprocessing
from multiprocessing.synchronize import Barrier
from pathlib import Path

from sqlalchemy import text

from campaign.store.engine import create_engine_sync

PROCESSES = 3
TRIES = 20


def _open(path: str, barrier: Barrier, answers: multiprocessing.Queue[str]) -> None:
    engine = create_engine_sync(f"sqlite:///{path}")
    barrier.wait()
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        answers.put("ok")
    except Exception as exc:  # reported to the test, whatever it is
        answers.put(str(exc).splitlines()[0])
    finally:
        engine.dispose()


def test_processes_opening_a_new_file_at_once_all_get_in(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    failures = []
    for attempt in range(TRIES):
        path = str(tmp_path / f"new-{attempt}.db")
        barrier, answers = context.Barrier(PROCESSES), context.Queue()
        processes = [
            context.Process(target=_open, args=(path, barrier, answers)) for _ in range(PROCESSES)
        ]
        for process in processes:
            process.start()
        for process in processes:
            process.join(timeout=60)
        failures += [a for a in (answers.get(timeout=10) for _ in processes) if a != "ok"]
    assert failures == []
