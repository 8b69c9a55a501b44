"""Write-ahead marks (campaign.sending.writeahead): a background mark that failed is taken
up by the next mark, never left as a task whose exception nobody retrieved."""

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
    assert await ahead.announce(claims, 0)  # the first mark covers rows 1 and 2
    assert await ahead.announce(claims, 1)  # half of it used: the next mark, in the background
    await asyncio.sleep(0.01)  # fails
    assert await ahead.announce(claims, 2)  # needs a new mark: written, the failure taken up
    assert store.workers.calls == 3
    gc.collect()
    await asyncio.sleep(0)
    assert not [c for c in reported if "never retrieved" in str(c.get("message", ""))]
