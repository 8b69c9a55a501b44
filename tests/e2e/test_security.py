"""Security hardening, proved end to end.

1. Secrets never show: the whole product runs with known, distinctive secret values (the key
   secret, the webhook secret, the bearer tokens the sandbox issues, a database password) and
   everything it printed, logged and wrote is searched for them, failures and crashes included.
2. Reports are safe in a spreadsheet: formula-like cells are neutralised, identities intact.
3. The webhook receiver: the signature checks that were missing, and fuzzing of the callback
   parser and of the receiver itself (never a 500, never an unexpected exception).
4. SQL safety: column names and values that are SQL reach the database only as bound values.
"""

from __future__ import annotations

import base64
import copy
import csv
import io
import json
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import polars as pl
import pytest
import requests
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, inspect, select, table, text
from sqlalchemy.engine import make_url

from campaign import config, reporting, secrets, tracking
from campaign.errors import SinchAuthError
from campaign.models import Status
from campaign.receiver import ReceiverServer, ReceiverSettings
from campaign.sandbox import SandboxSettings, ThreadedSandbox
from campaign.secrets import Secret
from campaign.sinch import responses, signature, wire
from campaign.store import engine as store_engine
from campaign.store import repository as repo
from tests.conftest import FIXTURES, POSTGRES_URL, REQUIRE_POSTGRES
from tests.e2e.test_cli_e2e import Cli, read_report
from tests.recipients import loaded, us_numbers
from tests.unit.test_reporting import store_page
from tests.unit.test_signature import DOTNET_VECTOR as VECTOR

KEY_SECRET = "ks-SECRET-7f3e9a1c5d"
WRONG_KEY_SECRET = "ks-WRONG-2b6d8e0f4a"
WEBHOOK_SECRET = "wh-SECRET-4b8d2e6f1c"
DB_PASSWORD = "pw-SECRET-9c1a5e7b3d"

NOW = 1_800_000_000.0  # the fuzzed receiver's clock
EVENTS = FIXTURES / "conversation-v1" / "sinchevents"
CALLBACK_FIXTURES = [
    EVENTS / "delivery" / "MessageDeliveryReceiptEventDto.json",
    EVENTS / "message" / "MessageSubmitEventDto.json",
    EVENTS / "message" / "MessageInboundEventDto.json",
]


# --- helpers -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def with_password(url: str) -> str:
    """``url`` (Postgres) with the known password in it; trust auth accepts any password."""
    if not url.startswith("postgresql"):
        return url
    return make_url(url).set(password=DB_PASSWORD).render_as_string(hide_password=False)


def basic(key_id: str, key_secret: str) -> str:
    return base64.b64encode(f"{key_id}:{key_secret}".encode()).decode()


class Evidence:
    """Everything the product printed or wrote, labelled, to be searched for secrets."""

    def __init__(self) -> None:
        self.items: list[tuple[str, bytes]] = []

    def add(self, label: str, content: str | bytes) -> None:
        self.items.append((label, content.encode() if isinstance(content, str) else content))

    def add_run(self, label: str, result: subprocess.CompletedProcess[str]) -> None:
        self.add(f"{label}: stdout", result.stdout)
        self.add(f"{label}: stderr", result.stderr)

    def add_tree(self, root: Path) -> None:
        """Every file under ``root``, as bytes; Parquet reports decoded as well (compressed)."""
        for path in sorted(root.rglob("*")):
            if path.is_file():
                self.add(f"file {path.relative_to(root)}", path.read_bytes())
                if path.suffix == ".parquet":
                    frame = pl.read_parquet(path)
                    self.add(f"parquet {path.name}", str(frame.rows()))

    def add_database(self, url: str) -> None:
        """Every row of every table, as text (for Postgres, whose files are not ours to read)."""
        engine = create_engine(store_engine.sync_url(url))
        try:
            with engine.connect() as conn:
                for name in inspect(conn).get_table_names():
                    rows = conn.execute(select(text("*")).select_from(table(name))).all()
                    self.add(f"table {name}", repr(rows))
        finally:
            engine.dispose()

    def assert_free_of(self, needles: dict[str, str]) -> None:
        assert self.items, "nothing was collected"
        leaks = [
            f"{what} in {label}"
            for label, content in self.items
            for what, needle in needles.items()
            if needle.encode() in content
        ]
        assert not leaks, leaks


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("campaign: error: "), stderr
    return lines[0]


