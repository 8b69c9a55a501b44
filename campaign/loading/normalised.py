"""Phone numbers normalised by the first pass, kept on disk for the second.

Both passes over a file normalise its identity column (:mod:`campaign.loading.duplicates`), and
normalising is most of what either costs (0.7 s of CPU per million numbers). The first pass
therefore writes each row's E.164 number, as the integer of its digits (0: none), to an
anonymous temporary file (Arrow IPC written by Polars, a block per slice, 16 bytes a row with
the hash below: 160 MB for 10M rows, in the page cache rather than in the process's memory),
and the second reads its slice of them instead of normalising again.

Each row also keeps the hash of its cell as read: a slice whose cells no longer hash the same
(the file was changed between the passes) is normalised again, so what is stored is always the
normalisation of the cell stored beside it.
"""

from __future__ import annotations

import bisect
import io
import os
import tempfile
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import BinaryIO

import polars as pl


@dataclass(frozen=True)
class _Block:
    """One kept slice: its rows, and where its IPC bytes are in the file."""

    first_row: int
    rows: int
    offset: int
    length: int


class NormalisedNumbers:
    """The first pass's numbers, by row (1-based). Close it (or use it as a context manager)
    when the load is over; the file is gone with the process in any case."""

    def __init__(self) -> None:
        self._file: BinaryIO | None = None  # made by the first keep()
        self._blocks: list[_Block] = []  # in row order
        self._starts: list[int] = []  # each block's first row, for bisect
        self._end = 0
        # The file is written by the first pass's thread, read by the second's, and closed by
        # the load's owner, maybe while a stopped pass's thread still runs: one at a time.
        self._lock = threading.Lock()
        # False once a number would not fit, or the file could not be made or written: the
        # second pass then normalises as the first did.
        self.usable = True

    def __enter__(self) -> NormalisedNumbers:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file = None
        self.usable = False

    def keep(self, first_row: int, cells: pl.Series, numbers: pl.Series) -> None:
        """The first pass's slice from ``first_row`` (slices come in file order): its identity
        ``cells`` as read (empty as null) and their E.164 ``numbers`` (null: not valid)."""
        if not self.usable or cells.is_empty():
            return
        digits = numbers.str.strip_prefix("+").cast(pl.Int64, strict=False)
        if (digits.is_null() & numbers.is_not_null()).any():  # not "+" and up to 18 digits
            self.usable = False
            return
        buffer = io.BytesIO()
        pl.DataFrame({"cell": _hash(cells), "number": digits.fill_null(0)}).write_ipc(
            buffer, compression="uncompressed"
        )
        data = buffer.getbuffer()
        with self._lock:
            self._write(first_row, cells.len(), data)
        data.release()

    def _write(self, first_row: int, rows: int, data: memoryview) -> None:
        if not self.usable:  # closed meanwhile
            return
        try:
            if self._file is None:
                # Owned by this object, closed by close(); unlinked at once by the system.
                self._file = tempfile.TemporaryFile(prefix="campaign-numbers-")  # noqa: SIM115
            written = 0
            while written < len(data):
                written += os.pwrite(self._file.fileno(), data[written:], self._end + written)
        except OSError:  # no temporary directory, no room: the second pass normalises
            self._close()
            return
        self._blocks.append(_Block(first_row, rows, self._end, written))
        self._starts.append(first_row)
        self._end += written

    def numbers(self, first_row: int, cells: pl.Series) -> pl.Series | None:
        """The E.164 numbers of the slice from ``first_row`` whose identity ``cells`` are
        given (empty as null), as :meth:`keep` had them; None when they are not all known for
        these very cells (the slice is then normalised again). Safe from several threads once
        the first pass is over."""
        kept = self._read(first_row, cells.len())
        if kept is None or not (kept.get_column("cell") == _hash(cells)).all():
            return None
        digits = kept.get_column("number")
        return (
            pl.select(pl.when(digits != 0).then(pl.lit("+") + digits.cast(pl.String)))
            .to_series()
            .cast(pl.String)
            .alias(cells.name)
        )

    def _read(self, first_row: int, rows: int) -> pl.DataFrame | None:
        """The kept rows ``first_row`` .. ``first_row + rows - 1``, or None."""
        with self._lock:
            blobs = self._blobs(first_row, rows)
        if blobs is None:
            return None
        start, found = blobs
        parts = [pl.read_ipc(io.BytesIO(data)) for data in found]
        return pl.concat(parts).slice(first_row - start, rows)

    def _blobs(self, first_row: int, rows: int) -> tuple[int, list[bytes]] | None:
        """The first row and the IPC bytes of the blocks that hold the rows, or None."""
        file = self._file
        if file is None or not self.usable or rows == 0:
            return None
        index = bisect.bisect_right(self._starts, first_row) - 1
        if index < 0:
            return None
        start = covered = self._blocks[index].first_row
        found = []
        while covered < first_row + rows and index < len(self._blocks):
            block = self._blocks[index]
            if block.first_row != covered:  # a gap: rows never kept
                return None
            found.append(os.pread(file.fileno(), block.length, block.offset))
            covered, index = covered + block.rows, index + 1
        if covered < first_row + rows:
            return None
        return start, found


def _hash(cells: pl.Series) -> pl.Series:
    return cells.hash(seed=0).fill_null(0)
