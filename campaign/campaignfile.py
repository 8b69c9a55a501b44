"""The campaign file (TOML): what to send, to whom, how. Parsed into a frozen, validated spec.

Paths are relative to the file itself. Unknown keys are refused with their name, so a typo
never silently changes what is sent.
"""

from __future__ import annotations

import codecs
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import phonenumbers

from campaign import quiet, rendering
from campaign.errors import InputFileError
from campaign.messages import content, limits, violations
from campaign.models import SINCH_CHANNELS, Channel

Mode = Literal["batch", "individual"]
MODES: tuple[Mode, ...] = ("batch", "individual")

# Makes the error of a problem in the file, naming the file.
Fail = Callable[[str], InputFileError]

_TOP_KEYS = {
    "name",
    "recipients",
    "mode",
    "channel",
    "identity_column",
    "contact_id_column",
    "default_country",
    "message",
    "send",
    "defaults",
    "in_doubt_policy",
    "in_doubt_grace",
    "stale_after",
    "exclusive",
    "send_after",
    "deadline",
    "quiet_hours",
    "timezone",
    "timezone_column",
    "identities",
    "delimiter",
    "encoding",
}
InDoubtPolicy = Literal["hold", "resend"]
# Optional fields of a send request that a campaign may set; passed to Sinch as written.
SEND_KEYS = {
    "channel_properties",
    "channel_priority_order",
    "ttl",
    "send_after",
    "message_content_type",
    "processing_strategy",
    "queue",
    "callback_url",
    "conversation_metadata",
}
_TTL_RE = re.compile(r"^(\d+)s?$")


@dataclass(frozen=True)
class CampaignSpec:
    name: str
    recipients: Path
    mode: Mode
    channel: Channel
    identity_column: str
    default_country: str | None
    message: Mapping[str, Any]
    send: Mapping[str, Any] = field(default_factory=dict)
    defaults: Mapping[str, str] = field(default_factory=dict)
    path: Path | None = None
    # IN_DOUBT recipients with no callback after `in_doubt_grace` seconds are held (listed in
    # status and the report) or sent again.
    in_doubt_policy: InDoubtPolicy = "hold"
    in_doubt_grace: float = 600.0
    # QUEUED recipients with no callback after this many seconds are reported as stale.
    stale_after: float = 3600.0
    # true: one `campaign run` at a time; a second one exits 4 without sending. false (the
    # default): any number work together, sharing the rate and never sending a row twice.
    exclusive: bool = False
    # Not before `send_after`; nothing after `deadline` (see campaign.windows).
    send_after: datetime | None = None
    deadline: datetime | None = None
    # No sends in each recipient's quiet hours (see campaign.quiet). The recipient's time zone
    # comes from `timezone_column` when the file has it, else from the phone number, else it
    # is `timezone`.
    quiet_hours: quiet.QuietHours | None = None
    timezone: str | None = None
    timezone_column: str | None = None  # None: a column named "timezone", if there is one
    # Further channels the recipient is reached on, each from a column, after the first choice
    # (``channel``, ``identity_column``), in the campaign's order (``[identities]``).
    identities: tuple[tuple[Channel, str], ...] = ()
    # A CSV recipients file's field separator and encoding; None: told from the file.
    delimiter: str | None = None
    encoding: str | None = None

    @property
    def channels(self) -> tuple[Channel, ...]:
        """Every channel a recipient may be reached on: the first choice, then the others."""
        return (self.channel, *(channel for channel, _ in self.identities))

    @property
    def quiet_plan(self) -> quiet.Plan | None:
        """Quiet hours as the dispatcher applies them, or None without them."""
        if self.quiet_hours is None or self.timezone is None:
            return None
        return quiet.Plan(self.quiet_hours, self.timezone)

    @property
    def parameters(self) -> tuple[str, ...]:
        """The recipient columns the message uses."""
        return rendering.parameters_of(self.message)

    def definition(self) -> dict[str, Any]:
        """What is stored with the campaign: enough to send it again without the file."""
        return (
            {
                "name": self.name,
                "mode": self.mode,
                "channel": self.channel.value,
                "identity_column": self.identity_column,
                "default_country": self.default_country,
                "message": dict(self.message),
                "send": dict(self.send),
                "defaults": dict(self.defaults),
                "in_doubt_policy": self.in_doubt_policy,
                "in_doubt_grace": self.in_doubt_grace,
                "stale_after": self.stale_after,
                "exclusive": self.exclusive,
                "send_after": self.send_after.isoformat() if self.send_after else None,
                "deadline": self.deadline.isoformat() if self.deadline else None,
                "quiet_hours": str(self.quiet_hours) if self.quiet_hours else None,
                "timezone": self.timezone,
                "timezone_column": self.timezone_column,
            }
            | self._identities_definition()
            | self._csv_definition()
        )

    def _identities_definition(self) -> dict[str, Any]:
        # Only when there are some: a campaign stored before [identities] existed compares
        # equal to its file still.
        if not self.identities:
            return {}
        return {"identities": {channel.value: column for channel, column in self.identities}}

    def _csv_definition(self) -> dict[str, Any]:
        said = {"delimiter": self.delimiter, "encoding": self.encoding}
        return {key: value for key, value in said.items() if value is not None}


