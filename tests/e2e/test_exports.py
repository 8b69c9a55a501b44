"""Recipients files as people export them, through the CLI against the sandbox: Excel's
semicolon-separated CSV in Windows-1252 is recognised, said in one line, and sends what its UTF-8
comma twin sends; the campaign file may say so itself; a file edited after its campaign loaded
it is named in a warning."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.test_cli_e2e import Cli, read_report
from tests.e2e.test_cli_e2e import cli as cli
from tests.e2e.test_cli_e2e import sandbox as sandbox

ROWS = [
    ("+12015550101", "José", "Besançon"),
    ("(201) 555-0102", "Zoë", "Köln €5"),
    ("2015550103", "Ørsted; Ann", "Malmö"),
]


def _write(cli: Cli, name: str, delimiter: str, encoding: str) -> Path:
    def cell(value: str) -> str:
        return f'"{value}"' if delimiter in value or "," in value else value

    lines = [delimiter.join(("phone", "name", "city"))]
    lines += [delimiter.join(cell(value) for value in row) for row in ROWS]
    path = cli.tmp / name
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode(encoding))
    return path


def _campaign(cli: Cli, name: str, recipients: Path, extra: str = "") -> Path:
    path = cli.tmp / f"{name}.toml"
    path.write_text(
        f'name = "{name}"\nrecipients = "{recipients}"\nmode = "individual"\nchannel = "SMS"\n'
        f'identity_column = "phone"\ndefault_country = "US"\n{extra}'
        '[message]\ntext_message = { text = "Hi ${name} in ${city}" }\n',
        encoding="utf-8",
    )
    return path


def _texts(cli: Cli) -> dict[str, str]:
    return {m["identity"]: m["message"]["text_message"]["text"] for m in cli.sent()}


def test_an_excel_export_sends_what_its_utf8_twin_sends(cli: Cli) -> None:
    twin = _campaign(cli, "twin", _write(cli, "twin.csv", ",", "utf-8"))
    assert cli.run("run", str(twin)).returncode == 0
    expected = _texts(cli)
    assert expected["+12015550103"] == "Hi Ørsted; Ann in Malmö"

    export = _write(cli, "export.csv", ";", "windows-1252")
    cli.sandbox.state.messages.clear()
    result = cli.run("run", str(_campaign(cli, "export", export)))
    assert result.returncode == 0, result.stderr
    said = [line for line in result.stdout.splitlines() if "read as" in line]
    assert said == [
        f"{export}: read as windows-1252 text (not UTF-8) with fields separated by semicolons"
        " (say so with 'encoding' and 'delimiter' in the campaign file)"
    ]
    assert _texts(cli) == expected
    for name in ("twin", "export"):
        report = cli.tmp / f"{name}.report.csv"
        assert cli.run("report", name, "-o", str(report)).returncode == 0
    assert [r["identity"] for r in read_report(cli.tmp / "export.report.csv")] == [
        r["identity"] for r in read_report(cli.tmp / "twin.report.csv")
    ]


def test_the_campaign_file_may_say_how_its_file_is_written(cli: Cli) -> None:
    export = _write(cli, "export.csv", ";", "windows-1252")
    extra = 'delimiter = ";"\nencoding = "cp1252"\n'
    result = cli.run("run", str(_campaign(cli, "said", export, extra)))
    assert result.returncode == 0, result.stderr
    assert "read as" not in result.stdout
    assert sorted(_texts(cli).values())[0] == "Hi José in Besançon"
    bad = cli.run("run", str(_campaign(cli, "bad", export, 'encoding = "klingon"\n')))
    assert bad.returncode == 2 and "'encoding' 'klingon' is not an encoding" in bad.stderr


def test_a_file_edited_after_its_campaign_loaded_it_is_named(cli: Cli) -> None:
    recipients = _write(cli, "people.csv", ",", "utf-8")
    campaign = _campaign(cli, "edited", recipients)
    assert cli.run("run", str(campaign)).returncode == 0
    recipients.write_text(recipients.read_text() + "+12015550199,New,Oslo\n")
    again = cli.run("run", str(campaign))
    assert again.returncode == 0, again.stderr
    assert f"warning: {recipients} changed after campaign 'edited' loaded it" in again.stdout
    assert len(cli.sent()) == len(ROWS)  # the loaded rows, sent once; the new row is not
