"""This process's table of file descriptors, grown once, at start.

Linux grows a process's table of descriptors when it fills, doubling it (64, 128, 256, 512,
...). In a process with more than one thread (Polars and its allocator start several), each
growth waits for an RCU grace period: the ``socket()``, ``accept()`` or ``open()`` that crossed
the size blocks for 7-13 ms, and the event loop with it. A sender sends nothing meanwhile; a
server (the sandbox, the receiver) times every request that arrived meanwhile as one burst,
the very burst a rate limit refuses (docs/benchmarks.md, issue 18). Growing the table once
before any of that runs costs that wait once, and 8 bytes of kernel memory a slot.
"""

from __future__ import annotations

import contextlib
import os
import sys

# Slots reserved: connections to Sinch (sending.pool_size), the sandbox's and the receiver's
# clients, the database's pool, files. A process that needs more grows past it as before.
RESERVED = 4096
# The table a process starts with; there is nothing to gain below it.
INITIAL = 64

_reserved = 0  # slots this process already reserved (the CLI, then a server it starts)


def reserve(count: int = RESERVED) -> int:
    """Grow the table to at least ``count`` slots, within the soft limit on open files.
    Returns the slots reserved (0: nothing to do, or not possible here)."""
    global _reserved
    if sys.platform == "win32":
        return 0
    if count <= _reserved:
        return _reserved
    import fcntl
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY:
        count = min(count, soft)
    if count <= INITIAL:
        return 0
    try:
        probe = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return 0
    try:
        # The lowest free descriptor at or above the last slot: the kernel grows the table to
        # hold it. Unlike dup2, it never closes a descriptor that is in use.
        with contextlib.suppress(OSError):
            os.close(fcntl.fcntl(probe, fcntl.F_DUPFD_CLOEXEC, count - 1))
            _reserved = count
            return count
        return 0
    finally:
        os.close(probe)
