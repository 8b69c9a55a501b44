"""Unit tests for campaign.loading: files in tmp_path, no network, no database."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaign import loading, rendering
from campaign.errors import ConfigError, InputFileError
from campaign.loading import csvblocks
from campaign.messages import limits
from campaign.models import Channel

VALID = "+12015550123"


def _spec(
    path: Path,
    *,
    channel: Channel = Channel.SMS,
    identity: str = "phone",
    country: str | None = "US",
    parameters: tuple[str, ...] = (),
    defaults: Mapping[str, str] | None = None,
    text_limit: limits.TextLimit | None = None,
    identities: tuple[tuple[Channel, str], ...] = (),
) -> loading.LoadSpec:
    return loading.LoadSpec(
        path=path,
        channel=channel,
        identity_column=identity,
        default_country=country,
        parameters=parameters,
        defaults=defaults or {},
        text_limit=text_limit,
        identities=identities,
    )


def _write(tmp_path: Path, content: str | bytes, name: str = "recipients.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def _load(path: Path, rows_per_slice: int = 250_000, **spec: Any) -> pl.DataFrame:
    slices = list(loading.open_recipients(_spec(path, **spec)).slices(rows_per_slice))
    return pl.concat(slices) if slices else pl.DataFrame(schema=loading.OUTPUT_SCHEMA)


def _file_error(path: Path, **spec: Any) -> str:
    with pytest.raises(InputFileError) as caught:
        _load(path, **spec)
    message = str(caught.value)
    assert str(path) in message
    assert "\n" not in message
    return message


# --- reading ----------------------------------------------------------------------------------


def test_output_columns_and_types(tmp_path: Path) -> None:
    path = _write(tmp_path, f"phone,name\n{VALID},Ann\n")
    frame = _load(path, parameters=("name",))
    assert frame.schema == pl.Schema(loading.OUTPUT_SCHEMA)
    assert frame.rows() == [(1, VALID, VALID, None, '{"name":"Ann"}', None, None, None)]


def test_bom_and_crlf(tmp_path: Path) -> None:
    path = _write(tmp_path, b"\xef\xbb\xbfphone,name\r\n+12015550123,Ann\r\n2015550124,Bob\r\n")
    frame = _load(path, parameters=("name",))
    assert frame["identity"].to_list() == [VALID, "+12015550124"]
    assert frame["parameters"].to_list() == ['{"name":"Ann"}', '{"name":"Bob"}']


def test_quoted_fields_with_newlines_commas_and_quotes(tmp_path: Path) -> None:
    content = 'phone,note\r\n"+1 201 555 0123","line one\nline two, ""quoted"""\n2015550124,x\n'
    frame = _load(_write(tmp_path, content), parameters=("note",))
    assert frame["row"].to_list() == [1, 2]
    notes = [json.loads(p)["note"] for p in frame["parameters"]]
    assert notes == ['line one\nline two, "quoted"', "x"]


@pytest.mark.parametrize("delimiter", [",", ";"])
def test_quoted_header_names_are_read_as_csv_means_them(delimiter: str) -> None:
    """A quote in a column's name is doubled in the quoted header field; the name is the
    field's value (Polars kept the doubled quote), and a name holding two quotes is kept."""
    names = ["phone", 'say "hi"', '"', 'two ""', "a,b;c", "plain"]
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=delimiter)
    writer.writerows([names, ["1", "2", "3", "4", "5", "6"]])
    data = buffer.getvalue().encode()
    form = csvblocks.CsvFormat(delimiter=delimiter)
    assert csvblocks.header(io.BytesIO(data), "f.csv", form) == names
    (frame,) = csvblocks.read_blocks(io.BytesIO(data), "f.csv", names[1:4], form=form)
    assert frame.columns == names[1:4] and frame.row(0) == ("2", "3", "4")


def test_every_cell_is_text(tmp_path: Path) -> None:
    path = _write(tmp_path, "id,code,amount\n007,00123,1e3\n0042,-0,3.10\n")
    frame = _load(path, channel=Channel.MESSENGER, identity="id", parameters=("code", "amount"))
    assert frame["identity"].to_list() == ["007", "0042"]
    assert [json.loads(p) for p in frame["parameters"]] == [
        {"code": "00123", "amount": "1e3"},
        {"code": "-0", "amount": "3.10"},
    ]


