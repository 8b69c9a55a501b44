"""Bad input, as a user meets it: each kind gives one clear line and exit 2 before anything is
written or sent, or a REJECTED row with its reason in the report; no row is lost.

Runs that must show per-row results (and the ones that prove nothing was stored) are real
``campaign run`` subprocesses against the threaded sandbox, as in ``test_cli_e2e``. The many
file and setting errors run the same entry point, :func:`campaign.cli.main`, in this process:
the same parser, config loading, checks and error printing, without a second of interpreter
start-up each. Already covered elsewhere, and not repeated here: a missing file, a missing
identity or parameter column and a directory through the CLI
(``test_cli_e2e::test_bad_recipient_files_exit_2_with_one_clear_line``), a text over the SMS
limit of 1600 characters (``test_cli_e2e::test_a_text_over_the_channel_limit_is_rejected_and_not_sent``),
phone formats and rejection order in the loader (``test_loading``).
"""

from __future__ import annotations

import codecs
import gzip
import os
import subprocess
import sys
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from campaign import cli as cli_module
from campaign.sandbox import SandboxSettings, ThreadedSandbox
from tests.e2e.test_cli_e2e import Cli, read_report

HEADER = "phone,first_name,code\n"
ROW = "+12015550101,Ann,1\n"
MESSAGE = 'text_message = { text = "Hi ${first_name}, your code is ${code}." }'


@pytest.fixture
def sandbox() -> Iterator[ThreadedSandbox]:
    with ThreadedSandbox(SandboxSettings(seed=7)) as running:
        yield running


@pytest.fixture
def cli(tmp_path: Path, sandbox: ThreadedSandbox) -> Cli:
    return Cli(tmp_path, sandbox)


@dataclass(frozen=True)
class Outcome:
    code: int
    out: str
    err: str

    @property
    def error(self) -> str:
        """The one line on stderr (asserted to be exactly one), without the prefix."""
        lines = [line for line in self.err.splitlines() if line.strip()]
        assert len(lines) == 1, self.err
        assert lines[0].startswith("campaign: error: "), lines[0]
        return lines[0].removeprefix("campaign: error: ")


@pytest.fixture
def here(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., Outcome]:
    """``campaign ARGS...`` through :func:`campaign.cli.main` in this process, configured as
    the ``cli`` subprocesses are (same environment, same working directory)."""
    for name, value in cli.env.items():
        if name.startswith(("SINCH_", "CAMPAIGN_")):
            monkeypatch.setenv(name, value)
    monkeypatch.chdir(cli.tmp)

    def run(*args: str) -> Outcome:
        capsys.readouterr()
        code = cli_module.main(list(args))
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err)

    return run


def campaign_file(
    cli: Cli,
    recipients: Path,
    *,
    message: str = MESSAGE,
    defaults: str = 'first_name = "there"',
    top: str = "",
    send: str = 'channel_properties = { SMS_SENDER = "+15550000000" }',
    mode: str = "individual",
) -> Path:
    path = cli.tmp / "campaign.toml"
    path.write_text(
        f'name = "bad"\nrecipients = "{recipients}"\nmode = "{mode}"\nchannel = "SMS"\n'
        f'identity_column = "phone"\ndefault_country = "US"\n{top}\n'
        f"[message]\n{message}\n[send]\n{send}\n[defaults]\n{defaults}\n"
    )
    return path


def write(cli: Cli, content: str | bytes, name: str = "recipients.csv") -> Path:
    path = cli.tmp / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def nothing_happened(cli: Cli) -> None:
    assert cli.sent() == []
    assert not cli.db.exists()  # not even a campaign row


def report(here: Callable[..., Outcome], cli: Cli) -> list[dict[str, str]]:
    path = cli.tmp / "report.csv"
    done = here("report", "bad", "--output", str(path))
    assert done.code == 0, done.err
    return read_report(path)


def dry_run_counts(out: str) -> dict[str, str]:
    """The preflight's lines, by their first word (``rejected`` lines joined)."""
    counts: dict[str, str] = {}
    for line in out.splitlines():
        key, _, value = line.partition(" ")
        counts[key] = (counts[key] + " | " if key in counts else "") + value.strip()
    return counts


