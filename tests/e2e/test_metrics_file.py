"""`campaign run --metrics-file PATH`: the run's figures in node_exporter's textfile format,
written whatever the run's exit code, and parsed back by prometheus_client."""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.test_cli_e2e import Cli
from tests.e2e.test_cli_e2e import cli as cli
from tests.e2e.test_cli_e2e import sandbox as sandbox

ROWS = 40


def _samples(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = path.read_text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_the_metrics_file_holds_what_the_run_did(cli: Cli) -> None:
    cli.receive_callbacks(
        failure_rules=[{"pattern": "[05]$", "code": "RECIPIENT_NOT_REACHABLE"}],
        read_delay_s=60.0,
    )
    metrics = cli.tmp / "campaign.prom"
    path = cli.campaign_file("metrics", cli.people(ROWS))
    result = cli.run("run", str(path), "--wait-for-delivery", "30", "--metrics-file", str(metrics))
    assert result.returncode == 1, result.stderr  # some failed
    samples = _samples(metrics)
    label = (("campaign", "metrics"),)
    view = json.loads(cli.run("status", "metrics", "--json").stdout)
    failed = ROWS // 5  # identities ending in 0 or 5
    assert view["counts"]["FAILED"] == failed
    assert samples[("campaign_run_exit_code", label)] == 1
    assert samples[("campaign_failed", label)] == failed
    assert samples[("campaign_accepted", label)] == ROWS - failed
    assert samples[("campaign_in_doubt", label)] == 0
    assert samples[("campaign_run_duration_seconds", label)] > 0
    assert ("campaign_run_last_success_time_seconds", label) not in samples
    code = (("campaign", "metrics"), ("code", "RECIPIENT_NOT_REACHABLE"))
    assert samples[("campaign_failed_by_code", code)] == failed
    by_status = Counter(
        {
            dict(labels)["status"]: int(value)
            for (name, labels), value in samples.items()
            if name == "campaign_recipients" and value
        }
    )
    assert by_status == Counter({k: v for k, v in view["counts"].items() if v})
    assert len(cli.sent()) == ROWS
    # This run's own requests: each recipient once, none refused for the rate or the queue.
    sandbox = cli.sandbox.state.stats
    assert samples[("campaign_run_requests", label)] == ROWS == sandbox.accepted_messages
    assert samples[("campaign_run_sent", label)] == ROWS
    assert samples[("campaign_run_rate_limited", label)] == sandbox.rate_limited == 0
    assert samples[("campaign_run_queue_full", label)] == sandbox.queue_full == 0


def test_a_run_stopped_by_sigterm_still_writes_the_file(cli: Cli) -> None:
    cli.patch_sandbox(latency_ms=30.0)
    cli.config.write_text(cli.config.read_text().replace("= 800", "= 50"))
    metrics = cli.tmp / "campaign.prom"
    path = cli.campaign_file("stopped", cli.people(2000))
    process = cli.popen("run", str(path), "--metrics-file", str(metrics))
    deadline = time.monotonic() + 60
    while len(cli.sent()) < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 3, stderr
    samples = _samples(metrics)
    label = (("campaign", "stopped"),)
    assert samples[("campaign_run_exit_code", label)] == 3
    assert samples[("campaign_accepted", label)] == len(cli.sent())
    pending = (("campaign", "stopped"), ("status", "PENDING"))
    assert samples[("campaign_recipients", pending)] == 2000 - len(cli.sent())


def test_a_run_that_errors_writes_exit_code_2(cli: Cli) -> None:
    metrics = cli.tmp / "campaign.prom"
    path = cli.campaign_file("missing", cli.tmp / "nowhere.csv")
    result = cli.run("run", str(path), "--metrics-file", str(metrics))
    assert result.returncode == 2, result.stderr
    samples = _samples(metrics)
    assert samples[("campaign_run_exit_code", (("campaign", "missing"),))] == 2


def test_the_429s_of_the_run_are_counted(cli: Cli) -> None:
    cli.patch_sandbox(rate_limit=20)  # the config says 800/s: Sinch answers 429 past 20
    metrics = cli.tmp / "campaign.prom"
    path = cli.campaign_file("limited", cli.people(60))
    result = cli.run("run", str(path), "--metrics-file", str(metrics))
    assert result.returncode == 0, result.stderr
    samples = _samples(metrics)
    label = (("campaign", "limited"),)
    limited = cli.sandbox.state.stats.rate_limited
    assert limited > 0
    assert samples[("campaign_run_rate_limited", label)] == limited
    assert samples[("campaign_run_requests", label)] == 60 + limited