def test_header_only_is_zero_rows(tmp_path: Path) -> None:
    for content in ("phone,name", "phone,name\n", "phone,name\r\n"):
        source = loading.open_recipients(_spec(_write(tmp_path, content)))
        assert source.columns == ("phone", "name")
        assert list(source.slices()) == []


def test_row_numbers_are_contiguous_across_slices(tmp_path: Path) -> None:
    lines = [f"+1201555{i:04d}" if i % 3 else "" for i in range(1, 12)]
    path = _write(tmp_path, "phone\n" + "\n".join(f'"{line}"' for line in lines) + "\n")
    slices = list(loading.open_recipients(_spec(path)).slices(rows_per_slice=4))
    assert [s.height for s in slices] == [4, 4, 3]
    frame = pl.concat(slices)
    assert frame["row"].to_list() == list(range(1, 12))
    assert frame["identity_raw"].to_list() == [line or None for line in lines]


def test_rows_per_slice_must_be_positive(tmp_path: Path) -> None:
    source = loading.open_recipients(_spec(_write(tmp_path, f"phone\n{VALID}\n")))
    with pytest.raises(ValueError, match="rows_per_slice"):
        source.slices(0)


def test_stopping_early_is_fine(tmp_path: Path) -> None:
    path = _write(tmp_path, "phone\n" + f"{VALID}\n" * 50)
    for frame in loading.open_recipients(_spec(path)).slices(rows_per_slice=3):
        assert frame.height == 3
        break


def test_a_blank_line_is_a_row_without_identity(tmp_path: Path) -> None:
    frame = _load(_write(tmp_path, f"phone,name\n{VALID},A\n\n2015550124,B\n"))
    assert frame["row"].to_list() == [1, 2, 3]
    assert frame["reason"].to_list() == [None, loading.MISSING_IDENTITY, None]


def test_parquet_columns_are_cast_to_text(tmp_path: Path) -> None:
    path = tmp_path / "recipients.parquet"
    pl.DataFrame(
        {
            "phone": [12015550123, None, 2015550124],
            "code": [7, 8, 9],
            "ratio": [0.5, None, 2.0],
            "when": pl.Series(["2024-01-02", "2024-01-03", "2024-01-04"]).str.to_date(),
        }
    ).write_parquet(path)
    source = loading.open_recipients(_spec(path, parameters=("code", "ratio", "when")))
    assert source.format == "parquet"
    frame = pl.concat(list(source.slices(rows_per_slice=2)))
    assert frame["row"].to_list() == [1, 2, 3]
    assert frame["identity"].to_list() == [VALID, None, "+12015550124"]
    assert frame["reason"].to_list() == [None, loading.MISSING_IDENTITY, None]
    assert json.loads(frame["parameters"][0]) == {"code": "7", "ratio": "0.5", "when": "2024-01-02"}


def test_parquet_float_identity_is_repaired(tmp_path: Path) -> None:
    path = tmp_path / "floats.parquet"
    pl.DataFrame({"phone": [12015550123.0, 2015550124.0]}).write_parquet(path)
    assert _load(path)["identity"].to_list() == [VALID, "+12015550124"]


def test_format_is_detected_by_content_not_name(tmp_path: Path) -> None:
    parquet = tmp_path / "really-parquet.csv"
    pl.DataFrame({"phone": [VALID]}).write_parquet(parquet)
    assert loading.open_recipients(_spec(parquet)).format == "parquet"
    text = _write(tmp_path, f"phone\n{VALID}\n", name="really-csv.parquet")
    assert loading.open_recipients(_spec(text)).format == "csv"


# --- identities and rejections -----------------------------------------------------------------


def test_phone_formats_through_the_loader(tmp_path: Path) -> None:
    raws = [
        "+1 201-555-0123",
        "(201) 555-0123",
        "201.555.0123",
        "1.2015550123E10",
        "12015550123.0",
        "  2015550123  ",
        "0044 20 7946 0958",
        "+44 (0)20 7946 0958",
        "555-CALL-NOW",
        "+1 555-123-4567",
        "12345",
        "📞",
    ]
    content = "phone\n" + "".join(f'"{raw}"\n' for raw in raws)
    frame = _load(_write(tmp_path, content))
    assert frame["identity_raw"].to_list() == raws
    assert frame["identity"].to_list() == [VALID] * 6 + ["+442079460958"] * 2 + [None] * 4
    assert frame["reason"].to_list() == [None] * 8 + [loading.INVALID_PHONE] * 4


