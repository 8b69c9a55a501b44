"""Batches that Sinch refuses whole without naming a recipient: bisected until the bad ones are
alone, each part a chunk of its own (own tag, own worker) recorded before it leaves, so that
nothing accepted is ever sent again: not by this run, not by the heartbeat's settling of
stopped runs' chunks (which once took a part of no worker for a dead run's and sent its
recipients again), not by the run after a kill at any point of the bisection.

The sandbox refuses any batch holding one of the bad identities with a bare 400
(``refuse_batches_with``), as Sinch may for an identity it cannot resolve.
"""

from __future__ import annotations

import math
import random
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from campaign.sandbox import SandboxSettings, ThreadedSandbox
from tests.runs import RECIPIENTS, Runs, check_accounted_for, identities

pytestmark = pytest.mark.crash

ROWS = 3_000
BATCH_SIZE = 1_000
BAD = frozenset(identities(ROWS)[5::67])  # 45 rows, some in every chunk


def _pattern(bad: frozenset[str]) -> str:
    return "^(?:" + "|".join(sorted(i.replace("+", r"\+") for i in bad)) + ")$"


@pytest.fixture
def refusing_sandbox() -> Iterator[ThreadedSandbox]:
    # Some latency: a bisection's requests go one after another, long enough for several
    # heartbeats (each settles stopped runs' chunks) and for kills to fall inside it.
    settings = SandboxSettings(
        seed=5, rate_limit=800, latency_ms=4.0, refuse_batches_with=_pattern(BAD)
    )
    with ThreadedSandbox(settings) as running:
        yield running


def _check(runs: Runs) -> Counter[str]:
    """Nobody twice, nobody lost, the bad rows FAILED with Sinch's answer and nobody else;
    the batches table agrees with what the sandbox holds. Returns the report's statuses."""
    report, sent = check_accounted_for(runs)
    failed = {r["identity"] for r in report if r["status"] == "FAILED"}
    assert failed == BAD
    assert {r["error_code"] for r in report if r["status"] == "FAILED"} == {"INVALID_ARGUMENT"}
    assert set(sent) == set(identities(ROWS)) - BAD
    assert not runs.query("SELECT chunk FROM batches WHERE status = 'SENDING'")
    accepted = dict(runs.query("SELECT batch_id, size FROM batches WHERE status = 'ACCEPTED'"))
    queued = dict(
        runs.query(
            f"SELECT batch_id, count(*) FROM {RECIPIENTS} WHERE status = 'QUEUED' GROUP BY batch_id"
        )
    )
    assert queued == accepted
    assert set(accepted) == set(runs.sandbox.state.batches)
    return Counter(r["status"] for r in report)


def test_a_batch_refused_naming_nobody_is_bisected_and_nobody_is_sent_twice(
    tmp_path: Path, refusing_sandbox: ThreadedSandbox, database_url: str
) -> None:
    runs = Runs(
        tmp_path, refusing_sandbox, database_url, rows=ROWS, mode="batch", batch_size=BATCH_SIZE
    )
    try:
        result = runs.run(timeout=180)
        assert result.returncode == 1, result.stderr  # some recipients FAILED
        assert "error" not in result.stderr.lower(), result.stderr
        statuses = _check(runs)
    finally:
        runs.close()
    assert statuses == {"QUEUED": ROWS - len(BAD), "FAILED": len(BAD)}
    # Each bad row costs at most a refused request per level of its chunk's bisection, and
    # an accepted sibling per level: no more than that is ever sent.
    requests = refusing_sandbox.state.stats_json()["requests"]
    levels = math.ceil(math.log2(BATCH_SIZE))
    assert requests <= ROWS // BATCH_SIZE + 2 * len(BAD) * levels
    # Progress counts each recipient once (it read "1,770/512" when parts were sent again).
    shown = re.findall(r"crash: ([\d,]+)/([\d,]+) ", result.stderr)
    assert shown and all(int(done.replace(",", "")) <= ROWS for done, _ in shown), shown


def test_kills_inside_a_bisection_send_nobody_twice(
    tmp_path: Path, refusing_sandbox: ThreadedSandbox, database_url: str
) -> None:
    runs = Runs(
        tmp_path, refusing_sandbox, database_url, rows=ROWS, mode="batch", batch_size=BATCH_SIZE
    )
    state = refusing_sandbox.state
    rng = random.Random(20261204)
    # SIGKILL once so many refusals have come: early (the first splits), midway, late.
    plan = sorted(rng.randint(low, high) for low, high in ((2, 12), (40, 120), (160, 260)))
    kills = []
    try:
        for _ in range(len(plan) + 3):
            process = runs.start()
            if plan:
                at = plan.pop(0) + state.stats.invalid_requests
                while process.poll() is None and state.stats.invalid_requests < at:
                    time.sleep(0.002)
                if process.poll() is None:
                    process.send_signal(signal.SIGKILL)
                    process.wait(timeout=10)
                    kills.append(state.stats.invalid_requests)
                    continue
            try:
                _, stderr = process.communicate(timeout=180)
            except subprocess.TimeoutExpired:
                process.kill()
                raise
            assert process.returncode == 1, stderr
            break
        else:
            pytest.fail("no run finished")
        assert len(kills) >= 2, kills
        _check(runs)
    finally:
        runs.close()


@pytest.mark.parametrize("mode", ["individual", "batch"])
def test_a_field_of_the_campaign_refused_stops_the_run_and_fails_nobody(
    tmp_path: Path, mode: str
) -> None:
    """A 400 naming a field that every request carries (here an SMS sender of 2,000
    characters, over Sinch's 1,024): the run stops at once, exit 2, Sinch's words in one line,
    nobody FAILED, everything left to send once the campaign is corrected."""
    with ThreadedSandbox(SandboxSettings(seed=5, rate_limit=800)) as sandbox:
        runs = Runs(tmp_path, sandbox, f"sqlite:///{tmp_path / 'c.db'}", rows=2_000, mode=mode)
        try:
            good = runs.campaign.read_text()
            sender = "x" * 2_000
            runs.campaign.write_text(
                good + f'[send]\nchannel_properties = {{ SMS_SENDER = "{sender}" }}\n'
            )
            result = runs.run(timeout=120)
            assert result.returncode == 2, result.stderr
            errors = [line for line in result.stderr.splitlines() if "error" in line]
            assert errors == [
                "campaign: error: Sinch refused the campaign's requests (HTTP 400 "
                "INVALID_ARGUMENT: channel_properties.SMS_SENDER must be at most 1024 "
                "characters); nobody was marked failed for it: correct the campaign and run "
                "the same command again"
            ]
            assert sender not in result.stderr
            assert set(runs.statuses().values()) == {"PENDING"}
            assert runs.campaign_state() != "DONE"
            assert sandbox.state.stats.requests < 50  # stopped at once, not row by row
            assert not runs.accepted()
            runs.campaign.write_text(good)  # corrected: the same command sends them all
            assert runs.run(timeout=120).returncode == 0
            check_accounted_for(runs)
            assert runs.accepted() == 2_000
        finally:
            runs.close()