@pytest.fixture
def secure_sandbox() -> Iterator[ThreadedSandbox]:
    """A sandbox that accepts only the known key secret and signs with the known secret."""
    settings_ = SandboxSettings(
        seed=7,
        key_secret=KEY_SECRET,
        webhook_secret=WEBHOOK_SECRET,
        queued_delay_s=0.05,
        queued_jitter_s=0.0,
        delivered_delay_s=0.2,
        delivered_jitter_s=0.1,
    )
    with ThreadedSandbox(settings_) as running:
        yield running


@pytest.fixture
def secure_cli(tmp_path: Path, secure_sandbox: ThreadedSandbox, database_url: str) -> Cli:
    """The CLI as deployed: credentials in the environment, the database URL (on Postgres with
    a password) too, and a receiver port that the sandbox calls back."""
    cli = Cli(tmp_path, secure_sandbox)
    port = free_port()
    cli.config.write_text(cli.config.read_text() + f"\n[receiver]\nport = {port}\n")
    cli.env["SINCH_KEY_SECRET"] = KEY_SECRET
    cli.env["SINCH_WEBHOOK_SECRET"] = WEBHOOK_SECRET
    cli.env["CAMPAIGN_DATABASE_URL"] = with_password(database_url)
    cli.patch_sandbox(callback_url=f"http://127.0.0.1:{port}/sinch/callbacks")
    return cli


def secret_needles(sandbox: ThreadedSandbox) -> dict[str, str]:
    tokens = sandbox.state.tokens.issued()
    assert tokens, "the sandbox issued no token: the run never authenticated"
    return {
        "SINCH_KEY_SECRET": KEY_SECRET,
        "the wrong SINCH_KEY_SECRET": WRONG_KEY_SECRET,
        "SINCH_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "the database password": DB_PASSWORD,
        "the Basic credentials": basic(config.SANDBOX_KEY_ID, KEY_SECRET),
        "the wrong Basic credentials": basic(config.SANDBOX_KEY_ID, WRONG_KEY_SECRET),
        **{f"bearer token #{i}": token for i, token in enumerate(tokens)},
    }


CRASH = """
import os, sys
from campaign import cli, run

async def crash(*args, **kwargs):
    raise RuntimeError(
        "boom with " + os.environ["SINCH_KEY_SECRET"] + " and "
        + os.environ.get("CAMPAIGN_DATABASE_URL", "")
    )

run.run = crash
sys.exit(cli.main(sys.argv[1:]))
"""


# --- 1. secrets never show ---------------------------------------------------------------------