def test_default_country_decides_national_numbers(tmp_path: Path) -> None:
    path = _write(tmp_path, "phone\n07400 123456\n020 7946 0958\n+12015550123\n")
    assert _load(path, country="GB")["identity"].to_list() == [
        "+447400123456",
        "+442079460958",
        VALID,
    ]
    assert _load(path, country=None)["identity"].to_list() == [None, None, VALID]


def test_other_channels_keep_the_identity_trimmed(tmp_path: Path) -> None:
    content = 'psid\n  abc-123  \n"+1 (201) 555"\n""\n"   "\n'
    frame = _load(_write(tmp_path, content), channel=Channel.MESSENGER, identity="psid")
    assert frame["identity"].to_list() == ["abc-123", "+1 (201) 555", None, None]
    assert frame["identity_raw"].to_list() == ["  abc-123  ", "+1 (201) 555", None, "   "]
    assert frame["reason"].to_list() == [None, None] + [loading.MISSING_IDENTITY] * 2


def test_rejection_reasons_and_their_order(tmp_path: Path) -> None:
    content = (
        "phone,first,last\n"
        f"{VALID},Ann,Lee\n"  # valid
        ",Ann,Lee\n"  # missing identity
        "   ,,\n"  # missing identity beats missing parameters
        "12345,,\n"  # invalid phone number beats missing parameters
        f"{VALID},,Lee\n"  # first missing parameter
        f"{VALID},Ann, \n"  # a space is empty
        f"{VALID},,\n"  # two missing: the first in the message's order
    )
    frame = _load(_write(tmp_path, content), parameters=("first", "last"))
    assert frame["reason"].to_list() == [
        None,
        loading.MISSING_IDENTITY,
        loading.MISSING_IDENTITY,
        loading.INVALID_PHONE,
        "missing value for parameter 'first'",
        "missing value for parameter 'last'",
        "missing value for parameter 'first'",
    ]
    # A rejected row has no identity, whatever the reason.
    assert frame["identity"].to_list() == [VALID] + [None] * 6
    assert loading.missing_parameter("first") == "missing value for parameter 'first'"


def test_a_text_over_the_channel_limit_is_rejected_as_rendered(tmp_path: Path) -> None:
    """The loader renders each row's text (vectorised) and measures it in characters, exactly
    as the renderer would: multi-byte characters count once, a parameter used twice twice."""
    message = {"text_message": {"text": "Hi ${name}, ${ name }! Code ${code}: ü"}}
    limit = limits.text_limit("SMS", message)
    assert limit is not None
    template = rendering.MessageTemplate.compile(message)
    names = ["Ann", "x" * 780, "é" * 791, "y" * 792, "", "😀" * 800]
    content = "phone,name,code\n" + "".join(f"{VALID},{name},42\n" for name in names)
    frame = _load(_write(tmp_path, content), parameters=("name", "code"), text_limit=limit)
    for name, reason in zip(names, frame["reason"], strict=True):
        length = len(template.render({"name": name, "code": "42"})["text_message"]["text"])
        if length > 1600:
            assert reason == f"text of {length} characters is over the SMS limit of 1600"
        else:
            assert reason == ("missing value for parameter 'name'" if not name else None)
    # 17 characters besides the names: 2 * 791 + 17 = 1,599 fits, 2 * 792 + 17 = 1,601 does not.
    assert frame["reason"].is_not_null().to_list() == [False, False, False, True, True, True]
    # Channels without a limit, and messages without text, are not measured.
    assert limits.text_limit("WHATSAPP", {"media_message": {"url": "u"}}) is None
    assert limits.text_limit("APPLEBC", message) is None


def test_defaults_fill_empty_cells(tmp_path: Path) -> None:
    content = f"phone,first,code\n{VALID},Ann,1\n{VALID},,2\n{VALID},  ,\n"
    frame = _load(
        _write(tmp_path, content),
        parameters=("first", "code", "shop"),
        defaults={"first": "there", "shop": "Main St", "code": ""},
    )
    assert frame["reason"].to_list() == [None, None, None]
    assert [json.loads(p) for p in frame["parameters"]] == [
        {"first": "Ann", "code": "1", "shop": "Main St"},
        {"first": "there", "code": "2", "shop": "Main St"},
        {"first": "there", "code": "", "shop": "Main St"},
    ]