def load(path: Path) -> CampaignSpec:
    """Read and validate a campaign file; :class:`InputFileError` names the file and problem."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputFileError(f"{path}: campaign file not found") from None
    except IsADirectoryError:
        raise InputFileError(f"{path}: is a directory, not a campaign file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"{path}: cannot read campaign file: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputFileError(f"{path}: invalid TOML: {exc}") from None
    return parse(data, base=path.parent, where=str(path))


def parse(data: Mapping[str, Any], *, base: Path, where: str) -> CampaignSpec:
    def fail(problem: str) -> InputFileError:
        return InputFileError(f"{where}: {problem}")

    for key in data:
        if key not in _TOP_KEYS:
            raise fail(f"unknown key {key!r}")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise fail("'name' must be a non-empty string of at most 200 characters")
    recipients = data.get("recipients")
    if not isinstance(recipients, str) or not recipients:
        raise fail("'recipients' must name the recipients file")
    mode = data.get("mode", "individual")
    if mode not in MODES:
        raise fail(f"'mode' must be 'batch' or 'individual', not {mode!r}")
    channel, identity_column, country = _audience(data, fail)
    identities = _identities(data, channel, fail)
    message = _message(data, channel, fail)
    send = _send_table(data, fail)
    _check_priority(send, (channel, *(c for c, _ in identities)), fail)
    defaults = _defaults(data, fail)
    policy, durations, exclusive = _safety(data, fail)
    send_after, deadline = (_moment(data.get(key), key, fail) for key in ("send_after", "deadline"))
    if send_after and deadline and deadline <= send_after:
        raise fail("'deadline' must be after 'send_after'")
    hours, timezone, timezone_column = _quiet_hours(data, fail)
    delimiter, encoding = _csv_form(data, fail)
    return CampaignSpec(
        delimiter=delimiter,
        encoding=encoding,
        quiet_hours=hours,
        timezone=timezone,
        timezone_column=timezone_column,
        exclusive=exclusive,
        send_after=send_after,
        deadline=deadline,
        in_doubt_policy=policy,
        in_doubt_grace=durations["in_doubt_grace"],
        stale_after=durations["stale_after"],
        name=name.strip(),
        recipients=(base / recipients),
        mode=mode,
        channel=channel,
        identity_column=identity_column,
        identities=identities,
        default_country=country,
        message=message,
        send=send,
        defaults=defaults,
        path=base,
    )


def _audience(data: Mapping[str, Any], fail: Fail) -> tuple[Channel, str, str | None]:
    """The channel, the column holding each recipient's identity, the default country.
    With ``contact_id_column`` instead, recipients are Sinch contacts: the channel is
    :attr:`Channel.CONTACT_ID`, and Sinch picks the one it sends on."""
    contact_column = data.get("contact_id_column")
    if contact_column is not None:
        if "identity_column" in data or "channel" in data:
            raise fail(
                "'contact_id_column' names recipients by Sinch contact ID, instead of "
                "'channel' and 'identity_column': give one or the other"
            )
        if not isinstance(contact_column, str) or not contact_column:
            raise fail("'contact_id_column' must name the column holding the contact IDs")
        return Channel.CONTACT_ID, contact_column, None
    channel_name = data.get("channel")
    if channel_name not in SINCH_CHANNELS:
        known = ", ".join(c.value for c in SINCH_CHANNELS)
        raise fail(f"unknown channel {channel_name!r} (one of {known})")
    channel = Channel(channel_name)
    identity_column = data.get("identity_column")
    if not isinstance(identity_column, str) or not identity_column:
        raise fail("'identity_column' must name the column holding the identities")
    country = data.get("default_country")
    if country is not None:
        if not isinstance(country, str) or country.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise fail(f"'default_country' {country!r} is not an ISO 3166 country code")
        country = country.upper()
    return channel, identity_column, country


def _csv_form(data: Mapping[str, Any], fail: Fail) -> tuple[str | None, str | None]:
    """``delimiter`` (one character, not a quote nor a line end) and ``encoding`` (a codec
    Python knows, by any of its names)."""
    delimiter, encoding = data.get("delimiter"), data.get("encoding")
    if delimiter is not None and (
        not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in '"\r\n'
    ):
        raise fail('\'delimiter\' must be one character, e.g. ";" or "\\t"')
    if encoding is not None:
        try:
            codecs.lookup(encoding if isinstance(encoding, str) else "")
        except LookupError:
            raise fail(
                f'\'encoding\' {encoding!r} is not an encoding, e.g. "utf-8" or "windows-1252"'
            ) from None
    return delimiter, encoding


def _identities(
    data: Mapping[str, Any], channel: Channel, fail: Fail
) -> tuple[tuple[Channel, str], ...]:
    """``[identities]``: a channel per key, the column holding each recipient's identity on it
    as its value (one phone column may serve several channels)."""
    table = data.get("identities")
    if table is None:
        return ()
    if channel is Channel.CONTACT_ID:
        raise fail(
            "[identities] adds channels to 'channel': recipients named by 'contact_id_column' "
            "are reached on the channels Sinch knows for the contact"
        )
    if not isinstance(table, dict):
        raise fail('[identities] must be a table of CHANNEL = "column", e.g. SMS = "phone"')
    found: list[tuple[Channel, str]] = []
    for name, column in table.items():
        if name not in SINCH_CHANNELS:
            known = ", ".join(c.value for c in SINCH_CHANNELS)
            raise fail(f"[identities]: unknown channel {name!r} (one of {known})")
        if name == channel:
            raise fail(f"[identities]: {name} is the campaign's 'channel' already")
        if not isinstance(column, str) or not column:
            raise fail(f"[identities] {name}: name the column holding the identities")
        found.append((Channel(name), column))
    return tuple(found)


def _check_priority(send: Mapping[str, Any], channels: tuple[Channel, ...], fail: Fail) -> None:
    """``channel_priority_order`` may name only channels the campaign has identities for: Sinch
    could not send on the others (for contacts, Sinch knows the contact's channels)."""
    order = send.get("channel_priority_order")
    if order is None or channels == (Channel.CONTACT_ID,):
        return
    for item in order:
        if item not in channels:
            have = ", ".join(c.value for c in channels)
            raise fail(
                f"[send] channel_priority_order: {item} has no identities in this campaign "
                f"(it has {have}; add it to [identities])"
            )


def _message(data: Mapping[str, Any], channel: Channel, fail: Fail) -> dict[str, Any]:
    """The ``[message]`` table, checked as far as it can be before any recipient."""
    message = data.get("message")
    if not isinstance(message, dict) or not message:
        raise fail("a [message] table is required")
    try:
        rendering.message_content_type(message)
        rendering.MessageTemplate.compile(message)
    except rendering.RenderError as exc:
        raise fail(f"[message]: {exc}") from None
    # The fields Sinch cannot do without, checked as its synchronous 400 would check them:
    # otherwise every single send is refused (or, for an empty text, loading fails).
    problems = violations.Violations()
    content.check_message(message, "", problems, strict=False)
    if problems:
        field, description = problems.items[0]
        raise fail(f"[message]: {field.lstrip('.')} {description}")
    # A text too long before any parameter is too long for every row: refused once, here, not
    # rendered and measured a row at a time (a 1 MB text took gigabytes to reject each row).
    limit = limits.text_limit(channel.value, message)
    if limit is not None:
        fixed = sum(len(piece) for is_parameter, piece in limit.pieces if not is_parameter)
        if fixed > limit.limit:
            raise fail(
                f"[message]: the text is {fixed:,} characters without its parameters, over the "
                f"{channel.value} limit of {limit.limit:,}: no recipient could receive it"
            )
    return message


def _send_table(data: Mapping[str, Any], fail: Fail) -> dict[str, Any]:
    send = data.get("send", {})
    if not isinstance(send, dict):
        raise fail("'send' must be a table")
    for key in send:
        if key not in SEND_KEYS:
            raise fail(f"[send]: unknown key {key!r}")
    return _normalise_send(send, fail)


def _defaults(data: Mapping[str, Any], fail: Fail) -> dict[str, str]:
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise fail("'defaults' must be a table")
    for key, value in defaults.items():
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise fail(f"[defaults]: {key!r} must be a string or a number")
    return {str(k): str(v) for k, v in defaults.items()}


def _safety(data: Mapping[str, Any], fail: Fail) -> tuple[InDoubtPolicy, dict[str, float], bool]:
    """What to do with recipients in doubt, when a callback is overdue, and whether the
    campaign takes one worker only."""
    policy = data.get("in_doubt_policy", "hold")
    if policy not in ("hold", "resend"):
        raise fail(f"'in_doubt_policy' must be 'hold' or 'resend', not {policy!r}")
    durations = {}
    for key, default in (("in_doubt_grace", 600.0), ("stale_after", 3600.0)):
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise fail(f"'{key}' must be a number of seconds, at least 0")
        durations[key] = float(value)
    exclusive = data.get("exclusive", False)
    if not isinstance(exclusive, bool):
        raise fail("'exclusive' must be true or false")
    return policy, durations, exclusive


def _quiet_hours(
    data: Mapping[str, Any], fail: Fail
) -> tuple[quiet.QuietHours | None, str | None, str | None]:
    """``quiet_hours``, ``timezone`` and ``timezone_column``, checked together."""
    text, timezone = data.get("quiet_hours"), data.get("timezone")
    column = data.get("timezone_column")
    if column is not None and (not isinstance(column, str) or not column):
        raise fail("'timezone_column' must name a column of the recipients file")
    if timezone is not None and not (isinstance(timezone, str) and quiet.is_zone(timezone)):
        raise fail(f"'timezone' {timezone!r} is not an IANA time zone, e.g. 'Europe/Paris'")
    if text is None:
        return None, timezone, column
    if not isinstance(text, str):
        raise fail("'quiet_hours' must be a range of local times, e.g. \"21:00-08:00\"")
    try:
        hours = quiet.QuietHours.parse(text)
    except quiet.QuietHoursError as exc:
        raise fail(str(exc)) from None
    if timezone is None:
        raise fail(
            "'quiet_hours' needs 'timezone': the zone of recipients whose own cannot be told"
            " from the file or their number"
        )
    return hours, timezone, column


def _moment(value: Any, key: str, fail: Fail) -> datetime | None:
    """A TOML offset date-time, or an ISO 8601 string with an offset (``Z`` or ``+02:00``)."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise fail(f"'{key}': {value!r} is not an ISO 8601 date and time") from None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise fail(f"'{key}' needs a date, a time and a UTC offset, e.g. 2026-12-01T09:00:00Z")
    return value.astimezone(UTC)


def _normalise_send(send: dict[str, Any], fail: Fail) -> dict[str, Any]:
    send = dict(send)
    if "ttl" in send:
        match = _TTL_RE.match(str(send["ttl"]))
        if not match or not 3 <= int(match.group(1)) <= 315_576_000_000:
            raise fail('[send] ttl: give seconds (3 to 315576000000), e.g. 86400 or "86400s"')
        send["ttl"] = f"{int(match.group(1))}s"
    properties = send.get("channel_properties")
    if properties is not None and not (
        isinstance(properties, dict) and all(isinstance(v, str) for v in properties.values())
    ):
        raise fail("[send] channel_properties: a table of strings")
    order = send.get("channel_priority_order")
    if order is not None:
        if not isinstance(order, list) or not order:
            raise fail("[send] channel_priority_order: a list of channels")
        for item in order:
            if item not in SINCH_CHANNELS:
                raise fail(f"[send] channel_priority_order: unknown channel {item!r}")
    return send
