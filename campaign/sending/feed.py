"""A load running beside the sending: the signal of each stored slice, and the request
entries of the chunks it formed, kept up to a bound."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence

from campaign.sinch.wire import ChunkEntries
from campaign.store import repository as repo

# At most this much text of request entries kept for chunks that a load beside the sending
# formed, claimed or not (about two and a half slices): when sending falls behind, the next
# chunks are read back from the database instead. It must hold more than a slice's entries, or
# chunks are read back even when sending keeps up; sending that keeps up holds a slice or two
# whatever the bound, which only limits what a stalled sending holds (docs/benchmarks.md).
FORMED_ENTRIES_BYTES = 32 << 20


def _entries_from_load(chunk: repo.Chunk) -> bool:
    """Whether the chunk's entries were written by the load (not read back from the store)."""
    return chunk.members is not None and chunk.members.ids is None


class LoadFeed:
    """The hand-off from a load that runs beside the sending (batch mode: each stored slice's
    chunks may be sent at once). While it runs, having nothing to claim means waiting for the
    next slice, not being done; and the request entries of the chunks it formed are kept here,
    up to a number of bytes, so that they need not be read back from the database."""

    def __init__(self, keep_bytes: int = FORMED_ENTRIES_BYTES) -> None:
        self.over = False
        self._stored = asyncio.Event()
        # The request entries of chunks formed by this load, not claimed yet, by number.
        self.formed: dict[int, ChunkEntries] = {}
        self._keep_bytes = keep_bytes
        self._kept = 0  # text of entries here, or claimed from here and not sent yet

    def stored(self, formed: Mapping[int, ChunkEntries] | None = None) -> None:
        """A slice was committed: its rows may be claimed, and its chunks' request entries
        (``formed``) need not be read back, as long as there is room to keep them."""
        for number, entries in (formed or {}).items():
            if self._kept + len(entries[1]) > self._keep_bytes:
                break
            self.formed[number] = entries
            self._kept += len(entries[1])
        self._stored.set()

    def room(self) -> int:
        """How much more text of entries would be kept."""
        return self._keep_bytes - self._kept

    def claimed(self, chunks: Sequence[repo.Chunk]) -> None:
        """Chunks were claimed: those with entries from here hold them until :meth:`done`;
        the entries of any other chunk up to the last claimed (another worker took it, or it
        was read back) are let go (claims take the first chunks first)."""
        last = max((chunk.number for chunk in chunks), default=None)
        if last is None:
            return
        held = {chunk.number for chunk in chunks if _entries_from_load(chunk)}
        for number in [n for n in self.formed if n <= last]:
            _, text = self.formed.pop(number)
            if number not in held:
                self._kept -= len(text)

    def done(self, chunk: repo.Chunk) -> None:
        """A claimed chunk was sent (or given back): its entries make room for others."""
        if _entries_from_load(chunk):
            assert chunk.members is not None
            self._kept -= len(chunk.members.entries)

    def end(self) -> None:
        """The load is over (done, failed or stopped): nothing more will come."""
        self.over = True
        self._stored.set()

    async def next_slice(self) -> None:
        """Wait until a slice is stored or the load ends (or half a second: retries that fall
        due meanwhile are not kept waiting for long)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.5):
                await self._stored.wait()
        self._stored.clear()