def test_parameters_json_keeps_text_exactly(tmp_path: Path) -> None:
    names = ["Zoë", 'say "hi"', "back\\slash", "tab\tand\nnewline", "中文 😀", " padded "]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["phone", "name", "x"])
    writer.writerows([VALID, name, "1"] for name in names)
    frame = _load(_write(tmp_path, buffer.getvalue()), parameters=("x", "name", "x"))
    for text, name in zip(frame["parameters"], names, strict=True):
        assert list(json.loads(text).items()) == [("x", "1"), ("name", name)]
    assert "Zoë" in frame["parameters"][0]  # UTF-8, not \\u escapes


def test_no_parameters_is_an_empty_object(tmp_path: Path) -> None:
    assert _load(_write(tmp_path, f"phone\n{VALID}\n"))["parameters"].to_list() == ["{}"]


def test_prepare_slice_is_pure(tmp_path: Path) -> None:
    plan = loading.SlicePlan(
        identity_column="phone",
        phone=True,
        default_country="US",
        parameters=(loading.Parameter("name", "name", None),),
    )
    batch = pl.DataFrame(
        {
            "__campaign_row__": pl.Series([7, 8], dtype=pl.UInt64),
            "phone": ["2015550123", None],
            "name": ["Ann", "Bob"],
        }
    )
    assert loading.prepare_slice(batch, plan).rows() == [
        (7, "2015550123", VALID, None, '{"name":"Ann"}', None, None, None),
        (8, None, None, loading.MISSING_IDENTITY, '{"name":"Bob"}', None, None, None),
    ]


# --- file-level problems ----------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    assert "no such file" in _file_error(tmp_path / "absent.csv")


def test_directory(tmp_path: Path) -> None:
    assert "directory" in _file_error(tmp_path)


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, f"phone\n{VALID}\n")

    def refuse(self: Path, *args: Any, **kwargs: Any) -> Any:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", refuse)
    assert "cannot be read (Permission denied)" in _file_error(path)


@pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf", b"\n\n", b"  \r\n"])
def test_empty_file(tmp_path: Path, content: bytes) -> None:
    assert "is empty" in _file_error(_write(tmp_path, content))


def test_binary_file(tmp_path: Path) -> None:
    message = _file_error(_write(tmp_path, b"phone\n\x00\x01\x02\x89PNG"))
    assert "neither CSV text nor Parquet" in message


def test_neither_utf8_nor_windows_1252(tmp_path: Path) -> None:
    # 0x81 is no character in Windows-1252, and no start of one in UTF-8.
    message = _file_error(_write(tmp_path, b"phone,name\n+12015550123,Jos\x81\n"))
    assert "not UTF-8 text (line 2, byte 27: 0x81) nor windows-1252" in message
    assert "'encoding'" in message


EXPORTS = 'phone,name,city\n+12015550123,José,Besançon\n2015550124,"Ørsted, Ann",Köln €\n'


@pytest.mark.parametrize(
    ("delimiter", "encoding", "assumed"),
    [
        (",", "utf-8", None),
        (";", "utf-8", "fields separated by semicolons"),
        (",", "windows-1252", "windows-1252 text (not UTF-8)"),
        (";", "windows-1252", "windows-1252 text (not UTF-8) with fields separated by semicolons"),
        ("\t", "utf-8", "fields separated by tabs"),
    ],
)
def test_files_as_people_export_them_load_as_their_utf8_comma_twin(
    tmp_path: Path, delimiter: str, encoding: str, assumed: str | None
) -> None:
    twin = _load(_write(tmp_path, EXPORTS, "twin.csv"), parameters=("name", "city"))
    text = EXPORTS.replace(",", delimiter).replace(f'"Ørsted{delimiter} Ann"', '"Ørsted, Ann"')
    path = _write(tmp_path, text.encode(encoding), "export.csv")
    source = loading.open_recipients(_spec(path, parameters=("name", "city")))
    assert source.assumed == assumed
    assert pl.concat(source.slices()).equals(twin)
    # Said in the campaign file, it is not an assumption.
    said = _spec(path, parameters=("name", "city"))
    said = dataclasses.replace(said, delimiter=delimiter, encoding=encoding)
    source = loading.open_recipients(said)
    assert source.assumed is None and pl.concat(source.slices()).equals(twin)


def test_broken_parquet(tmp_path: Path) -> None:
    path = _write(tmp_path, b"PAR1 this is not really parquet", name="broken.parquet")
    assert "not a readable Parquet file" in _file_error(path)