# --- recipients files: one line, exit 2, nothing written or sent ------------------------------

UTF16_TEXT = HEADER + "+12015550101,José,1\n"


def _xlsx(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as book:
        book.writestr("[Content_Types].xml", "<Types/>")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param(b"", "recipients.csv: is empty", id="empty"),
        pytest.param(
            b"\xef\xbb\xbf\r\n \n", "recipients.csv: is empty", id="only-a-bom-and-blanks"
        ),
        pytest.param(
            "+12015550101,Ann,1\n+12015550102,Bob,2\n",
            "has no column 'phone' (the identity column); "
            "its columns: '+12015550101', 'Ann', '1'; its first line looks like data: "
            "the file needs a header line naming its columns",
            id="no-header",
        ),
        pytest.param(
            "phone|first_name|code\n+12015550101|Ann|1\n",
            "its columns: 'phone|first_name|code'; "
            "the file seems separated by something other than commas",
            id="vertical-bars",
        ),
        pytest.param(
            HEADER + ROW * 3 + "+12015550104,Smith, Ann,4\n" + ROW,
            "recipients.csv: row 4 has 4 fields, the header 3 "
            "(a value with a comma must be in double quotes)",
            id="too-many-fields",
        ),
        pytest.param(
            HEADER + ROW + '+12015550102,"Ann,2\n' + ROW,
            "recipients.csv: row 2 opens a double quote that never closes",
            id="a-quote-never-closed",
        ),
        pytest.param(
            (HEADER + "+12015550101,José,1\n").encode("latin-1") + b"+12015550102,\x81,2\n",
            "recipients.csv: is not UTF-8 text (line 2, byte 38: 0xE9) nor windows-1252; save it "
            "as CSV UTF-8, or name its encoding with 'encoding' in the campaign file",
            id="neither-utf-8-nor-windows-1252",
        ),
        pytest.param(
            UTF16_TEXT.encode("utf-16"),  # with a BOM, as Excel's "Unicode text" saves it
            "recipients.csv: is UTF-16 text, not UTF-8; save it as CSV UTF-8",
            id="utf-16-bom",
        ),
        pytest.param(
            codecs.BOM_UTF16_BE + UTF16_TEXT.encode("utf-16-be"),
            "recipients.csv: is UTF-16 text, not UTF-8; save it as CSV UTF-8",
            id="utf-16-be-bom",
        ),
        pytest.param(
            UTF16_TEXT.encode("utf-16-le"),
            "recipients.csv: looks like UTF-16 text (LE, no BOM), not UTF-8; save it as CSV UTF-8",
            id="utf-16-no-bom",
        ),
        pytest.param(
            UTF16_TEXT.encode("utf-32"),
            "recipients.csv: is UTF-32 text, not UTF-8; save it as CSV UTF-8",
            id="utf-32",
        ),
        pytest.param(
            (HEADER + ROW + "+12015550102,A\x00nn,2\n").encode(),
            "recipients.csv: is neither CSV text nor Parquet (binary data: a NUL byte at line 3,"
            " byte 55)",
            id="nul-byte",
        ),
        pytest.param(
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
            "recipients.csv: is neither CSV text nor Parquet (binary data: a NUL byte at",
            id="png",
        ),
        pytest.param(
            gzip.compress((HEADER + ROW).encode()),
            "recipients.csv: is neither CSV text nor Parquet: it is gzip-compressed; "
            "uncompress it first",
            id="gzip",
        ),
        pytest.param(
            _xlsx,
            "recipients.csv: is neither CSV text nor Parquet: it is a ZIP archive "
            "(an Excel workbook?)",
            id="excel-workbook",
        ),
        pytest.param(
            b"PAR1 and then nothing a Parquet reader can use",
            "recipients.csv: is not a readable Parquet file",
            id="parquet-magic-only",
        ),
    ],
)
def test_a_bad_recipients_file_is_one_line_and_exit_2(
    cli: Cli,
    here: Callable[..., Outcome],
    content: str | bytes | Callable[[Path], None],
    expected: str,
) -> None:
    path = cli.tmp / "recipients.csv"
    if callable(content):
        content(path)
    else:
        write(cli, content)
    result = here("run", str(campaign_file(cli, path)))
    assert result.code == 2, result
    assert expected in result.error
    assert result.error.startswith(f"{path}: ")
    nothing_happened(cli)


