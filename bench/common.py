"""Shared pieces of the benchmarks: a sandbox in its own process, recipient files, peak RSS."""

from __future__ import annotations

import contextlib
import csv
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import requests

from campaign import config
from campaign.config import SinchConfig
from campaign.secrets import Secret


@contextlib.contextmanager
def sandbox_process(*args: str, history: bool = False) -> Iterator[str]:
    """``campaign sandbox`` in its own process (so it is not the bottleneck); yields its URL.
    ``history``: it keeps every request's arrival (and message) for /_sandbox/ to tell."""
    with sandbox_with_pid(*args, history=history) as (url, _):
        yield url


@contextlib.contextmanager
def sandbox_with_pid(*args: str, history: bool = False) -> Iterator[tuple[str, int]]:
    """:func:`sandbox_process`, yielding its URL and its process id (to read its CPU)."""
    keep = [] if history else ["--no-history"]
    process = subprocess.Popen(
        [sys.executable, "-m", "campaign", "sandbox", "--port", "0", *keep, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = ""
        while not url:
            line = process.stdout.readline()
            if not line:
                raise RuntimeError("the sandbox did not start")
            url = next((w for w in line.split() if w.startswith("http://")), "")
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=10)


def sandbox_stats(url: str) -> dict[str, int]:
    result: dict[str, int] = requests.get(f"{url}/_sandbox/stats", timeout=10).json()
    return result


def sinch_config(url: str) -> SinchConfig:
    return SinchConfig(
        project_id=config.SANDBOX_PROJECT_ID,
        app_id=config.SANDBOX_APP_ID,
        key_id=config.SANDBOX_KEY_ID,
        key_secret=Secret(config.SANDBOX_KEY_SECRET),
        sandbox=True,
    ).pointed_at(url)


def write_recipients(path: Path, rows: int) -> None:
    """``rows`` distinct valid US numbers with two parameters."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["phone", "first_name", "code"])
        for i in range(rows):
            writer.writerow([f"+1201{2000000 + i:07d}", f"Name{i}", f"{i:06d}"])


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Timer:
    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start