def test_secrets_never_appear_in_any_output_log_report_or_database(
    secure_cli: Cli, secure_sandbox: ThreadedSandbox, database_url: str
) -> None:
    cli = secure_cli
    evidence = Evidence()
    recipients = cli.tmp / "few.csv"
    recipients.write_text(
        "phone,first_name,code\n+12015550101,Ann,1\n+12015550102,Bo,2\n+12015550103,,3\nbad,X,4\n"
    )
    if database_url.startswith("postgresql"):
        upgraded = cli.run("db", "upgrade", "-v")
        assert upgraded.returncode == 0, upgraded.stderr
        assert f"postgres:***@{make_url(database_url).host}" in upgraded.stdout
        evidence.add_run("db upgrade", upgraded)

    # A successful run that also receives the signed delivery callbacks, with debug logging.
    done = cli.run(
        "run", str(cli.campaign_file("sec", recipients)), "--wait-for-delivery", "30", "-vv"
    )
    assert done.returncode == 1, done.stderr  # the one invalid row
    evidence.add_run("run --wait-for-delivery -vv", done)
    batch = cli.run("run", str(cli.campaign_file("sec-batch", recipients, mode='"batch"')), "-v")
    assert batch.returncode == 1, batch.stderr
    evidence.add_run("run batch -v", batch)

    shown = cli.run("status", "sec")
    assert shown.returncode == 0, shown.stderr
    evidence.add_run("status sec", shown)
    shown = cli.run("status", "--json")
    assert shown.returncode == 0, shown.stderr
    evidence.add_run("status --json", shown)
    status = next(view for view in json.loads(shown.stdout) if view["name"] == "sec")
    assert status["counts"]["DELIVERED"] == 3  # the callbacks passed the signature check
    for report in ("report.csv", "report.parquet"):
        written = cli.run("report", "sec", "-o", str(cli.tmp / report))
        assert written.returncode == 0, written.stderr
        evidence.add_run(f"report {report}", written)

    # Wrong credentials: a configuration error before anything is written or sent (exit 2).
    sent_before = len(cli.sent())
    wrong = {**cli.env, "SINCH_KEY_SECRET": WRONG_KEY_SECRET}
    wrong_file = str(cli.campaign_file("sec-wrong", recipients))
    for verbosity in ((), ("-vv",)):
        refused = subprocess.run(
            cli.argv("run", wrong_file, *verbosity),
            env=wrong,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=cli.tmp,
        )
        assert refused.returncode == 2, refused.stderr
        evidence.add_run(f"run with the wrong key secret {verbosity}", refused)
        if not verbosity:
            line = one_error_line(refused.stderr)
            assert "SINCH_KEY_SECRET" in line and "refused" in line
    assert len(cli.sent()) == sent_before
    assert "sec-wrong" not in cli.run("status").stdout  # nothing written

    # A crash whose exception text carries the secrets, with its trace (-v).
    crashed = subprocess.run(
        [sys.executable, "-c", CRASH, "run", wrong_file, "-v"],
        env=cli.env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cli.tmp,
    )
    assert crashed.returncode == 1, crashed.stderr
    assert "internal error" in crashed.stderr and "Traceback" in crashed.stderr
    assert "RuntimeError: boom with ********" in crashed.stderr
    evidence.add_run("crash -v", crashed)

    # The receiver as a service: a good callback, forged ones, then a clean stop.
    receiver = cli.popen("receiver", "--port", "0", "-v")
    try:
        assert receiver.stdout is not None
        url = receiver.stdout.readline().split()[-1]
        banner = "".join(receiver.stdout.readline() for _ in range(4))
        assert "***" in banner or not database_url.startswith("postgresql")
        body = orjson.dumps(
            {
                "app_id": config.SANDBOX_APP_ID,
                "event_time": "2026-11-21T12:00:00Z",
                "message_delivery_report": {"message_id": "M1", "status": "DELIVERED"},
            }
        )
        headers = signature.sign(WEBHOOK_SECRET, body, timestamp=int(datetime.now(UTC).timestamp()))
        assert requests.post(url, data=body, headers=headers, timeout=10).status_code == 200
        forged = signature.sign(
            "not-the-secret", body, timestamp=int(datetime.now(UTC).timestamp())
        )
        assert requests.post(url, data=body, headers=forged, timeout=10).status_code == 401
        assert requests.post(url, data=body, timeout=10).status_code == 401
        receiver.send_signal(signal.SIGINT)
        out, err = receiver.communicate(timeout=30)
    finally:
        if receiver.poll() is None:
            receiver.kill()
            receiver.communicate()
    assert receiver.returncode == 0, err
    assert "callback refused (401 signature)" in err  # the refusals were logged
    evidence.add("receiver: stdout", banner + out)
    evidence.add("receiver: stderr", err)

    evidence.add_tree(cli.tmp)
    evidence.add_database(with_password(database_url))
    evidence.assert_free_of(secret_needles(secure_sandbox))


