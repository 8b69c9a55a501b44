"""The pacer (campaign.sending.pacer): its spread under the window, and a worker joining others."""

from __future__ import annotations

import asyncio
import time

import pytest

from campaign import pacing
from campaign.sending.pacer import SPREAD_MARGIN, Pacer, make_limiter


@pytest.mark.parametrize("rate", [800.0, 400.0, 800.0 / 3, 30.0])
def test_the_pacer_leaks_the_same_part_under_any_share(rate: float) -> None:
    """Two workers at 400/s lose no more to the margin, together, than one at 800/s."""
    limiter = make_limiter(rate, pacing.GUARD)
    leak = limiter.max_rate / limiter.time_period
    assert leak == pytest.approx(rate / (1 + pacing.GUARD) * (1 - SPREAD_MARGIN))


async def test_a_joining_worker_sends_nothing_before_the_others_count_it() -> None:
    counted = asyncio.Event()
    calls = 0

    async def until_counted() -> None:
        nonlocal calls
        calls += 1
        await counted.wait()

    pacer = Pacer(40.0)
    pacer.join(until_counted)
    asking = [asyncio.create_task(pacer.grant()) for _ in range(3)]
    await asyncio.sleep(0.1)
    assert not any(task.done() for task in asking)
    counted.set()
    at = time.monotonic()
    grants = await asyncio.wait_for(asyncio.gather(*asking), 2.0)
    assert calls == 1  # one waits for the count; the others find it done
    # From the count on, as if it had been writing at its share: its first place frees one
    # share's step later (1.008 s / 40), not at once.
    assert time.monotonic() - at >= 0.02
    for grant in grants:
        grant.release()
