"""SIGINT and SIGTERM stop every phase of `campaign run` promptly: reading the file (the dry
run's whole work, once deaf to both: it read on and exited 0), loading beside the sending, and
sending. Each exits 3 (interrupted), and a run that wrote anything is resumed by the next."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import polars as pl
import pytest

from tests.e2e.test_cli_e2e import Cli
from tests.e2e.test_cli_e2e import cli as cli
from tests.e2e.test_cli_e2e import sandbox as sandbox

pytestmark = pytest.mark.crash

ROWS = 1_000_000  # a file that takes seconds to read, so that every signal falls inside
# Requests under way at once. The run drains them after a signal, and a batch of 1,000 takes the
# in-process sandbox a tenth of a second or more on a loaded machine: at the default bound (200)
# the drain alone took 3 to 9 s, which timed the sandbox, not the run.
IN_FLIGHT = 16
# Requests that may begin between the test's kill() and the run's handler.
SIGNAL_IN_TRANSIT = 3


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("signals") / "recipients.csv"
    pl.DataFrame(
        {
            "phone": [f"+1201{2_000_000 + i % 7_000_000:07d}" for i in range(ROWS)],
            "first_name": [f"N{i}" for i in range(ROWS)],
            "code": [str(i) for i in range(ROWS)],
        }
    ).write_csv(path)
    return path


def _stopped(process: subprocess.Popen[str], sig: signal.Signals, after: str) -> float:
    """Wait for the log line ``after`` (so the command's handlers are in place), send ``sig``
    a moment later, and return when it was sent (``time.monotonic()``)."""
    assert process.stderr is not None
    for line in process.stderr:
        if after in line:
            break
    else:
        pytest.fail(f"the command ended before {after!r}")
    time.sleep(0.3)
    sent = time.monotonic()
    process.send_signal(sig)
    process.wait(timeout=30)
    return sent


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("phase", ["dry-run", "loading", "sending"])
def test_a_signal_stops_every_phase_promptly(
    cli: Cli, big_file: Path, sig: signal.Signals, phase: str
) -> None:
    with cli.config.open("a") as config:  # [sending] is its last table
        config.write(f"max_in_flight = {IN_FLIGHT}\n")
    campaign = cli.campaign_file(recipients=big_file, mode='"batch"')
    args = ["-v", "run", str(campaign)]
    if phase == "dry-run":
        args.append("--dry-run")
        after = "recipients file opened"
    elif phase == "loading":
        after = "recipients file opened"
    else:
        after = "loaded recipients"
    process = cli.popen(*args)
    try:
        sent = _stopped(process, sig, after)
        took = time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 3, process.stderr.read() if process.stderr else ""
    print(f"\n{phase} {sig.name}: stopped in {took:.2f} s")
    # Sending stops at once; the run then drains what is under way, gives back what it had
    # claimed (a thousand chunks, once one by one: 5 s) and prints its summary, whose counts
    # over a million rows take 2-3 s of it.
    assert took < (8.0 if phase == "sending" else 3.0), f"{took:.1f} s to stop"
    # No send begins after the signal: what reaches the sandbox later was under way, or began
    # while the signal was on its way (the kernel's delivery and the run's loop finishing its
    # step: a few milliseconds on a loaded machine, in which a CI run once started one more).
    since = sent - cli.sandbox.state.started
    late = [a for a in list(cli.sandbox.state.arrivals) if a.arrived > since]
    assert len(late) <= IN_FLIGHT + SIGNAL_IN_TRANSIT, (
        f"{len(late)} requests arrived after the signal"
    )
    if phase != "dry-run":
        return
    assert not cli.db.exists()  # a dry run writes nothing, stopped or not
