"""The sandbox's settings: one frozen dataclass, validated once, replaceable at runtime.

Every knob has a default that behaves like a healthy Sinch project with the sandbox
credentials of :mod:`campaign.localcredentials` (the ones the config presents when
``sandbox = true``). ``PATCH /_sandbox/settings`` builds a new instance with
:func:`patched`; the running app always reads the current one from its state, so faults,
limits and callbacks change without a restart.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import types
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from campaign import localcredentials
from campaign.errors import ConfigError
from campaign.messages.channels import CHANNELS

UnknownParameterPolicy = Literal["literal", "empty", "error"]
ProcessingMode = Literal["CONVERSATION", "DISPATCH"]

TRIGGERS = ("MESSAGE_DELIVERY", "MESSAGE_SUBMIT")


@dataclass(frozen=True)
class FailureRule:
    """Recipients whose identity matches ``pattern`` fail with reason ``code``.

    ``pattern`` is a regular expression searched in the identity, both as sent and without
    its leading ``+`` (so ``^1555`` and ``^\\+1555`` both work). ``channel`` limits the rule
    to one channel; ``None`` applies it on every channel.
    """

    pattern: str
    code: str = "RECIPIENT_NOT_REACHABLE"
    channel: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        try:
            re.compile(self.pattern)
        except re.error as exc:
            raise ConfigError(f"failure rule {self.pattern!r}: bad regex: {exc}") from None
        if not re.fullmatch(r"[A-Z][A-Z0-9_]*", self.code):
            raise ConfigError(f"failure rule {self.pattern!r}: bad reason code {self.code!r}")
        if self.channel is not None and self.channel not in CHANNELS:
            raise ConfigError(f"failure rule {self.pattern!r}: unknown channel {self.channel!r}")

    @functools.cached_property
    def regex(self) -> re.Pattern[str]:
        """The compiled pattern."""
        return re.compile(self.pattern)

    def matches(self, channel: str, identity: str) -> bool:
        """Whether this rule makes ``identity`` fail on ``channel``."""
        if self.channel is not None and self.channel != channel:
            return False
        plain = identity.removeprefix("+")
        return self.regex.search(identity) is not None or self.regex.search(plain) is not None

    @classmethod
    def parse(cls, text: str) -> FailureRule:
        """``REGEX[=CODE[:CHANNEL]]``, the command-line form."""
        pattern, sep, tail = text.rpartition("=")
        if sep and re.fullmatch(r"[A-Z][A-Z0-9_]*(:[A-Z]+)?", tail):
            code, _, channel = tail.partition(":")
            return cls(pattern=pattern, code=code, channel=channel or None)
        return cls(pattern=text)

    @classmethod
    def parse_channel(cls, text: str) -> FailureRule:
        """``CHANNEL:REGEX[:CODE]``, the ``--fail-channel`` form (the regex may hold ``:``)."""
        channel, sep, rest = text.partition(":")
        if not sep or not rest:
            raise ConfigError(f"--fail-channel {text!r}: expected CHANNEL:REGEX[:CODE]")
        pattern, sep, code = rest.rpartition(":")
        if sep and re.fullmatch(r"[A-Z][A-Z0-9_]*", code):
            return cls(pattern=pattern, code=code, channel=channel.upper())
        return cls(pattern=rest, channel=channel.upper())


@dataclass(frozen=True)
class SandboxSettings:
    """How the sandbox behaves. Times are seconds unless the name says ``_ms``.

    Everything may change at runtime (``PATCH /_sandbox/settings``) except
    ``callback_concurrency``, which sizes the sender pool when the app starts.

    ``outbound_rate`` (messages/s the app's MT queue drains at) defaults to 100,000 so that
    the demo and the tests do not wait; real Sinch defaults to 20/s (25/s per the OAS). Set it
    low to see a campaign's delivery trail its sending.
    """

    # Identity of the emulated project and its credentials.
    project_id: str = localcredentials.PROJECT_ID
    app_ids: tuple[str, ...] = (localcredentials.APP_ID,)
    key_id: str = localcredentials.KEY_ID
    # Not in the repr: the embedded sandbox carries the real SINCH_KEY_SECRET of the config.
    key_secret: str = field(default=localcredentials.KEY_SECRET, repr=False)
    token_lifetime: int = 3600
    # Per-project limit over a sliding one-second window (0: unlimited) and 429 storms.
    rate_limit: int = 800
    storm_every_s: float = 0.0
    storm_duration_s: float = 0.0
    # The app (``GET /apps/{app_id}``) and its MT queue: accepted messages leave it towards the
    # channel at ``outbound_rate`` per second, and callbacks start when a message leaves. Real
    # Sinch drains at 20-25/s by default; the sandbox's default keeps the demo and tests quick.
    # A full queue (``queue_limit``, 500,000 at Sinch) refuses with a 429 without Retry-After.
    outbound_rate: int = 100_000
    queue_limit: int = 500_000
    processing_mode: ProcessingMode = "CONVERSATION"
    # An app deleted mid-run: once read (``GET /apps/{app_id}``) this many times, an app is
    # forgotten, and every call naming it answers 404 (0: never).
    delete_app_after_reads: int = 0
    # Faults on the API endpoints (``faults_on_token``: on /oauth2/token too).
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    error_rate_500: float = 0.0
    error_rate_503: float = 0.0
    drop_rate: float = 0.0
    faults_on_token: bool = False
    # Where and how delivery callbacks go (``callback_url`` None: only per-request URLs).
    callback_url: str | None = None
    webhook_secret: str | None = field(default=localcredentials.WEBHOOK_SECRET, repr=False)
    # The app's ``callback_settings.secret_for_overridden_callback_urls``: what signs callbacks
    # sent to a request's own ``callback_url``. None: the same as ``webhook_secret``; "": unsigned.
    override_secret: str | None = field(default=None, repr=False)
    triggers: tuple[str, ...] = TRIGGERS
    queued_delay_s: float = 0.2
    queued_jitter_s: float = 0.1
    delivered_delay_s: float = 1.0
    delivered_jitter_s: float = 0.5
    read_delay_s: float = 3.0
    read_jitter_s: float = 2.0
    failure_rules: tuple[FailureRule, ...] = ()
    # WhatsApp's 24-hour customer care window: a WhatsApp message that is not a
    # template_message, to an identity without an open window, fails there with
    # OUTSIDE_ALLOWED_SENDING_WINDOW (then falls back to the request's next channel). A window
    # is open for identities ``whatsapp_window`` finds, and for a deterministic share
    # ``whatsapp_window_share`` of the others (by a hash of the identity). Default: every
    # window open, as for a project whose customers have all just written.
    whatsapp_window: str | None = None
    whatsapp_window_share: float = 1.0
    # A batch holding any identity this regex finds is refused whole with a 400 that names no
    # recipient (as Sinch may answer for an identity it cannot resolve): None refuses none.
    refuse_batches_with: str | None = None
    # Inbound replies (campaign.sandbox.inbound): identities this regex finds answer each
    # delivered message with ``inbound_text``, ``inbound_delay_s`` after its last event, as a
    # signed MESSAGE_INBOUND callback to the settings' callback_url and the webhooks that want
    # MESSAGE_INBOUND. None: nobody replies.
    inbound_pattern: str | None = None
    inbound_text: str = "STOP"
    inbound_delay_s: float = 0.2
    duplicate_callback_rate: float = 0.0
    reorder: bool = False
    callback_retry_base_s: float = 0.5
    callback_retry_factor: float = 2.0
    callback_max_attempts: int = 5
    callback_timeout_s: float = 5.0
    callback_concurrency: int = 32
    # Request handling. ``record_history`` False: messages and callback attempts are counted
    # but not kept for /_sandbox/ inspection (long benchmarks; about 2 KB per message).
    record_history: bool = True
    unknown_parameter: UnknownParameterPolicy = "literal"
    reject_unknown_fields: bool = True
    seed: int | None = None

    def __post_init__(self) -> None:
        problems = list(_problems(self))
        if problems:
            raise ConfigError("sandbox settings: " + "; ".join(problems))

    def secret_for_overridden_urls(self) -> str | None:
        """The secret that signs callbacks to a per-request ``callback_url`` (None: unsigned)."""
        if self.override_secret is None:
            return self.webhook_secret
        return self.override_secret or None

    def window_open(self, identity: str) -> bool:
        """Whether ``identity`` has an open WhatsApp 24-hour customer care window."""
        plain = identity.removeprefix("+")
        if self.whatsapp_window is not None:
            found = re.compile(self.whatsapp_window)
            if found.search(identity) or found.search(plain):
                return True
        if self.whatsapp_window_share >= 1.0:
            return True
        return zlib.crc32(plain.encode()) / 2**32 < self.whatsapp_window_share

    def failure_for(self, channel: str, identity: str) -> FailureRule | None:
        """The first failure rule that applies to ``identity`` on ``channel``."""
        for rule in self.failure_rules:
            if rule.matches(channel, identity):
                return rule
        return None


def _problems(s: SandboxSettings) -> list[str]:
    out: list[str] = []
    if not s.project_id or not s.app_ids or not all(s.app_ids):
        out.append("project_id and app_ids must be non-empty")
    if not s.key_id or not s.key_secret:
        out.append("key_id and key_secret must be non-empty")
    if s.token_lifetime < 1:
        out.append("token_lifetime must be at least 1")
    if s.rate_limit < 0:
        out.append("rate_limit must be >= 0 (0: unlimited)")
    if s.outbound_rate < 1 or s.queue_limit < 1:
        out.append("outbound_rate and queue_limit must be at least 1")
    if s.processing_mode not in ("CONVERSATION", "DISPATCH"):
        out.append("processing_mode must be CONVERSATION or DISPATCH")
    names = ("error_rate_500", "error_rate_503", "drop_rate", "duplicate_callback_rate")
    for name in (*names, "whatsapp_window_share"):
        if not 0.0 <= getattr(s, name) <= 1.0:
            out.append(f"{name} must be between 0 and 1")
    if s.error_rate_500 + s.error_rate_503 > 1.0:
        out.append("error_rate_500 + error_rate_503 must not exceed 1")
    for f in dataclasses.fields(s):
        if f.name.endswith(("_s", "_ms")) and getattr(s, f.name) < 0:
            out.append(f"{f.name} must be >= 0")
    if s.storm_every_s and s.storm_duration_s > s.storm_every_s:
        out.append("storm_duration_s must not exceed storm_every_s")
    if s.callback_url is not None and not re.match(r"https?://[^/\s]+", s.callback_url):
        out.append(f"callback_url {s.callback_url!r} is not an http(s) URL")
    if unknown := set(s.triggers) - set(TRIGGERS):
        out.append(f"unknown triggers {sorted(unknown)}")
    if s.callback_retry_factor < 1.0:
        out.append("callback_retry_factor must be >= 1")
    if s.callback_max_attempts < 1 or s.callback_concurrency < 1:
        out.append("callback_max_attempts and callback_concurrency must be >= 1")
    if s.callback_timeout_s <= 0:
        out.append("callback_timeout_s must be positive")
    if s.refuse_batches_with is not None:
        try:
            re.compile(s.refuse_batches_with)
        except re.error as exc:
            out.append(f"refuse_batches_with: bad regex: {exc}")
    if s.inbound_pattern is not None:
        try:
            re.compile(s.inbound_pattern)
        except re.error as exc:
            out.append(f"inbound_pattern: bad regex: {exc}")
    if s.inbound_delay_s < 0:
        out.append("inbound_delay_s must not be negative")
    if s.whatsapp_window is not None:
        try:
            re.compile(s.whatsapp_window)
        except re.error as exc:
            out.append(f"whatsapp_window: bad regex: {exc}")
    if s.unknown_parameter not in ("literal", "empty", "error"):
        out.append("unknown_parameter must be literal, empty or error")
    return out


# --- JSON forms, for the control endpoint ---------------------------------------------------


def to_json(settings: SandboxSettings) -> dict[str, Any]:
    """The settings as a JSON-ready mapping (tuples become lists, rules become objects)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if f.name == "failure_rules":
            value = [dataclasses.asdict(rule) for rule in value]
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


def patched(settings: SandboxSettings, changes: Mapping[str, Any]) -> SandboxSettings:
    """A copy of ``settings`` with ``changes`` (JSON values) applied and validated.

    Raises :class:`~campaign.errors.ConfigError` naming the first bad key.
    """
    hints = get_type_hints(SandboxSettings)
    names = {f.name for f in dataclasses.fields(SandboxSettings)}
    values: dict[str, Any] = {}
    for key, value in changes.items():
        if key not in names:
            raise ConfigError(f"unknown sandbox setting {key!r}")
        values[key] = _coerce(key, value, hints[key])
    return dataclasses.replace(settings, **values)


def _coerce(key: str, value: Any, hint: Any) -> Any:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in get_args(hint):
            return None
        (hint,) = (arg for arg in get_args(hint) if arg is not type(None))
        origin = get_origin(hint)
    if key == "failure_rules":
        if not isinstance(value, list):
            raise ConfigError("failure_rules must be a list")
        return tuple(_rule(item) for item in value)
    if origin is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{key} must be a list of strings")
        return tuple(value)
    if origin is Literal:
        if value not in get_args(hint):
            raise ConfigError(f"{key} must be one of {', '.join(get_args(hint))}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be a whole number")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key} must be a number")
        return float(value)
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be a string")
    return value


def _rule(item: Any) -> FailureRule:
    if isinstance(item, str):
        return FailureRule.parse(item)
    if isinstance(item, dict) and isinstance(item.get("pattern"), str):
        allowed = {"pattern", "code", "channel", "description"}
        if extra := set(item) - allowed:
            raise ConfigError(f"failure rule: unknown keys {sorted(extra)}")
        if not all(isinstance(v, str) for k, v in item.items() if v is not None or k != "channel"):
            raise ConfigError("failure rule: pattern, code, channel, description are strings")
        return FailureRule(**item)
    raise ConfigError("a failure rule is 'REGEX[=CODE[:CHANNEL]]' or {pattern, code, channel}")
