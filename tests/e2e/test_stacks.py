"""`kill -USR1 <pid>`: a command that seems stuck prints where it waits, and goes on."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request


def test_sigusr1_prints_every_thread_and_task_and_the_command_goes_on() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "campaign", "sandbox", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        banner = [process.stdout.readline() for _ in range(3)]
        url = next(word for line in banner for word in line.split() if word.startswith("http://"))
        process.send_signal(signal.SIGUSR1)
        time.sleep(0.5)
        # Still serving after the dump.
        with urllib.request.urlopen(f"{url}/_sandbox/stats", timeout=10) as answer:
            assert answer.status == 200
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "campaign: stacks (SIGUSR1)" in err
    assert "Current thread" in err  # every thread's stack
    # Every task, with its chain of awaits down to where it waits.
    assert "task Task-1:" in err
    assert "in serve_sandbox" in err