@pytest.mark.parametrize(
    "problem", ["refused", pytest.param("no-such-database", marks=pytest.mark.postgres)]
)
def test_an_unreachable_database_is_one_line_exit_2_with_the_password_masked(
    tmp_path: Path, secure_sandbox: ThreadedSandbox, postgres_available: str | None, problem: str
) -> None:
    if problem == "refused":
        url = f"postgresql://postgres:{DB_PASSWORD}@127.0.0.1:{free_port()}/campaign"
    else:
        if postgres_available is not None:
            if REQUIRE_POSTGRES:
                pytest.fail(postgres_available + "; CAMPAIGN_REQUIRE_POSTGRES=1 forbids skipping")
            pytest.skip(postgres_available)
        base = make_url(POSTGRES_URL).set(password=DB_PASSWORD, database="no_such_db_7f3e")
        url = base.render_as_string(hide_password=False)
    cli = Cli(tmp_path, secure_sandbox)
    cli.env["SINCH_KEY_SECRET"] = KEY_SECRET
    cli.env["CAMPAIGN_DATABASE_URL"] = url
    evidence = Evidence()
    status = cli.run("status")
    assert status.returncode == 2, status.stderr
    line = one_error_line(status.stderr)
    masked = make_url(url).render_as_string(hide_password=True)
    assert line.startswith(f"campaign: error: database {masked}: ")
    assert ("Connection refused" if problem == "refused" else "does not exist") in line
    evidence.add_run("status", status)
    run = cli.run("run", str(cli.campaign_file()), "-vv")
    assert run.returncode == 2, run.stderr
    assert f"campaign: error: database {masked}: " in run.stderr
    assert "Traceback" in run.stderr  # -v: the whole story, still without the password
    evidence.add_run("run -vv", run)
    assert cli.sent() == []
    evidence.add_tree(tmp_path)
    evidence.assert_free_of({"the database password": DB_PASSWORD, "key secret": KEY_SECRET})


def test_config_reprs_and_sinch_error_texts_mask_every_secret(tmp_path: Path) -> None:
    env = {
        "SINCH_PROJECT_ID": "p",
        "SINCH_APP_ID": "a",
        "SINCH_KEY_ID": "k",
        "SINCH_KEY_SECRET": KEY_SECRET,
        "SINCH_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "CAMPAIGN_DATABASE_URL": f"postgresql://u:{DB_PASSWORD}@db.example/campaign",
    }
    (tmp_path / "config.toml").write_text("")
    loaded_config = config.load_config(tmp_path / "config.toml", env=env)
    shown = repr(loaded_config) + str(loaded_config)
    for value in (KEY_SECRET, WEBHOOK_SECRET, DB_PASSWORD):
        assert value not in shown
    assert "postgresql://u:***@db.example/campaign" in shown
    assert (
        repr(SandboxSettings(key_secret=KEY_SECRET, webhook_secret=WEBHOOK_SECRET)).count("SECRET")
        == 0
    )
    # An answer that echoes a credential (a misconfigured proxy, say) is stored and printed
    # as the error's text: the credential is masked before it gets there.
    body = orjson.dumps({"error": {"code": 401, "message": f"bad key {KEY_SECRET}"}})
    error = responses.error_for_status(401, {}, body, now=datetime.now(UTC))
    assert isinstance(error, SinchAuthError)
    assert KEY_SECRET not in str(error) and "bad key ********" in str(error)
    token = Secret("bearer-token-0123456789")
    assert secrets.redact(f"x {token.reveal()} y {DB_PASSWORD}") == "x ******** y ********"


# --- 2. reports are safe in a spreadsheet ------------------------------------------------------

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@pytest.fixture
def plain_cli(tmp_path: Path) -> Iterator[Cli]:
    with ThreadedSandbox(SandboxSettings(seed=3)) as running:
        yield Cli(tmp_path, running)