def test_a_file_without_header_names_the_identity_column(
    cli: Cli, here: Callable[..., Outcome]
) -> None:
    """With every parameter defaulted, the first column missing is the identity column."""
    path = write(cli, "+12015550101,Ann,1\n+12015550102,Bob,2\n")
    campaign = campaign_file(cli, path, defaults='first_name = "there"\ncode = "0000"')
    result = here("run", str(campaign), "--dry-run")
    assert result.code == 2
    assert result.error == (
        f"{path}: has no column 'phone' (the identity column); its columns: '+12015550101', "
        "'Ann', '1'; its first line looks like data: the file needs a header line naming its "
        "columns"
    )


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        pytest.param(
            pl.DataFrame({"phone": ["+12015550101"], "first_name": [["Ann"]], "code": [1]}),
            "column 'first_name' holds List(String), not text",
            id="list",
        ),
        pytest.param(
            pl.DataFrame({"phone": [{"cc": 1, "n": 2015550101}], "first_name": ["A"], "code": [1]}),
            "column 'phone' holds Struct",
            id="struct",
        ),
        pytest.param(
            pl.DataFrame({"phone": ["+12015550101"], "first_name": [b"\xff"], "code": [1]}),
            "column 'first_name' holds Binary, not text",
            id="bytes",
        ),
        pytest.param(
            pl.DataFrame(
                {"phone": ["+12015550101"], "first_name": ["A"], "code": [timedelta(days=1)]}
            ),
            "column 'code' holds Duration",
            id="duration",
        ),
    ],
)
def test_a_parquet_column_of_nested_values_is_one_line_and_exit_2(
    cli: Cli, here: Callable[..., Outcome], frame: pl.DataFrame, expected: str
) -> None:
    path = cli.tmp / "recipients.parquet"
    frame.write_parquet(path)
    result = here("run", str(campaign_file(cli, path)))
    assert result.code == 2
    assert result.error.startswith(f"{path}: ") and expected in result.error
    nothing_happened(cli)


def test_a_parquet_file_with_number_columns_is_read_as_text(
    cli: Cli, here: Callable[..., Outcome]
) -> None:
    """int64 identities and codes are cast to text: sent, codes keep their digits."""
    path = cli.tmp / "recipients.parquet"
    pl.DataFrame(
        {
            "phone": [12015550101, 2015550102, 12345],
            "first_name": ["A", None, "C"],
            "code": [7, 8, 9],
        }
    ).write_parquet(path)
    result = cli.run("run", str(campaign_file(cli, path)))
    assert result.returncode == 1, result.stderr  # the third row is rejected
    rows = report(here, cli)
    assert [(r["identity"], r["status"]) for r in rows] == [
        ("+12015550101", "QUEUED"),
        ("+12015550102", "QUEUED"),
        ("12345", "REJECTED"),
    ]
    assert rows[2]["error_description"] == "invalid phone number"
    texts = sorted(m["message"]["text_message"]["text"] for m in cli.sent())
    assert texts == ["Hi A, your code is 7.", "Hi there, your code is 8."]


def test_a_row_with_too_many_fields_stops_the_run_before_anything_is_stored(cli: Cli) -> None:
    """The whole file is parsed when it is opened: a bad row 60,001 (past the first slice of
    50,000 that used to be stored already) fails the run with nothing written or sent."""
    rows = "".join(f"+1201{2000000 + i:07d},N,{i}\n" for i in range(60_000))
    path = write(cli, HEADER + rows + "+12015550101,Smith, Ann,1\n" + ROW)
    result = cli.run("run", str(campaign_file(cli, path)))
    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        f"campaign: error: {path}: row 60001 has 4 fields, the header 3 "
        "(a value with a comma must be in double quotes)\n"
    )
    nothing_happened(cli)


