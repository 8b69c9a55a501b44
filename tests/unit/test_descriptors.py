"""The table of file descriptors, grown once at start (campaign.descriptors)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from campaign import descriptors
from tests.runs import fd_table_size

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(fd_table_size() is None, reason="needs Linux's /proc/self/status")

# In a fresh interpreter with a thread running, as in `campaign` (Polars starts several): the
# table's size and the open descriptors, before and after.
PROBE = """
import os, resource, sys, threading, time
threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
soft = int(sys.argv[1])
if soft:
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
from campaign import descriptors
from tests.runs import fd_table_size
before = (fd_table_size(), sorted(os.listdir("/proc/self/fd")))
reserved = descriptors.reserve()
after = (fd_table_size(), sorted(os.listdir("/proc/self/fd")))
print(before[0], reserved, after[0], before[1] == after[1])
"""


def probe(soft_limit: int = 0) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(soft_limit)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_the_table_is_grown_once_to_the_reserve_and_nothing_is_left_open() -> None:
    before, reserved, after, same_descriptors = probe()
    assert int(before) < descriptors.RESERVED
    assert int(reserved) == int(after) == descriptors.RESERVED
    assert same_descriptors == "True"


def test_the_reserve_stays_within_the_limit_on_open_files() -> None:
    _, reserved, after, same_descriptors = probe(soft_limit=300)
    assert int(reserved) == 300
    assert 300 <= int(after) < descriptors.RESERVED  # the kernel rounds up to its own sizes
    assert same_descriptors == "True"


def test_a_limit_below_the_initial_table_reserves_nothing() -> None:
    assert probe(soft_limit=50)[1] == "0"


def test_a_second_reserve_does_nothing_more() -> None:
    first = descriptors.reserve()
    assert descriptors.reserve() == first