def test_csv_report_neutralises_formulas_and_keeps_identities_intact(plain_cli: Cli) -> None:
    # (cell in the recipients file, identity expected in the report)
    cases = [
        ("+12015550101", "+12015550101"),
        ('=HYPERLINK("http://evil.example","x")', '\'=HYPERLINK("http://evil.example","x")'),
        ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
        ("+SUM(1,2)", "'+SUM(1,2)"),
        ("-2+3", "'-2+3"),
        ("@SUM(1)", "'@SUM(1)"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
        ("007", "007"),  # rejected: the raw cell, zeros and all
        ("(201) 555-0104", "+12015550104"),
        ("0012015550105", "+12015550105"),
        ("+12015550101", "+12015550101"),  # the duplicate keeps its raw cell, + included
    ]
    path = plain_cli.tmp / "formulas.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["phone", "first_name", "code"])
        writer.writerows([cell, "=1+1", "-1"] for cell, _ in cases)
    result = plain_cli.run("run", str(plain_cli.campaign_file(recipients=path)))
    assert result.returncode == 1, result.stderr
    report = plain_cli.tmp / "report.csv"
    assert plain_cli.run("report", "e2e", "-o", str(report)).returncode == 0
    rows = list(csv.DictReader(io.StringIO(report.read_bytes().decode(), newline="")))
    assert [r["identity"] for r in rows] == [expected for _, expected in cases]
    assert [r["status"] for r in rows][:2] == ["QUEUED", "REJECTED"]
    assert rows[-1]["status"] == "DUPLICATE"
    for row in rows:
        for column, cell in row.items():
            if cell.startswith(FORMULA_START):
                assert reporting._PHONE.match(cell), (column, cell)
    # The Parquet report holds the same text: typed, no formula can run there, zeros kept.
    parquet = plain_cli.tmp / "report.parquet"
    assert plain_cli.run("report", "e2e", "-o", str(parquet)).returncode == 0
    assert pl.read_parquet(parquet)["identity"].to_list() == [expected for _, expected in cases]


def test_columns_fed_by_callbacks_and_sinch_are_neutralised_too() -> None:
    at = "2026-11-21T12:00:00.000000Z"
    row = (1, "+15551234567", None, "=1+1", "DELIVERED", "@M", "-B", "+E", "=D")
    frame = reporting.report_frame(store_page([(*row, at, at, 1, at, "=HYPERLINK(1)")]))
    expected = {
        "identity": "+15551234567",
        "channel": "'=1+1",
        "message_id": "'@M",
        "batch_id": "'-B",
        "error_code": "'+E",
        "error_description": "'=D",
        "delivery_channel": "'=HYPERLINK(1)",
    }
    got = frame.row(0, named=True)
    assert {column: got[column] for column in expected} == expected


# --- 4. SQL safety -----------------------------------------------------------------------------
# `${name}` cannot hold whitespace, braces or dollars (Sinch's grammar, rendering.PARAMETER_RE),
# so `${"; DROP TABLE recipients; --}` cannot be written. The strongest names that can are the
# same statements with SQL comments for spaces; the names with spaces sit in the file unused.
# A name with a double quote is expressible too: test_a_column_name_with_a_double_quote_can_be_a_parameter.

SQL_NAME_1 = "';DROP/**/TABLE/**/recipients;--"
SQL_NAME_QUOTED = '";DROP/**/TABLE/**/recipients;--'
SQL_NAME_2 = "x')/**/OR/**/1=1/**/--"
SQL_COLUMNS_WITH_SPACES = ['"; DROP TABLE recipients; --', "x') OR 1=1 --"]
SQL_VALUES = ["'); DROP TABLE recipients; --", "Robert'); DROP TABLE campaigns;--", "1' OR '1'='1"]
SQL_CAMPAIGN = "bobby'); DROP TABLE campaigns; --"


def table_counts(url: str) -> dict[str, int]:
    engine = create_engine(store_engine.sync_url(url))
    try:
        with engine.connect() as conn:
            return {
                name: conn.execute(select(text("count(*)")).select_from(table(name))).scalar_one()
                for name in sorted(inspect(conn).get_table_names())
            }
    finally:
        engine.dispose()


def sql_campaign(cli: Cli, mode: str, name_1: str) -> Path:
    """A recipients file whose columns and values are SQL, and a campaign file using them."""
    path = cli.tmp / "sql.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["phone", name_1, SQL_NAME_2, *SQL_COLUMNS_WITH_SPACES])
        for i, value in enumerate(SQL_VALUES):
            writer.writerow([f"+1201555{i:04d}", value, SQL_VALUES[-1 - i], value, value])
    campaign = cli.tmp / "sql.toml"
    message = f"A=${{{name_1}}} B=${{{SQL_NAME_2}}}"
    campaign.write_text(
        f"name = {json.dumps(SQL_CAMPAIGN)}\n"
        f"recipients = {json.dumps(str(path))}\n"
        f'mode = "{mode}"\nchannel = "SMS"\nidentity_column = "phone"\n'
        f"[message]\ntext_message = {{ text = {json.dumps(message)} }}\n"
    )
    return campaign


@pytest.mark.parametrize("mode", ["individual", "batch"])
def test_sql_in_column_names_and_values_is_only_data(
    plain_cli: Cli, database_url: str, mode: str
) -> None:
    assert rendering_accepts(SQL_NAME_1) and rendering_accepts(SQL_NAME_2)
    assert not any(rendering_accepts(name) for name in SQL_COLUMNS_WITH_SPACES)
    cli = plain_cli
    cli.env["CAMPAIGN_DATABASE_URL"] = database_url
    if database_url.startswith("postgresql"):
        assert cli.run("db", "upgrade").returncode == 0
    result = cli.run("run", str(sql_campaign(cli, mode, SQL_NAME_1)))
    assert result.returncode == 0, result.stderr
    texts = {m["identity"]: m["message"]["text_message"]["text"] for m in cli.sent()}
    assert texts == {
        f"+1201555{i:04d}": f"A={value} B={SQL_VALUES[-1 - i]}"
        for i, value in enumerate(SQL_VALUES)
    }
    report = cli.tmp / "sql-report.csv"
    assert cli.run("report", SQL_CAMPAIGN, "-o", str(report)).returncode == 0
    assert [r["status"] for r in read_report(report)] == ["QUEUED"] * len(SQL_VALUES)
    status = json.loads(cli.run("status", SQL_CAMPAIGN, "--json").stdout)
    assert status["name"] == SQL_CAMPAIGN and status["counts"]["QUEUED"] == len(SQL_VALUES)
    counts = table_counts(database_url)
    assert {"campaigns", "recipients", "events", "workers"} <= set(counts)  # all still there
    assert counts["campaigns"] == 1 and counts["recipients"] == len(SQL_VALUES)


@pytest.mark.parametrize("mode", ["individual", "batch"])
def test_a_column_name_with_a_double_quote_can_be_a_parameter(plain_cli: Cli, mode: str) -> None:
    """csv.writer writes that header field quoted, its quote doubled; the column's name is
    the field's value, as every CSV reader reads it (Polars alone kept the doubled quote)."""
    assert rendering_accepts(SQL_NAME_QUOTED)
    result = plain_cli.run("run", str(sql_campaign(plain_cli, mode, SQL_NAME_QUOTED)))
    assert result.returncode == 0, result.stderr
    texts = {m["identity"]: m["message"]["text_message"]["text"] for m in plain_cli.sent()}
    assert texts == {
        f"+1201555{i:04d}": f"A={value} B={SQL_VALUES[-1 - i]}"
        for i, value in enumerate(SQL_VALUES)
    }


def rendering_accepts(name: str) -> bool:
    from campaign.rendering import PARAMETER_RE

    return PARAMETER_RE.fullmatch("${" + name + "}") is not None


async def test_the_store_binds_sql_names_and_values(store: repo.Store) -> None:
    now = datetime.now(UTC)
    names = [*SQL_COLUMNS_WITH_SPACES, SQL_NAME_1, SQL_NAME_2]
    parameters = [orjson.dumps({name: value for name in names}).decode() for value in SQL_VALUES]
    campaign = await store.campaigns.create(
        name=SQL_CAMPAIGN,
        key="01SQLKEY",
        mode="individual",
        channel="SMS",
        definition=orjson.dumps({"name": SQL_CAMPAIGN}).decode(),
        source=SQL_VALUES[0],
        now=now,
    )
    counts = await store.ingest.write(campaign.id, "SMS", loaded(us_numbers(3), parameters), now)
    assert counts.pending == 3
    found = await store.campaigns.find(SQL_CAMPAIGN)
    assert found is not None and found.id == campaign.id and found.source == SQL_VALUES[0]
    claims = await store.recipients.claim(campaign.id, 10, now)
    assert [orjson.loads(c.parameters) for c in claims] == [orjson.loads(p) for p in parameters]
    assert (await store.recipients.counts(campaign.id))[Status.IN_FLIGHT] == 3
    assert [c.name for c in await store.campaigns.all()] == [SQL_CAMPAIGN]


# --- 3. the webhook receiver and the callback parser -------------------------------------------

FUZZ = settings(
    max_examples=250,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=20,
)


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of the strategies, each ``weight`` times as likely as a weight of 1."""
    table_ = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.integers(min_value=0, max_value=len(table_) - 1).flatmap(table_.__getitem__)


@st.composite
def iso_times(draw: st.DrawFn) -> str:
    """ISO-8601 times anywhere in datetime's range, the edges (years 1 and 9999) often, with
    any UTC offset."""
    moment: datetime = draw(
        weighted(
            (1, st.datetimes(max_value=datetime(1, 1, 2))),
            (1, st.datetimes(min_value=datetime(9999, 12, 30))),
            (2, st.datetimes()),
        )
    )
    minutes = draw(st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59))
    return moment.replace(tzinfo=timezone(timedelta(minutes=minutes))).isoformat()


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON document, as a path of keys and indexes."""
    found = [prefix]
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += _paths(inner, (*prefix, index))
    return found


FIXTURE_DOCS = [json.loads(path.read_text()) for path in CALLBACK_FIXTURES]
FIXTURE_PATHS = [(i, path) for i, doc in enumerate(FIXTURE_DOCS) for path in _paths(doc)[1:]]


@st.composite
def mutated_fixtures(draw: st.DrawFn) -> bytes:
    """A real Sinch callback with one place replaced, removed, or its bytes damaged."""
    index, path = draw(st.sampled_from(FIXTURE_PATHS))
    doc = copy.deepcopy(FIXTURE_DOCS[index])
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    how = draw(st.sampled_from(["replace", "remove", "time", "bytes"]))
    if how == "remove":
        del parent[path[-1]]
    elif how == "time":
        parent[path[-1]] = draw(iso_times())
    elif how == "replace":
        parent[path[-1]] = draw(json_values)
    body = json.dumps(doc).encode()
    if how == "bytes":
        cut = draw(st.integers(min_value=0, max_value=len(body)))
        body = body[:cut] + draw(st.binary(max_size=8)) + body[cut + draw(st.integers(0, 8)) :]
    return body


@st.composite
def timed_fixtures(draw: st.DrawFn) -> bytes:
    """A real Sinch callback with arbitrary times."""
    doc = copy.deepcopy(draw(st.sampled_from(FIXTURE_DOCS)))
    for key in ("event_time", "accepted_time"):
        doc[key] = draw(iso_times() | json_values)
    return json.dumps(doc).encode()


callback_bodies = weighted(
    (2, mutated_fixtures()),
    (2, timed_fixtures()),
    (1, json_values.map(lambda value: json.dumps(value).encode())),
    (
        1,
        st.dictionaries(
            st.sampled_from(
                [
                    "message_delivery_report",
                    "message_submit_notification",
                    "event_time",
                    "accepted_time",
                    "correlation_id",
                    "message_metadata",
                ]
            ),
            json_values | iso_times(),
        ).map(lambda value: json.dumps(value).encode()),
    ),
    (1, st.binary(max_size=64)),
)


def check_event(event: tracking.Event) -> None:
    """What the rest of the product relies on in a parsed callback."""
    assert isinstance(event.trigger, str) and event.trigger
    assert event.status is None or event.status in tracking.DELIVERY_STATUSES
    assert event.event_time is None or event.event_time.utcoffset() == timedelta(0)
    assert event.key is None or wire.parse_recipient_key(event.key) is not None
    for value in (event.message_id, event.channel, event.batch_id, event.reason_code):
        assert value is None or (isinstance(value, str) and value)


@FUZZ
@given(body=callback_bodies)
def test_the_callback_parser_raises_only_its_own_error(body: bytes) -> None:
    try:
        event = tracking.parse_callback(body)
    except tracking.CallbackError:
        return
    check_event(event)


def test_the_parser_reads_times_at_the_edges_of_the_calendar() -> None:
    """Found by the fuzzer: year 1 at +01:00 is out of range in UTC (OverflowError)."""
    for moment in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"):
        body = orjson.dumps(
            {"event_time": moment, "message_delivery_report": {"status": "DELIVERED"}}
        )
        assert tracking.parse_callback(body).event_time is None


@pytest.fixture
async def fuzz_receiver(store: repo.Store) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    settings_ = ReceiverSettings(
        secret=Secret(WEBHOOK_SECRET),
        clock=lambda: NOW,
        max_body_bytes=4096,
        max_json_depth=16,
        apply_interval_s=0.01,
    )
    async with ReceiverServer(store, settings_) as server, aiohttp.ClientSession() as session:
        yield session, server.url


timestamps = weighted(
    (6, st.just(str(int(NOW)))),  # mostly in the window, so that the body matters
    (1, st.integers(min_value=0, max_value=10**15).map(str)),
    (1, st.integers(min_value=13, max_value=600).map(lambda digits: "9" * digits)),
    (1, st.from_regex(r"\A[!-~]{1,20}\Z")),
)
_nonces = iter(range(10**9))


@FUZZ
@given(
    body=weighted((8, callback_bodies), (1, st.binary(min_size=4000, max_size=6000))),
    timestamp=timestamps,
    algorithm=weighted(
        (6, st.just(signature.ALGORITHM_VALUE)), (1, st.just("HmacSHA1")), (1, st.none())
    ),
)
async def test_correctly_signed_arbitrary_callbacks_never_get_a_500(
    fuzz_receiver: tuple[aiohttp.ClientSession, str],
    body: bytes,
    timestamp: str,
    algorithm: str | None,
) -> None:
    session, url = fuzz_receiver
    nonce = f"N{next(_nonces)}"
    headers = {
        signature.NONCE: nonce,
        signature.TIMESTAMP: timestamp,
        signature.SIGNATURE: signature.compute(WEBHOOK_SECRET, body, nonce, timestamp),
    }
    if algorithm is not None:
        headers[signature.ALGORITHM] = algorithm
    async with session.post(url, data=body, headers=headers) as response:
        assert response.status in (200, 400, 401, 413), await response.text()
        event(str(response.status) + " " + (await response.text())[:40])
    async with session.get(url + "/health") as health:  # and it keeps serving
        assert health.status == 200


@pytest.mark.parametrize(
    ("timestamp", "why"),
    [
        ("9" * 400, "too big to compare with the clock: was a 500"),
        ("9" * 5000, "too many digits for int()"),
        ("1.8e9", "not an integer"),
        ("+1800000000", "a sign"),
        ("-5", "negative"),
    ],
)
async def test_a_malformed_signed_timestamp_is_401(
    fuzz_receiver: tuple[aiohttp.ClientSession, str], timestamp: str, why: str
) -> None:
    session, url = fuzz_receiver
    body = orjson.dumps({"message_delivery_report": {"message_id": "M", "status": "DELIVERED"}})
    headers = {
        signature.NONCE: "N1",
        signature.TIMESTAMP: timestamp,
        signature.SIGNATURE: signature.compute(WEBHOOK_SECRET, body, "N1", timestamp),
    }
    async with session.post(url, data=body, headers=headers) as response:
        assert response.status == 401, why
        assert (await response.json())["detail"] == "malformed signature timestamp"


async def test_the_golden_vector_passes_the_signature_and_an_unknown_algorithm_does_not(
    store: repo.Store,
) -> None:
    settings_ = ReceiverSettings(
        secret=Secret(VECTOR["secret"]),
        clock=lambda: float(VECTOR["headers"][signature.TIMESTAMP]),
    )
    body = VECTOR["raw_body"].encode()
    async with ReceiverServer(store, settings_) as server, aiohttp.ClientSession() as session:
        wrong = {**VECTOR["headers"], signature.ALGORITHM: "HmacSHA1"}
        async with session.post(server.url, data=body, headers=wrong) as response:
            assert response.status == 401
        async with session.post(server.url, data=body, headers=VECTOR["headers"]) as response:
            assert response.status == 200  # a CONTACT_CREATE callback: stored, nothing applied
    assert await store.events.count() == 1
