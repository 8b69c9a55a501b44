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


class Clock:
    """Time that moves only when told, in binary fractions (so no rounding at the edges)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def _write_if_free(window: pacing.SlidingWindow, written: list[float], now: float) -> None:
    """Write now if the window has a place now; never wait for one."""
    asking = asyncio.create_task(window.acquire())
    await asyncio.sleep(0)  # a free place is granted without suspending
    if asking.done():
        asking.result().written()
        written.append(now)
    else:
        asking.cancel()
        await asyncio.gather(asking, return_exceptions=True)


async def _join_at_half_time(fill: bool) -> tuple[list[float], float]:
    """One worker alone at the full rate (16 per half second, evenly); at 1 s a second one
    joins and the first halves its share. From then on both write whenever their window has a
    place (no pacer: the worst case). The writes of both, and when the second joined."""
    clock = Clock()
    first = pacing.SlidingWindow(16, period=0.5, guard=0.0, clock=clock)
    second: pacing.SlidingWindow | None = None
    written: list[float] = []
    step = 1 / 1024
    for tick in range(int(3 / step)):
        clock.now = tick * step
        if clock.now == 1.0:
            first.limit = 8
            second = pacing.SlidingWindow(8, period=0.5, guard=0.0, clock=clock)
            if fill:
                second.fill()
        if second is None:
            if tick % 32 == 0:  # every 1/32 s: 16 a half second
                await _write_if_free(first, written, clock.now)
            continue
        await _write_if_free(first, written, clock.now)
        await _write_if_free(second, written, clock.now)
    return written, 1.0


async def test_a_joining_worker_with_a_filled_window_and_one_that_halves_keep_the_rate() -> None:
    """Sinch counts what both wrote. The halving worker keeps half of what it wrote in its
    window, though all of it still counts; a joining worker with an empty window would write
    its whole share at once on top of it. Filled, it gets a place only as one of the dropped
    writes would have left: together they never pass the rate, and lose nothing to it."""
    written, joined = await _join_at_half_time(fill=True)
    assert worst_window(written, 0.5) <= 16
    after = [t for t in written if joined <= t < joined + 1.0]
    assert len(after) >= 2 * 16 - 1  # the rate, straight on

    empty, _ = await _join_at_half_time(fill=False)
    assert worst_window(empty, 0.5) >= 16 + 8 - 1  # the burst that a full window prevents


async def test_a_filled_window_frees_its_places_evenly_from_now() -> None:
    clock = Clock()
    window = pacing.SlidingWindow(4, period=1.0, guard=0.0, clock=clock)
    (await window.acquire()).written()  # what was written before does not matter: replaced
    window.fill()
    written: list[float] = []
    step = 1 / 64
    for tick in range(int(2 / step) + 1):
        clock.now = tick * step
        await _write_if_free(window, written, clock.now)
    assert written == [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]
