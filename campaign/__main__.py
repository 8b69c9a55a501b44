"""The ``campaign`` command: ``python -m campaign``, and the installed script."""

from __future__ import annotations

import ctypes
import gc
import os
import sys

# A batch run loads slices while it sends, and the memory that both free piles up in the
# allocators unless they give it back soon (the settings below and their cost in time:
# docs/benchmarks.md).
#
# Polars' allocator (jemalloc) keeps freed pages for a second or so (Polars' defaults:
# dirty_decay_ms 500, muzzy_decay_ms 1000). We have it give them back after 100 ms: at once,
# every page of every slice would be faulted in again. Polars adds this to its own settings,
# before it loads; a value set in the environment is left as it is (but for Polars' own
# defaults, which a process that imported Polars passes on to the commands it starts).
MALLOC_CONF = "_RJEM_MALLOC_CONF"
RETURN_FREED_PAGES = "dirty_decay_ms:100,muzzy_decay_ms:100"
# glibc's malloc raises its mmap threshold (up to 32 MiB) each time a large block is freed, after
# which blocks of megabytes (a slice's JSON, a block of the CSV file) come from the heap, which
# gives nothing back while anything above them lives. A fixed threshold of 1 MiB keeps them
# mmap-ed, and unmapped when freed (not 128 KiB, glibc's own start: the requests' and the
# entries' hundred-kilobyte blocks would be mapped and unmapped too).
# MALLOC_MMAP_THRESHOLD_ in the environment, if set, is glibc's to apply.
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1024 * 1024
# glibc also gives each thread that allocates its own arena (up to 8 per core), each keeping
# its own freed blocks: the load's threads write a slice's request entries and the sending frees
# them in another, so each arena holds what the other freed. Two arenas cost no measurable time
# (docs/benchmarks.md). MALLOC_ARENA_MAX in the environment, if set, wins.
_M_ARENA_MAX = -8
ARENA_MAX = 2


# What Polars itself writes into the environment of a process that imports it: the command
# started by such a process (a benchmark, a scheduler written in Python) inherits it, but it is
# nobody's choice, so it does not stand in for ours.
POLARS_DEFAULT_CONF = "dirty_decay_ms:500,muzzy_decay_ms:1000"


def configure_allocators() -> None:
    """Before anything is allocated in earnest (and before Polars loads)."""
    if os.environ.get(MALLOC_CONF, POLARS_DEFAULT_CONF) == POLARS_DEFAULT_CONF:
        os.environ[MALLOC_CONF] = RETURN_FREED_PAGES
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(None)  # the process's own symbols: the C library's among them
    if not hasattr(libc, "mallopt"):  # not glibc
        return
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    if "MALLOC_ARENA_MAX" not in os.environ:
        libc.mallopt(_M_ARENA_MAX, ARENA_MAX)


def main() -> int:
    configure_allocators()
    from campaign.cli import main as cli_main  # after the allocators are configured

    code = cli_main()
    # The interpreter's last full collection walks every object still alive: with the embedded
    # sandbox's history of a large campaign (millions of them) that took 18 s after a signal
    # had stopped the run. Everything is let go with the process; nothing is left to collect.
    gc.freeze()
    return code


if __name__ == "__main__":
    raise SystemExit(main())
