"""Quiet hours (pure): ranges, zones of a phone number, the most cautious reading, DST."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import phonenumbers
import polars as pl
import pytest
from phonenumbers import timezone as phone_timezone

from campaign import loading, quiet
from campaign.errors import InputFileError
from campaign.loading import zones
from campaign.models import Channel

NIGHT = quiet.QuietHours.parse("21:00-08:00")
AUSTRALIA = quiet.zone_key(phone_timezone.time_zones_for_number(phonenumbers.parse("+61412345678")))


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_ranges_parse_and_wrap_midnight() -> None:
    assert quiet.QuietHours(time(21), time(8)) == NIGHT
    assert str(quiet.QuietHours.parse(" 9:05 - 17:30 ")) == "09:05-17:30"
    lunch = quiet.QuietHours.parse("12:00-14:00")  # within one day
    assert lunch.quiet("UTC", utc("2026-11-21T12:00"))
    assert not lunch.quiet("UTC", utc("2026-11-21T14:00"))  # the end is excluded
    assert NIGHT.quiet("UTC", utc("2026-11-21T23:59"))
    assert NIGHT.quiet("UTC", utc("2026-11-22T07:59"))
    assert not NIGHT.quiet("UTC", utc("2026-11-22T08:00"))


@pytest.mark.parametrize("text", ["21-08", "25:00-08:00", "21:00-21:00", "21:60-08:00", ""])
def test_bad_ranges_are_refused(text: str) -> None:
    with pytest.raises(quiet.QuietHoursError):
        quiet.QuietHours.parse(text)


def test_a_zone_opens_at_its_own_local_morning() -> None:
    at = utc("2026-11-21T03:00")  # 22:00 in New York, 12:00 in Tokyo
    assert NIGHT.opens("America/New_York", at) == utc("2026-11-21T13:00")  # 08:00 EST
    assert NIGHT.opens("Asia/Tokyo", at) == at  # open now
    assert NIGHT.closes("Asia/Tokyo", at) == utc("2026-11-21T12:00")  # 21:00 JST


def test_daylight_saving_moves_the_instant_not_the_local_time() -> None:
    # Paris: 08:00 is 07:00Z in winter and 06:00Z from 29 March 2026 (CEST).
    assert NIGHT.opens("Europe/Paris", utc("2026-03-28T02:00")) == utc("2026-03-28T07:00")
    assert NIGHT.opens("Europe/Paris", utc("2026-03-29T02:00")) == utc("2026-03-29T06:00")


def test_a_number_of_a_country_with_several_zones_takes_the_most_cautious_window() -> None:
    # An Australian mobile may be anywhere from Perth to Lord Howe, and on Christmas and the
    # Cocos Islands: it may be sent only when it is day in all of them.
    assert "Australia/Perth" in AUSTRALIA and "Australia/Sydney" in AUSTRALIA
    at = utc("2026-11-21T22:30")  # 09:30 in Sydney, but 06:30 in Perth and 05:00 in Cocos
    assert not NIGHT.quiet("Australia/Sydney", at)
    assert NIGHT.quiet(AUSTRALIA, at)
    assert NIGHT.opens(AUSTRALIA, at) == utc("2026-11-22T01:30")  # 08:00 in Cocos (UTC+6:30)
    assert NIGHT.closes(AUSTRALIA, utc("2026-11-22T01:30")) == utc("2026-11-22T10:00")


def test_zones_that_never_share_an_open_hour_fall_back_to_the_campaign_zone() -> None:
    long_nights = quiet.QuietHours.parse("18:00-10:00")  # open 8 hours a day
    apart = quiet.zone_key(["UTC", "Etc/GMT-12"])  # 12 hours apart: never both open
    assert long_nights.opens(apart, utc("2026-11-21T00:00")) is None
    plan = quiet.Plan(long_nights, "Europe/Paris")
    at = utc("2026-11-21T03:00")
    assert plan.due(apart, at) == plan.due("Europe/Paris", at) == utc("2026-11-21T09:00")
    assert plan.closes(apart, utc("2026-11-21T09:00")) == utc("2026-11-21T17:00")
    assert plan.due(None, at) == utc("2026-11-21T09:00")  # no zone known: the campaign's


def test_the_gate_keeps_states_until_the_first_boundary() -> None:
    gate = quiet.Gate(quiet.Plan(NIGHT, "UTC"))
    at = utc("2026-11-21T03:00")
    assert gate.expired(at)
    assert gate.held_until("America/New_York", at) == utc("2026-11-21T13:00")
    assert gate.held_until("Asia/Tokyo", at) is None
    assert gate.closes("Asia/Tokyo", at) == utc("2026-11-21T12:00")
    assert gate.until == utc("2026-11-21T12:00")  # Tokyo closes before New York opens
    assert not gate.expired(at + timedelta(hours=8))
    later = utc("2026-11-21T12:00")
    assert gate.expired(later)
    assert gate.held_until("Asia/Tokyo", later) == utc("2026-11-21T23:00")


def test_a_message_that_would_leave_sinchs_queue_after_its_window_closes_is_held() -> None:
    """Tokyo's window closes at 12:00 UTC: at 11:50, a message that waits 5 minutes in the
    queue goes; one that waits 20 would reach the channel at night: held until 23:00."""
    gate = quiet.Gate(quiet.Plan(NIGHT, "UTC"))
    at = utc("2026-11-21T11:50")
    assert gate.held_for("Asia/Tokyo", at, 0.0) is None
    assert gate.held_for("Asia/Tokyo", at, 300.0) is None
    assert gate.held_for("Asia/Tokyo", at, 1_200.0) == utc("2026-11-21T23:00")
    assert gate.held_for("America/New_York", at, 0.0) == utc("2026-11-21T13:00")


# --- each recipient's zone -------------------------------------------------------------------

NUMBERS = [
    "+12015550123",  # New Jersey: one zone
    "+14155550123",  # California
    "+18005550123",  # toll free: anywhere in North America
    "+61412345678",  # Australian mobile: the whole country
    "+61292345678",  # Sydney landline
    "+79161234567",  # Russian mobile
    "+4915112345678",  # Germany: one zone for every number
    "+33612345678",
    "+5511987654321",  # São Paulo mobile
    "+442071234567",
    "+390612345678",  # Rome: an Italian leading zero
    "+393123456789",  # Italian mobile
    "+525512345678",  # Mexico City
    "+6281234567890",
    "+17875550123",  # Puerto Rico, sharing +1
    None,
]


def _phonenumbers_answer(e164: str) -> str | None:
    found = phone_timezone.time_zones_for_number(phonenumbers.parse(e164))
    return None if found == ("Etc/Unknown",) else quiet.zone_key(found)


def test_phone_zones_are_phonenumbers_own_answers() -> None:
    series = pl.Series(NUMBERS, dtype=pl.String)
    expected = [_phonenumbers_answer(n) if n else None for n in NUMBERS]
    assert zones.phone_zones(series).to_list() == expected
    assert expected[0] == "America/New_York"
    assert expected[6] == "Europe/Berlin"
    assert expected[3] == AUSTRALIA


def test_a_time_zone_column_overrides_and_bad_names_are_reasons() -> None:
    cells = pl.Series(["Asia/Tokyo", " ", None, "Mars/Base", "Europe/Paris|Asia/Tokyo"])
    key, reason = zones.column_zones(cells)
    assert key.to_list() == ["Asia/Tokyo", None, None, None, "Asia/Tokyo|Europe/Paris"]
    assert reason.to_list() == [None, None, None, "unknown time zone 'Mars/Base'", None]


def test_loading_gives_each_row_its_zone(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text(
        "phone,timezone\n"
        "+12015550123,\n"  # from the number
        "+12015550124,Asia/Tokyo\n"  # the column wins
        "+12015550125,Mars/Base\n"  # rejected with its reason
        "+61412345678,\n"  # a country with several zones: all of them
    )
    spec = loading.LoadSpec(
        path=path,
        channel=Channel.SMS,
        identity_column="phone",
        default_country=None,
        parameters=(),
        defaults={},
        zones=True,
    )
    frame = pl.concat(loading.open_recipients(spec).slices())
    assert frame["time_zone"].to_list() == ["America/New_York", "Asia/Tokyo", None, AUSTRALIA]
    assert frame["reason"].to_list() == [None, None, "unknown time zone 'Mars/Base'", None]
    without = dataclasses.replace(spec, zones=False)
    assert pl.concat(loading.open_recipients(without).slices())["time_zone"].null_count() == 4
    named = dataclasses.replace(spec, zone_column="tz")
    with pytest.raises(InputFileError, match="no column 'tz'"):
        loading.open_recipients(named)


def test_every_regions_example_numbers_get_phonenumbers_answer() -> None:
    checked = 0
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in (
            phonenumbers.PhoneNumberType.MOBILE,
            phonenumbers.PhoneNumberType.FIXED_LINE,
            phonenumbers.PhoneNumberType.TOLL_FREE,
        ):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
            assert zones.phone_zone_key(e164) == _phonenumbers_answer(e164), e164
            checked += 1
    assert checked > 600
