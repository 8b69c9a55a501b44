"""`campaign report --status ... --with-input`: the failed ones, with their input columns, in
one command, and that file is the recipients file of a new campaign."""

from __future__ import annotations

import csv
import json

from tests.e2e.test_cli_e2e import Cli, read_report
from tests.e2e.test_cli_e2e import cli as cli
from tests.e2e.test_cli_e2e import sandbox as sandbox

ROWS = 30


def test_the_failed_ones_with_their_input_are_a_new_campaigns_recipients(cli: Cli) -> None:
    cli.receive_callbacks(
        failure_rules=[{"pattern": "[37]$", "code": "RECIPIENT_NOT_REACHABLE"}],
        read_delay_s=60.0,
    )
    first = cli.run(
        "run", str(cli.campaign_file("first", cli.people(ROWS))), "--wait-for-delivery", "30"
    )
    assert first.returncode == 1, first.stderr
    failed = cli.tmp / "failed.csv"
    made = cli.run("report", "first", "-o", str(failed), "--status", "FAILED", "--with-input")
    assert made.returncode == 0, made.stderr
    rows = read_report(failed)
    expected = [i for i in range(ROWS) if i % 10 in (3, 7)]
    assert [r["row"] for r in rows] == [str(i + 1) for i in expected]
    assert {r["status"] for r in rows} == {"FAILED"}
    assert {r["error_code"] for r in rows} == {"RECIPIENT_NOT_REACHABLE"}
    with failed.open(newline="") as handle:
        header = next(csv.reader(handle))
    assert header[-3:] == ["phone", "first_name", "code"]  # the input's, after the report's
    assert [(r["phone"], r["first_name"], r["code"]) for r in rows] == [
        (f"+1201555{i:04d}", f"Name {i}", f"C{i}") for i in expected
    ]

    before = len(cli.sent())
    cli.patch_sandbox(failure_rules=[])
    second = cli.run("run", str(cli.campaign_file("second", failed)), "--wait-for-delivery", "30")
    assert second.returncode == 0, second.stderr
    again = cli.sent()[before:]
    assert sorted(m["identity"] for m in again) == [f"+1201555{i:04d}" for i in expected]
    texts = {m["identity"]: m["message"]["text_message"]["text"] for m in again}
    assert all(f"Name {int(k[-4:])}" in t for k, t in texts.items())
    status = json.loads(cli.run("status", "second", "--json").stdout)
    assert status["counts"]["DELIVERED"] == len(expected)


def test_with_input_refuses_a_recipients_file_changed_since_the_load(cli: Cli) -> None:
    people = cli.people(ROWS)
    assert cli.run("run", str(cli.campaign_file("first", people))).returncode == 0
    report = cli.tmp / "report.csv"
    both = cli.run("report", "first", "-o", str(report), "--status", "QUEUED", "PENDING")
    assert both.returncode == 0, both.stderr
    assert len(read_report(report)) == ROWS
    people.write_text(people.read_text().replace("Name 1,", "Someone else,"))
    changed = cli.run("report", "first", "-o", str(report), "--with-input")
    assert changed.returncode == 2
    assert "changed since campaign 'first' loaded it" in changed.stderr
    people.unlink()
    gone = cli.run("report", "first", "-o", str(report), "--with-input")
    assert gone.returncode == 2
    assert "is gone" in gone.stderr


def test_the_html_report_counts_what_the_store_holds(cli: Cli, database_url: str) -> None:
    cli.use_database(database_url)
    cli.receive_callbacks(
        failure_rules=[{"pattern": "[37]$", "code": "RECIPIENT_NOT_REACHABLE"}],
        read_delay_s=60.0,
    )
    path = cli.campaign_file("page", cli.people(ROWS))
    assert cli.run("run", str(path), "--wait-for-delivery", "30").returncode == 1
    page = cli.tmp / "report.html"
    made = cli.run("report", "page", "-o", str(page))
    assert made.returncode == 0, made.stderr
    html = page.read_text()
    assert "<script src=" not in html
    delivered = ROWS - ROWS // 5
    assert f'<div class="value">{delivered}</div><div class="label">delivered</div>' in html
    assert "RECIPIENT_NOT_REACHABLE" in html
    assert '"x":["20' in html.replace(" ", "")  # the per-minute chart has its minutes
    refused = cli.run("report", "page", "-o", str(page), "--status", "FAILED")
    assert refused.returncode == 2