def test_rows_with_too_few_fields_are_rejected_for_their_empty_cells(
    cli: Cli, here: Callable[..., Outcome]
) -> None:
    """A short row's missing cells are empty: no value shifts into another column, and the
    row is rejected for what it lacks (or takes the default), never dropped."""
    path = write(cli, HEADER + ROW + "+12015550102,Bob\n+12015550103\n\n+12015550104,,4\n")
    result = cli.run("run", str(campaign_file(cli, path)))
    assert result.returncode == 1, result.stderr
    rows = report(here, cli)
    assert [(r["row"], r["status"], r["error_description"]) for r in rows] == [
        ("1", "QUEUED", ""),
        ("2", "REJECTED", "missing value for parameter 'code'"),
        ("3", "REJECTED", "missing value for parameter 'code'"),
        ("4", "REJECTED", "missing identity"),
        ("5", "QUEUED", ""),
    ]
    assert sorted(m["message"]["text_message"]["text"] for m in cli.sent()) == [
        "Hi Ann, your code is 1.",
        "Hi there, your code is 4.",
    ]


def test_bom_crlf_and_quoted_newlines_are_read_with_the_right_row_numbers(
    cli: Cli, here: Callable[..., Outcome]
) -> None:
    content = (
        "\ufeffphone,first_name,code\r\n"
        '+12015550101,"Ann\r\nMarie",1\r\n'
        '+12015550102,"Bob ""the builder""",2\r\n'
        "not-a-number,Carl,3\r\n"
        '+12015550104,"D,\n\nE",4\r\n'
    )
    path = write(cli, content)
    result = cli.run("run", str(campaign_file(cli, path)))
    assert result.returncode == 1, result.stderr
    rows = report(here, cli)
    assert [(r["row"], r["identity"], r["status"]) for r in rows] == [
        ("1", "+12015550101", "QUEUED"),
        ("2", "+12015550102", "QUEUED"),
        ("3", "not-a-number", "REJECTED"),
        ("4", "+12015550104", "QUEUED"),
    ]
    texts = {m["identity"]: m["message"]["text_message"]["text"] for m in cli.sent()}
    assert texts == {
        "+12015550101": "Hi Ann\r\nMarie, your code is 1.",
        "+12015550102": 'Hi Bob "the builder", your code is 2.',
        "+12015550104": "Hi D,\n\nE, your code is 4.",
    }


def test_a_header_only_file_is_a_campaign_of_nobody(cli: Cli, here: Callable[..., Outcome]) -> None:
    path = write(cli, HEADER)
    dry = here("run", str(campaign_file(cli, path)), "--dry-run")
    assert dry.code == 0, dry.err
    assert dry_run_counts(dry.out)["rows"] == "0"
    result = cli.run("run", str(campaign_file(cli, path)))
    assert result.returncode == 0, result.stderr
    assert report(here, cli) == []
    assert cli.sent() == []


# Runs the command given as arguments, passes on its exit status, and prints its peak RSS (kB)
# as the last line of its output.
_PEAK_RSS = (
    "import os, subprocess, sys\n"
    "process = subprocess.Popen(sys.argv[1:])\n"
    "_, status, usage = os.wait4(process.pid, 0)\n"
    "sys.stdout.flush()\n"
    "print(usage.ru_maxrss, flush=True)\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def test_a_10_mb_field_is_rejected_in_bounded_memory(cli: Cli) -> None:
    big = "x" * (10 << 20)
    path = write(cli, HEADER + f"+12015550101,{big},1\n{big},Ann,2\n" + ROW)
    with (cli.tmp / "out").open("w+") as out, (cli.tmp / "err").open("w+") as err:
        # Started by a small interpreter of its own, which reports the command's peak RSS:
        # Linux counts a forked child's peak from its parent's size at the fork, and this
        # test process may have grown large by now.
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _PEAK_RSS,
                *cli.argv("run", str(campaign_file(cli, path)), "--dry-run"),
            ],
            env=cli.env,
            cwd=cli.tmp,
            stdout=out,
            stderr=err,
        )
        assert process.wait() == 0, (cli.tmp / "err").read_text()
        out.seek(0)
        *lines, peak_kb = out.read().rstrip("\n").split("\n")
        counts = dry_run_counts("\n".join(lines) + "\n")
    assert counts["rows"] == "3"
    assert counts["valid"] == "1"
    assert set(counts["rejected"].split(" | ")) == {
        "1  text of 10485780 characters is over the SMS limit of 1600",
        "1  invalid phone number",
    }
    assert int(peak_kb) < 600 << 10  # kB: two 10 MB cells cost tens of MB, not gigabytes