def test_missing_identity_column_lists_the_columns(tmp_path: Path) -> None:
    message = _file_error(_write(tmp_path, "mobile,name\n+12015550123,Ann\n"))
    assert "no column 'phone' (the identity column)" in message
    assert "'mobile', 'name'" in message


def test_missing_column_suggests_a_near_name(tmp_path: Path) -> None:
    assert "did you mean 'Phone '?" in _file_error(_write(tmp_path, "Phone ,name\nx,y\n"))


def test_a_file_separated_by_something_else_gets_a_hint(tmp_path: Path) -> None:
    message = _file_error(_write(tmp_path, "phone|name\n+12015550123|Ann\n"))
    assert "separated by something other than commas" in message


def test_missing_parameter_column_without_default(tmp_path: Path) -> None:
    path = _write(tmp_path, f"phone,name\n{VALID},Ann\n")
    message = _file_error(path, parameters=("name", "code"))
    assert "no column 'code'" in message
    assert "[defaults] has no value for it" in message
    # With a default, the column may be absent.
    assert _load(path, parameters=("name", "code"), defaults={"code": "X"}).height == 1


def test_repeated_column_is_ambiguous(tmp_path: Path) -> None:
    message = _file_error(_write(tmp_path, f"phone,name,phone\n{VALID},Ann,{VALID}\n"))
    assert "'phone' appears more than once" in message


def test_nested_parquet_column(tmp_path: Path) -> None:
    path = tmp_path / "nested.parquet"
    pl.DataFrame({"phone": [VALID], "tags": [["a", "b"]]}).write_parquet(path)
    assert "column 'tags' holds" in _file_error(path, parameters=("tags",))


def test_unknown_default_country(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="XX"):
        loading.open_recipients(_spec(_write(tmp_path, f"phone\n{VALID}\n"), country="XX"))


def test_file_errors_come_before_any_row(tmp_path: Path) -> None:
    """open_recipients fails; nothing to iterate."""
    with pytest.raises(InputFileError):
        loading.open_recipients(_spec(_write(tmp_path, b"phone\n\x81\xff\n")))


def test_a_row_with_too_many_fields(tmp_path: Path) -> None:
    content = f'phone,name\n{VALID},Ann\n{VALID},"Bob\nBrown"\n{VALID},Smith, John\n'
    assert "row 3 has 3 fields, the header 2" in _file_error(_write(tmp_path, content))


def test_a_quote_that_never_closes(tmp_path: Path) -> None:
    path = _write(tmp_path, f'phone,name\n{VALID},"Ann\n{VALID},Bob\n')
    assert "row 1 opens a double quote that never closes" in _file_error(path)
    # A stray quote inside an unquoted value opens nothing, but is blamed on its row too.
    path = _write(tmp_path, f'phone,name\n{VALID},Ann\n{VALID},Bo"b\n{VALID},Cy\n')
    assert "row 2 opens a double quote that never closes" in _file_error(path)


def test_malformed_rows_are_found_when_the_file_is_opened(tmp_path: Path) -> None:
    """Not when its slice is read: by then earlier slices may have been stored."""
    rows = "".join(f"+1201555{i % 10000:04d},x\n" for i in range(3000))
    path = _write(tmp_path, f"phone,name\n{rows}{VALID},Smith, John\n")
    with pytest.raises(InputFileError, match="row 3001 has 3 fields, the header 2"):
        loading.open_recipients(_spec(path))


def test_a_record_over_the_size_bound_is_refused_not_buffered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(csvblocks, "_MAX_RECORD_BYTES", 1 << 20)
    data = b'phone,name\n+12015550123,x\n+12015550124,"' + b"x\n" * (1 << 20)
    with pytest.raises(InputFileError, match=r"row 2 is over 1 MB \(a quoted field that never"):
        list(csvblocks.read_blocks(io.BytesIO(data), "t.csv", None, block_bytes=64 << 10))


# --- the block reader ----------------------------------------------------------------------------


def _records(rng: random.Random, rows: int) -> list[list[str]]:
    pieces = ["a", "b", ",", '"', "\n", "\r\n", " ", "é", "", "0", "+1"]
    return [
        ["".join(rng.choice(pieces) for _ in range(rng.randrange(4))) for _ in range(3)]
        for _ in range(rows)
    ]


