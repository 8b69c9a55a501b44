"""Write-ahead marks (campaign.sending.writeahead): requests do not wait for them, across
claims too; what a worker may have announced and not sent stays bounded; a background mark
that failed is taken up by the next mark, never left as a task whose exception nobody
retrieved."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

from campaign.errors import StoreUnavailableError
from campaign.sending.writeahead import WriteAhead
from campaign.store.records import Claim


class _Workers:
    def __init__(self) -> None:
        self.calls = 0

    async def may_send(self, worker: int, through: int | None = None) -> bool:
        self.calls += 1
        await asyncio.sleep(0)
        if self.calls == 2:  # the background mark: the database went away for a moment
            raise StoreUnavailableError("database x: gone", reason="gone")
        return True


class _Store:
    def __init__(self) -> None:
        self.workers = _Workers()


async def test_a_failed_background_mark_is_retrieved_by_the_next_mark() -> None:
    reported: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    store = _Store()
    ahead = WriteAhead(store, 1, asyncio.Event(), lambda: 80.0)  # type: ignore[arg-type]
    claims = [Claim(i, i, f"+1201555{i:04d}", "{}", 1) for i in range(1, 11)]
    # The first mark covers rows 1 and 2 (25 ms at 80/s); what is covered lasts less than
    # 50 ms: the next mark, in the background.
    assert await ahead.announce(claims, 0)
    await asyncio.sleep(0.01)  # fails
    assert await ahead.announce(claims, 1)
    assert await ahead.announce(claims, 2)  # needs a new mark: written, the failure taken up
    assert store.workers.calls == 3
    gc.collect()
    await asyncio.sleep(0)
    assert not [c for c in reported if "never retrieved" in str(c.get("message", ""))]


class _SlowWorkers:
    """Marks that take ``delay`` seconds to write, each mark's row id kept."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.marks: list[int] = []

    async def may_send(self, worker: int, through: int | None = None) -> bool:
        await asyncio.sleep(self.delay)
        assert through is not None
        self.marks.append(through)
        return True


def _claims(first: int, n: int) -> list[Claim]:
    return [Claim(i, i, f"+1201{i:07d}", "{}", 1) for i in range(first, first + n)]


async def test_requests_never_wait_for_a_mark_across_claims_and_what_is_announced_is_bounded() -> (
    None
):
    """At 800/s, two claims of 200 rows, the second taken while the first is paced out; each
    mark takes 20 ms to write. Only the first request waits for a mark; the second claim's
    first request finds one written (the marks went on into it). At every request, what is
    announced and not sent yet is at most 75 ms of requests (60)."""
    store = _Store()
    store.workers = _SlowWorkers(0.02)  # type: ignore[assignment]
    ahead = WriteAhead(store, 1, asyncio.Event(), lambda: 800.0)  # type: ignore[arg-type]
    first, second = _claims(1, 200), _claims(201, 200)
    waited = []
    exposure = []
    for claims in (first, second):
        ahead.followed()
        if claims is first:
            taken: asyncio.Future[list[Claim]] = asyncio.get_running_loop().create_future()
            taken.add_done_callback(ahead.follow)
            taken.set_result(second)
            await asyncio.sleep(0)
        for index, claim in enumerate(claims):
            started = asyncio.get_running_loop().time()
            assert await ahead.announce(claims, index)
            waited.append(asyncio.get_running_loop().time() - started)
            exposure.append(ahead._announced - claim.id)
            await asyncio.sleep(1 / 800)
    await ahead.settle()
    assert [round(w, 2) for w in waited if w > 0.005] == [0.02]  # the very first mark only
    assert waited[200] < 0.005  # the second claim's first request
    assert max(exposure) <= 60
    assert store.workers.marks == sorted(store.workers.marks)  # never lowered
