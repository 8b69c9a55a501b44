"""The sliding window of writes (campaign.pacing): the limit holds by construction over the
moments requests are written, however late or bunched those writes come after their grants."""

from __future__ import annotations

import asyncio
import random
import time

from campaign import pacing

LIMIT = 40
PERIOD = 0.25
GUARD = 0.01


def worst_window(moments: list[float], span: float) -> int:
    """The most writes in any window of ``span`` seconds (each window starts at a write)."""
    moments = sorted(moments)
    return max(sum(1 for t in moments[i:] if t < start + span) for i, start in enumerate(moments))


async def _write_later(grant: pacing.Grant, delay: float, written: list[float]) -> None:
    await asyncio.sleep(delay)
    grant.written()
    written.append(time.monotonic())


async def test_late_and_bunched_writes_never_fill_a_window_past_the_limit() -> None:
    window = pacing.SlidingWindow(LIMIT, period=PERIOD, guard=GUARD)
    rng = random.Random(3)
    written: list[float] = []
    tasks = []
    started = time.monotonic()
    for i in range(6 * LIMIT):
        grant = await window.acquire()
        if i % 50 == 17:
            time.sleep(0.03)  # noqa: ASYNC251 (a loop stall: grants made before it are written after it)
        # Written a while after its grant (a slow task, a connection), some much later.
        delay = rng.choice([0.0, 0.001, 0.004, 0.02, 0.06])
        tasks.append(asyncio.create_task(_write_later(grant, delay, written)))
    await asyncio.gather(*tasks)
    elapsed = time.monotonic() - started
    assert worst_window(written, PERIOD) <= LIMIT
    assert worst_window(written, PERIOD + GUARD) <= LIMIT
    # And it still delivers about the limit per window: six windows' worth in about five.
    assert elapsed < 6 * (PERIOD + GUARD) + 0.1


async def test_a_grant_released_unwritten_frees_its_place() -> None:
    window = pacing.SlidingWindow(2, period=10.0)
    first, second = await window.acquire(), await window.acquire()
    waiting = asyncio.create_task(window.acquire())
    await asyncio.sleep(0.02)
    assert not waiting.done()  # both places taken, nothing written to expire
    first.release()
    third = await asyncio.wait_for(waiting, 1.0)
    first.written()  # after a release: nothing (a place is never counted twice)
    second.written()
    third.release()
    assert await asyncio.wait_for(window.acquire(), 1.0) is not None


async def test_a_written_place_frees_when_it_leaves_the_window() -> None:
    window = pacing.SlidingWindow(1, period=0.1, guard=0.0)
    grant = await window.acquire()
    waiting = asyncio.create_task(window.acquire())
    await asyncio.sleep(0.02)
    grant.written()
    at = time.monotonic()
    (await asyncio.wait_for(waiting, 1.0)).release()
    assert time.monotonic() - at >= 0.09


async def test_a_lower_limit_keeps_its_part_of_what_was_written() -> None:
    """A worker's share halves when another joins. It goes on at once at its new share (not
    after waiting for its last window to empty, while the joining worker may only use its own
    share), and its writes never fill a window past the higher limit. Neither an empty window
    (a burst on top of the last second) nor keeping every write (a pause) does both."""
    period = 0.4
    window = pacing.SlidingWindow(20, period=period, guard=0.0)
    written: list[float] = []
    for _ in range(20):  # the full share, spread over 0.3 s
        (await window.acquire()).written()
        written.append(time.monotonic())
        await asyncio.sleep(0.015)
    window.limit = 10
    halved = time.monotonic()
    first_after = None
    while time.monotonic() < halved + 2 * period:
        (await window.acquire()).written()
        written.append(time.monotonic())
        first_after = first_after or written[-1]
    assert first_after is not None
    # Every other write is kept: sending resumes when the second oldest leaves the window,
    # not when ten have left (keeping all twenty).
    assert first_after < written[10] + period - 0.05
    assert worst_window(written, period) <= 20
    assert worst_window([t for t in written if t >= halved], period) <= 10