@pytest.mark.parametrize("block_bytes", [1, 2, 3, 5, 16, 1 << 20])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_blocks_read_like_the_whole_file(block_bytes: int, seed: int) -> None:
    rng = random.Random(seed)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=rng.choice(["\n", "\r\n"]))
    writer.writerow(["x", 'y "quoted"', "z,comma"])
    writer.writerows(_records(rng, 60))
    data = ("\ufeff" if seed == 2 else "") + buffer.getvalue()
    whole = pl.read_csv(data.encode(), infer_schema=False)
    columns = ["z,comma", "x"]
    blocks = list(
        csvblocks.read_blocks(io.BytesIO(data.encode()), "test.csv", columns, block_bytes)
    )
    assert pl.concat(blocks).rows() == whole.select(columns).rows()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    records=st.lists(
        st.lists(st.text(alphabet='ab,"\n\r é1+', max_size=6), min_size=2, max_size=2),
        max_size=20,
    ),
    block_bytes=st.integers(1, 40),
)
def test_blocks_read_like_the_whole_file_hypothesis(
    records: list[list[str]], block_bytes: int
) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerow(["a", "b"])
    writer.writerows(records)
    data = buffer.getvalue().encode()
    whole = pl.read_csv(data, infer_schema=False)
    blocks = list(csvblocks.read_blocks(io.BytesIO(data), "t.csv", ["a", "b"], block_bytes))
    assert pl.concat([whole.clear(), *blocks]).rows() == whole.rows()


# --- several identities -----------------------------------------------------------------------

SEVERAL = (
    "phone,psid,name\n"
    "(201) 555-0101,p1,Ann\n"  # every channel
    ",p2,Bob\n"  # no phone: Messenger alone
    "not a number,p3,Cy\n"  # an invalid phone: Messenger alone
    "2015550104,,Di\n"  # no Messenger id: WhatsApp and SMS
    ",,Ed\n"  # nothing: rejected
    "bad,,Flo\n"  # only an invalid phone: rejected as such
    "+12015550101,p7,Gus\n"  # Ann's first choice again: a duplicate
)
IDENTITIES = ((Channel.SMS, "phone"), (Channel.MESSENGER, "psid"))


def _both(phone: str, psid: str | None = None) -> str:
    several = [{"channel": "WHATSAPP", "identity": phone}, {"channel": "SMS", "identity": phone}]
    if psid is not None:
        several.append({"channel": "MESSENGER", "identity": psid})
    return orjson.dumps(several).decode()


def test_a_row_is_sent_on_every_identity_it_has(tmp_path: Path) -> None:
    path = _write(tmp_path, SEVERAL)
    spec = _spec(path, channel=Channel.WHATSAPP, identities=IDENTITIES)
    frame = _load(path, channel=Channel.WHATSAPP, identities=IDENTITIES)
    assert frame.select("identity", "reason", "channel", "identities").rows() == [
        ("+12015550101", None, None, _both("+12015550101", "p1")),
        ("p2", None, "MESSENGER", None),
        ("p3", None, "MESSENGER", None),
        ("+12015550104", None, None, _both("+12015550104")),
        (None, loading.MISSING_IDENTITY, None, None),
        (None, loading.INVALID_PHONE, None, None),
        ("+12015550101", None, None, _both("+12015550101", "p7")),
    ]
    # Duplicates are decided on the first identity, whichever pass normalised it.
    source = loading.open_recipients(spec)
    with loading.NormalisedNumbers() as numbers:
        found = source.duplicates(rows_per_slice=3, keep=numbers)
        marked = pl.concat([found.mark(s) for s in source.slices(2, numbers)])
    assert marked.drop("duplicate_of").equals(frame)
    assert marked.get_column("duplicate_of").to_list() == [None] * 6 + [1]


def test_an_identity_column_the_file_lacks_is_named_with_its_channel(tmp_path: Path) -> None:
    path = _write(tmp_path, "phone,name\n+12015550101,Ann\n")
    message = _file_error(path, channel=Channel.WHATSAPP, identities=IDENTITIES)
    assert "'psid'" in message and "the MESSENGER identity column" in message


def test_one_identity_gives_no_channel_nor_identities(tmp_path: Path) -> None:
    path = _write(tmp_path, SEVERAL)
    frame = _load(path, channel=Channel.WHATSAPP)
    assert frame.get_column("channel").null_count() == frame.height
    assert frame.get_column("identities").null_count() == frame.height