def test_a_million_identical_rows_are_one_recipient_and_999999_duplicates(cli: Cli) -> None:
    path = write(cli, HEADER + ROW * 1_000_000)
    result = cli.run("run", str(campaign_file(cli, path)), "--dry-run")
    assert result.returncode == 0, result.stderr
    counts = dry_run_counts(result.stdout)
    assert (counts["rows"], counts["valid"], counts["duplicates"], counts["requests"]) == (
        "1,000,000",
        "1",
        "999,999",
        "1",
    )
    assert "rejected" not in counts
    nothing_happened(cli)


# --- campaign files and config.toml -----------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param({"top": "name = = 'x'"}, "invalid TOML: ", id="invalid-toml"),
        pytest.param({"top": 'chanel = "SMS"'}, "unknown key 'chanel'", id="unknown-key"),
        pytest.param(
            {"send": "ttl_seconds = 60"}, "[send]: unknown key 'ttl_seconds'", id="unknown-send-key"
        ),
        pytest.param(
            {"message": "text = 'hi'"},
            "[message]: a message needs exactly one of text_message, media_message,",
            id="no-content-type",
        ),
        pytest.param(
            {"message": MESSAGE + "\nmedia_message = { url = 'https://example.com/a.png' }"},
            "[message]: a message needs exactly one content key; it has text_message, "
            "media_message",
            id="two-content-types",
        ),
        pytest.param(
            {"message": "text_message = { txt = 'Hi' }"},
            "[message]: text_message.text is required",
            id="content-without-its-required-field",
        ),
        pytest.param(
            {"message": "text_message = { text = '' }"},
            "[message]: text_message.text must not be empty",
            id="empty-text",
        ),
        pytest.param(
            {"message": "media_message = { caption = 'no url' }"},
            "[message]: media_message.url is required",
            id="media-without-url",
        ),
        pytest.param(
            {"message": "text_message = { text = 'Hi ${nickname}' }"},
            "recipients.csv: has no column 'nickname' (used by the message, and [defaults] "
            "has no value for it); its columns: 'phone', 'first_name', 'code'",
            id="parameter-neither-column-nor-default",
        ),
        pytest.param({"top": 'mode = "batch"'}, "Cannot overwrite a value", id="key-given-twice"),
    ],
)
def test_a_bad_campaign_file_is_one_line_and_exit_2(
    cli: Cli, here: Callable[..., Outcome], change: dict[str, str], expected: str
) -> None:
    recipients = write(cli, HEADER + ROW)
    path = campaign_file(cli, recipients, **change)
    result = here("run", str(path))
    assert result.code == 2
    assert expected in result.error
    nothing_happened(cli)


def test_an_unknown_channel_names_it_and_the_known_ones(
    cli: Cli, here: Callable[..., Outcome]
) -> None:
    path = campaign_file(cli, write(cli, HEADER + ROW))
    path.write_text(path.read_text().replace('channel = "SMS"', 'channel = "SMSS"'))
    result = here("run", str(path), "--dry-run")
    assert result.code == 2
    assert result.error.startswith(f"{path}: unknown channel 'SMSS' (one of WHATSAPP, RCS, SMS,")


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("requests_per_second = 0", "[sending] requests_per_second must be positive, not 0"),
        ("requests_per_second = -5", "[sending] requests_per_second must be positive, not -5"),
        (
            "requests_per_second = nan",
            "[sending] requests_per_second: expected a finite number, got nan",
        ),
        (
            "requests_per_second = inf",
            "[sending] requests_per_second: expected a finite number, got inf",
        ),
        (
            "requests_per_second = '800'",
            "[sending] requests_per_second: expected a number, got '800'",
        ),
        ("batch_size = -5", "[sending] batch_size must be between 1 and 1000, not -5"),
        ("batch_size = 0", "[sending] batch_size must be between 1 and 1000, not 0"),
        ("batch_size = 1001", "[sending] batch_size must be between 1 and 1000, not 1001"),
        ("batch_size = 10.5", "[sending] batch_size: expected a whole number, got 10.5"),
        ("rate = 10", "[sending]: unknown key 'rate'"),
    ],
)
def test_a_bad_sending_setting_is_one_line_and_exit_2(
    cli: Cli, here: Callable[..., Outcome], setting: str, expected: str
) -> None:
    text = cli.config.read_text().replace("requests_per_second = 800", setting)
    cli.config.write_text(text)
    result = here("run", str(campaign_file(cli, write(cli, HEADER + ROW))), "--dry-run")
    assert result.code == 2
    assert result.error == expected
    nothing_happened(cli)


