"""``kill -USR1 <pid>``: a command that seems stuck prints where each of its threads and each of
its asyncio tasks is waiting, on stderr, and goes on. Only code locations are printed (files,
lines, functions), never a value: nothing of a recipient or a secret."""

from __future__ import annotations

import asyncio
import faulthandler
import signal
import sys
from typing import TextIO


def dump(out: TextIO | None = None) -> None:
    """Print every thread's stack and every task of the running loop with its stack."""
    out = out or sys.stderr
    print("campaign: stacks (SIGUSR1)", file=out)
    out.flush()
    faulthandler.dump_traceback(file=out, all_threads=True)
    tasks = sorted(asyncio.all_tasks(), key=lambda task: task.get_name())
    for task in tasks:
        print(f"task {task.get_name()}:", file=out)
        for line in awaiting(task.get_coro()):
            print(f"  {line}", file=out)
    out.flush()


def awaiting(coro: object) -> list[str]:
    """Where ``coro`` is, then what it awaits, down the chain of awaits (a task's own stack
    shows only its outermost coroutine)."""
    lines: list[str] = []
    while coro is not None and len(lines) < 60:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None)
        frame = frame or getattr(coro, "gi_frame", None)
        if frame is not None:
            code = frame.f_code
            lines.append(f"{code.co_filename}:{frame.f_lineno} in {code.co_name}")
        following = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None)
        coro = following or getattr(coro, "gi_yieldfrom", None)
    if coro is not None:
        lines.append(f"awaiting {type(coro).__name__}")
    return lines


def install(loop: asyncio.AbstractEventLoop) -> None:
    """Dump on SIGUSR1 (where the platform has it), inside ``loop``."""
    if hasattr(signal, "SIGUSR1"):
        loop.add_signal_handler(signal.SIGUSR1, dump)
