"""Live progress of a run: a rich progress bar on a terminal, a line every few seconds otherwise.

It only reads counters (:class:`campaign.models.DispatchStats`); it never touches the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn
from rich.table import Column, Table

from campaign import estimate
from campaign.models import AppQueue, DispatchStats


@dataclass(frozen=True)
class Snapshot:
    done: int
    total: int
    rate: float
    limit: float | None
    detail: str
    unit: str = "req/s"
    eta: str = ""  # the clocks of what is left: shown before the rest, so that it stays seen


class RateMeter:
    """Requests per second over the last few seconds (the current rate, not the average)."""

    def __init__(self, span: float = 3.0, *, start: float | None = None) -> None:
        self.span = span
        self._points: deque[tuple[float, int]] = deque()
        if start is not None:
            self._points.append((start, 0))

    def rate(self, now: float, count: int) -> float:
        self._points.append((now, count))
        while len(self._points) > 2 and now - self._points[1][0] >= self.span:
            self._points.popleft()
        first_time, first_count = self._points[0]
        elapsed = now - first_time
        return (count - first_count) / elapsed if elapsed > 0 else 0.0


def snapshot(
    stats: DispatchStats,
    total: int,
    already_done: int,
    limit: float | None,
    rate: float,
    per_request: int = 1,
    queue: AppQueue | None = None,
) -> Snapshot:
    """What to show, from the counters and the current ``rate`` (requests per second, each
    of up to ``per_request`` recipients): the counts, and the two clocks of what is left,
    behind the app's ``queue`` as the run models it."""
    done = already_done + stats.sent + stats.failed + stats.in_doubt
    detail = (
        f"queued {stats.sent:,} · failed {stats.failed:,} · in doubt {stats.in_doubt:,}"
        f" · retries {stats.retried:,} · 429s {stats.rate_limited:,}"
        f" · in flight {stats.in_flight:,}"
    )
    if stats.queue_full:  # sent again once the app's queue had room: nobody failed for it
        detail += f" · refused for a full queue {stats.queue_full:,}"
    left = max(0, total - done)
    clocks = estimate.clocks(
        messages=left,
        requests=math.ceil(left / per_request),
        rate=rate or limit,
        queued=queue.size if queue else None,
        outbound=queue.outbound if queue else None,
    )
    eta = clocks.text() if left or queue else ""
    if queue is not None:
        detail += f" · Sinch queue {queue.size:,}/{queue.limit:,} at {queue.outbound:,}/s"
    return Snapshot(done, total, rate, limit, detail, eta=eta)


def _rate_text(snap: Snapshot) -> str:
    limit = f" / {snap.limit:,.0f}" if snap.limit else ""
    return f"{snap.rate:,.0f}{limit} {snap.unit}"


class ProgressDisplay:
    """Shows a run's progress on ``console`` (stderr by default)."""

    def __init__(
        self,
        console: Console | None = None,
        *,
        interval: float | None = None,
        out: Console | None = None,
    ) -> None:
        self.console = console or Console(stderr=True)
        self.out = out or Console()  # summaries go to stdout, progress to stderr
        self.interactive = self.console.is_terminal
        self.interval = interval or (0.25 if self.interactive else 5.0)

    @contextlib.asynccontextmanager
    async def track(self, label: str, read: Callable[[], Snapshot]) -> AsyncIterator[None]:
        """Refresh the display from ``read()`` while the body runs; print a last state after."""
        started = time.monotonic()
        if self.interactive:
            # At 80 columns what matters fits on the line: the count, what is left to wait and
            # the rate; the detail takes the rest of the width, cut short rather than wrapped.
            progress = Progress(
                TextColumn("[bold]{task.description}", table_column=Column(no_wrap=True)),
                BarColumn(bar_width=10),
                TaskProgressColumn(),
                TextColumn("{task.completed:,.0f}/{task.total:,.0f}"),
                TextColumn("{task.fields[eta]}", table_column=Column(no_wrap=True)),
                TextColumn("{task.fields[rate]}", table_column=Column(no_wrap=True)),
                TextColumn(
                    "{task.fields[detail]}",
                    table_column=Column(no_wrap=True, overflow="ellipsis", ratio=1),
                ),
                console=self.console,
                transient=False,
                expand=True,
            )
            first = read()
            task_id = progress.add_task(
                label, total=first.total, completed=first.done, rate="", detail="", eta=""
            )

            def update() -> None:
                snap = read()
                progress.update(
                    task_id,
                    total=snap.total,
                    completed=snap.done,
                    rate=_rate_text(snap),
                    detail=snap.detail,
                    eta=snap.eta,
                )

            with progress:
                refresher = asyncio.create_task(self._every(update))
                try:
                    yield
                finally:
                    refresher.cancel()
                    await asyncio.gather(refresher, return_exceptions=True)
                    update()
            return

        def line() -> None:
            snap = read()
            elapsed = time.monotonic() - started
            eta = f" · {snap.eta}" if snap.eta else ""
            self.console.print(
                f"{label}: {snap.done:,}/{snap.total:,}{eta} · {_rate_text(snap)} · "
                f"{elapsed:,.0f}s · {snap.detail}",
                highlight=False,
            )

        refresher = asyncio.create_task(self._every(line))
        try:
            yield
        finally:
            refresher.cancel()
            await asyncio.gather(refresher, return_exceptions=True)
            line()

    async def _every(self, fn: Callable[[], None]) -> None:
        while True:
            await asyncio.sleep(self.interval)
            fn()

    def table(self, title: str, rows: Sequence[tuple[str, str]]) -> None:
        table = Table(title=title, show_header=False, title_justify="left")
        table.add_column(style="bold")
        table.add_column(justify="right")
        for label, value in rows:
            table.add_row(label, value)
        self.out.print(table)


def default_console() -> Console:
    return Console(stderr=True, force_terminal=None if sys.stderr.isatty() else False)