def test_errors_are_one_line_on_stderr_from_the_real_command(cli: Cli) -> None:
    """The in-process checks above, spot-checked through the installed command."""
    utf16 = write(cli, UTF16_TEXT.encode("utf-16"), "utf16.csv")
    first = cli.run("run", str(campaign_file(cli, utf16)))
    assert (first.returncode, first.stderr) == (
        2,
        f"campaign: error: {utf16}: is UTF-16 text, not UTF-8; save it as CSV UTF-8\n",
    )
    cli.config.write_text(cli.config.read_text().replace("= 800", "= 0"))
    second = cli.run("run", str(campaign_file(cli, write(cli, HEADER + ROW))))
    assert (second.returncode, second.stderr) == (
        2,
        "campaign: error: [sending] requests_per_second must be positive, not 0\n",
    )
    nothing_happened(cli)


# --- identities: one REJECTED row with its reason each, the rest sent normalised --------------

IDENTITIES = [
    # (cell as written, status, identity sent or rejection reason)
    ("+1 201 555 0101", "QUEUED", "+12015550101"),
    ("  (201) 555-0102  ", "QUEUED", "+12015550102"),  # spaces around: trimmed
    ("1.2015550103E+10", "QUEUED", "+12015550103"),  # Excel's scientific notation, no digit lost
    ("1.20155501E+10", "REJECTED", "invalid phone number"),  # digits lost: not guessed
    ("+44 20 7946 0958", "QUEUED", "+442079460958"),  # another country, with +: valid
    ("020 7946 0958", "REJECTED", "invalid phone number"),  # national, not a US number
    ("201-555-CALL", "QUEUED", "+12015552255"),  # a vanity number: letters are keypad digits
    ("2O1-555-01O1", "REJECTED", "invalid phone number"),  # letter O for zero
    ("call me", "REJECTED", "invalid phone number"),  # no number at all
    ("555-0199", "REJECTED", "invalid phone number"),  # too short
    ("+1 201 555 0101 999", "REJECTED", "invalid phone number"),  # too long
    ("📞 201 555 0105", "QUEUED", "+12015550105"),  # an emoji beside the number: ignored
    ("201 5😀55 0106", "REJECTED", "invalid phone number"),  # an emoji among the digits
    ("😀", "REJECTED", "invalid phone number"),
    ('=HYPERLINK("x")', "REJECTED", "invalid phone number"),  # a formula, defused in the report
    ("", "REJECTED", "missing identity"),
]


def test_each_bad_identity_is_rejected_with_its_reason(
    cli: Cli, here: Callable[..., Outcome]
) -> None:
    cells = "".join(
        '"' + raw.replace('"', '""') + f'",N{i},{i}\n' for i, (raw, _, _) in enumerate(IDENTITIES)
    )
    path = write(cli, HEADER + cells)
    result = cli.run("run", str(campaign_file(cli, path)))
    assert result.returncode == 1, result.stderr
    rows = report(here, cli)
    assert len(rows) == len(IDENTITIES)
    for row, (raw, status, detail) in zip(rows, IDENTITIES, strict=True):
        assert row["status"] == status, (raw, row)
        if status == "QUEUED":
            assert row["identity"] == detail
        else:
            assert row["error_description"] == detail, (raw, row)
    formula = next(r for r in rows if "HYPERLINK" in r["identity"])
    assert formula["identity"] == '\'=HYPERLINK("x")'  # cannot run in a spreadsheet
    sent = sorted(m["identity"] for m in cli.sent())
    assert sent == sorted(d for _, s, d in IDENTITIES if s == "QUEUED")


# --- parameter values: inserted literally, never evaluated ------------------------------------

