"""`kill -USR1 <pid>`: a command that seems stuck prints where it waits, and goes on."""

from __future__ import annotations

import signal
import time
import urllib.request

from tests.e2e.test_cli_e2e import sandbox_command


def test_sigusr1_prints_every_thread_and_task_and_the_command_goes_on() -> None:
    process, url = sandbox_command()
    try:
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