LITERALS = [
    "${first_name}",
    "{{ 7*7 }}",
    "{% if true %}yes{% endif %}",
    "{{ ''.__class__.__mro__ }}",
    "\\${code} $code ${ code } }}{{",
    "é" * 1500,  # long, and under the limit of 1600 characters with the rest of the text
]


@pytest.mark.parametrize("mode", ["individual", "batch"])
def test_template_syntax_in_values_is_sent_literally(
    cli: Cli, here: Callable[..., Outcome], mode: str
) -> None:
    cells = "".join(
        f'+1201555{1000 + i},"{value.replace(chr(34), chr(34) * 2)}",{i}\n'
        for i, value in enumerate(LITERALS)
    )
    path = write(cli, HEADER + cells)
    result = cli.run("run", str(campaign_file(cli, path, mode=mode)))
    assert result.returncode == 0, result.stderr
    texts = {m["identity"]: m["message"]["text_message"]["text"] for m in cli.sent()}
    assert texts == {
        f"+1201555{1000 + i}": f"Hi {value}, your code is {i}." for i, value in enumerate(LITERALS)
    }
    assert Counter(r["status"] for r in report(here, cli)) == {"QUEUED": len(LITERALS)}


# --- hostile paths and headers: refused at once, in one line, in bounded memory ---------------


def _special_paths(tmp: Path) -> list[tuple[Path, str]]:
    fifo = tmp / "pipe.csv"
    os.mkfifo(fifo)
    return [
        (fifo, "is a named pipe (FIFO), not a recipients file"),
        (Path("/dev/zero"), "is a character device, not a recipients file"),
        (Path("/proc/self/status"), "is not a file stored on disk"),
    ]


def test_a_path_that_is_not_a_regular_file_is_refused_at_once(
    cli: Cli, here: Callable[..., Outcome]
) -> None:
    """A FIFO once hung the run for ever (even after a writer gave it a valid file, and
    deaf to SIGINT); /proc/self/status ended in "internal error: OSError: No such device";
    /dev/zero was called UTF-16 text. Nothing is opened that is not a regular file."""
    for path, expected in _special_paths(cli.tmp):
        started = time.monotonic()
        done = here("run", str(campaign_file(cli, path)))
        assert done.code == 2, done.err
        assert expected in done.error
        assert time.monotonic() - started < 10
        nothing_happened(cli)


def test_a_header_over_its_bounds_is_refused_before_polars_reads_it(
    cli: Cli, here: Callable[..., Outcome]
) -> None:
    """A header of about 105 million columns once took 6.9 GB and was still growing after 90
    s; 50,000 columns took 664 MB. A header has bounds, as a row has."""
    wide = write(cli, "phone," + ",".join(f"c{i}" for i in range(50_000)) + "\n" + ROW)
    done = here("run", str(campaign_file(cli, wide)))
    assert done.code == 2, done.err
    assert "the header names 50,001 columns, over 4,096" in done.error
    long = write(cli, b"phone," + b"x" * (3 << 20) + b"\n" + ROW.encode(), "long.csv")
    done = here("run", str(campaign_file(cli, long)))
    assert done.code == 2, done.err
    assert "the header line is over 1 MB" in done.error
    # A quoted column name may hold commas: those are not columns.
    quoted = write(cli, 'phone,first_name,code,"' + "," * 5_000 + '"\n' + ROW, "quoted.csv")
    assert here("run", str(campaign_file(cli, quoted)), "--dry-run").code == 0
    nothing_happened(cli)


def test_a_text_that_no_row_can_fit_is_refused_once_when_the_campaign_is_read(
    cli: Cli, here: Callable[..., Outcome]
) -> None:
    """A 1 MB text was rightly REJECTED for every row, but rendered and measured for each:
    2.2 GB for 2,000 rows. Too long before any parameter is too long for all."""
    recipients = write(cli, HEADER + ROW)
    message = 'text_message = { text = "' + "x" * 1_000_000 + ' ${first_name}" }'
    done = here("run", str(campaign_file(cli, recipients, message=message)))
    assert done.code == 2, done.err
    assert "the text is 1,000,001 characters without its parameters, over the SMS limit" in (
        done.error
    )
    nothing_happened(cli)
