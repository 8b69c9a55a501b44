"""Deployment settings: ``config.toml`` + environment -> frozen, validated dataclasses.

Precedence is flag > environment > file > default. Secrets come only from the environment and
are held as :class:`~campaign.secrets.Secret`, so they never print.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, get_type_hints

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from campaign import localcredentials, secrets
from campaign.errors import ConfigError
from campaign.secrets import Secret

REGIONS = ("us", "eu", "br")

DEFAULT_AUTH_URL = "https://auth.sinch.com/oauth2/token"
DEFAULT_CONVERSATION_URL = "https://{region}.conversation.api.sinch.com"
DEFAULT_BATCH_URL = "https://{region}.conversationbatch.api.sinch.com"

# What the embedded sandbox accepts; used when `sandbox = true` and the environment is silent.
SANDBOX_TARGET = "the built-in sandbox"
SANDBOX_PROJECT_ID = localcredentials.PROJECT_ID
SANDBOX_APP_ID = localcredentials.APP_ID
SANDBOX_KEY_ID = localcredentials.KEY_ID
SANDBOX_KEY_SECRET = localcredentials.KEY_SECRET
SANDBOX_WEBHOOK_SECRET = localcredentials.WEBHOOK_SECRET


@dataclass(frozen=True)
class SinchConfig:
    """Where Sinch is and who we are there."""

    project_id: str = ""
    app_id: str = ""
    key_id: str = ""
    key_secret: Secret = field(default_factory=lambda: Secret(""))
    webhook_secret: Secret | None = None
    region: str = "us"
    auth_url: str = DEFAULT_AUTH_URL
    conversation_url: str = DEFAULT_CONVERSATION_URL
    batch_url: str = DEFAULT_BATCH_URL
    auth: Literal["oauth", "basic"] = "oauth"
    sandbox: bool = False
    timeout: float = 30.0
    connect_timeout: float = 5.0
    pool_size: int = 1000
    token_refresh_margin: float = 300.0

    @property
    def target(self) -> str:
        """Where a campaign's messages go, as a campaign records it: the built-in sandbox, or
        a Sinch project's app in a region (two runs of one campaign must send to the same)."""
        if self.sandbox:
            return SANDBOX_TARGET
        return f"Sinch project {self.project_id}, app {self.app_id}, region {self.region}"

    def resolved_url(self, template: str) -> str:
        """``template`` with ``{region}`` filled in and no trailing slash."""
        return template.format(region=self.region).rstrip("/")

    def pointed_at(self, base_url: str) -> SinchConfig:
        """The same settings with every URL on ``base_url`` (the sandbox's address)."""
        base = base_url.rstrip("/")
        return dataclasses.replace(
            self, auth_url=f"{base}/oauth2/token", conversation_url=base, batch_url=base
        )


@dataclass(frozen=True)
class DatabaseConfig:
    url: str = "sqlite:///campaign.db"

    def __repr__(self) -> str:
        # The URL may carry a password: shown masked, like everywhere else.
        return f"DatabaseConfig(url={masked_url(self.url)!r})"


def masked_url(url: str) -> str:
    """A database URL with its password masked (``postgresql://user:***@host/db``)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid database URL>"


def _register_password(url: str) -> None:
    """Make the URL's password a known secret, so that no error or log line shows it."""
    # An invalid URL is refused, without being shown, when the store opens it.
    with contextlib.suppress(ArgumentError):
        secrets.register(make_url(url).password)


@dataclass(frozen=True)
class SendingConfig:
    requests_per_second: float = 800.0
    batch_size: int = 1000
    # None: derived from the rate so that 200 ms of latency still sustains it.
    max_in_flight: int | None = None
    max_attempts: int = 8
    # Several `campaign run` processes share the rate; each beats a heartbeat this often, and
    # one silent for `worker_lease` seconds is dead: its claimed rows are settled.
    heartbeat_interval: float = 1.0
    worker_lease: float = 10.0
    # A stopping run waits this long for its requests under way, and retries its last write of
    # their outcomes while the database is unavailable (a restart, a full disk).
    drain_timeout: float = 30.0
    # Keep the app's MT queue below this share of its limit, slowing to its drain rate near
    # that mark (campaign.sending.queue); 0: do not read the queue.
    queue_share: float = 0.8


@dataclass(frozen=True)
class ReceiverConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    path: str = "/sinch/callbacks"
    timestamp_window: float = 300.0  # seconds a signed callback's timestamp may be off
    # true: a separate `campaign receiver` feeds the same database, so `campaign run
    # --wait-for-delivery` only waits and starts no receiver of its own.
    external: bool = False


@dataclass(frozen=True)
class SandboxConfig:
    """Settings of the embedded sandbox (``[sinch] sandbox = true``)."""

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    rate_limit: int = 800
    # Delivery simulation (with --wait-for-delivery): identities matching this regular
    # expression fail with RECIPIENT_NOT_REACHABLE; the others are delivered after about
    # `delivered_delay` seconds and, on channels that report it, read after `read_delay` more.
    fail_pattern: str = ""
    # Per channel: "CHANNEL:REGEX[:CODE]" rules, separated by spaces (e.g. "WHATSAPP:77$").
    fail_channel: str = ""
    # WhatsApp's 24-hour window: identities matching `whatsapp_window`, and this share of the
    # others (by a hash of the identity), have one; the rest get only template messages there.
    whatsapp_window: str = ""
    whatsapp_window_share: float = 1.0
    delivered_delay: float = 1.0
    read_delay: float = 3.0
    # The app's MT queue: messages/s it passes on to the channels (real Sinch: 20-25 unless
    # raised; the sandbox's default keeps the demo quick) and how many it holds.
    outbound_rate: int = 100_000
    queue_limit: int = 500_000


@dataclass(frozen=True)
class OptOutConfig:
    """``[optout]``: the replies that put their sender on the suppression list, trimmed and
    case-folded before they are compared (campaign.optout). Add other languages' words here."""

    keywords: tuple[str, ...] = ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT")


@dataclass(frozen=True)
class Config:
    sinch: SinchConfig = field(default_factory=SinchConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    sending: SendingConfig = field(default_factory=SendingConfig)
    receiver: ReceiverConfig = field(default_factory=ReceiverConfig)
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    optout: OptOutConfig = field(default_factory=OptOutConfig)
    path: Path | None = None


_T = TypeVar("_T")

# Keys of the [sinch] table that must never be written in a file.
_SECRET_KEYS = {"key_secret", "webhook_secret", "key_id"}


def _from_table(cls: type[_T], table: Mapping[str, Any], where: str) -> _T:
    """Build dataclass ``cls`` from a TOML table, refusing unknown keys and wrong types."""
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key in _SECRET_KEYS and where == "[sinch]":
            raise ConfigError(
                f"{where} {key}: secrets are not read from files; set it in the environment"
            )
        if key not in names or hints[key] in (Secret, Secret | None, Path | None):
            raise ConfigError(f"{where}: unknown key {key!r}")
        values[key] = _coerce(value, hints[key], f"{where} {key}")
    return cls(**values)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if not math.isfinite(value):  # TOML has nan and inf; no setting means them
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return float(value)
    if hint is int or hint == (int | None):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected a whole number, got {value!r}")
        return value
    if hint == tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise ConfigError(f"{where}: expected a list of non-empty strings, got {value!r}")
        return tuple(value)
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


def _validate(config: Config, *, credentials: bool) -> None:
    s = config.sinch
    if s.region not in REGIONS:
        raise ConfigError(f"[sinch] region: {s.region!r} is not one of {', '.join(REGIONS)}")
    if s.auth not in ("oauth", "basic"):
        raise ConfigError(f"[sinch] auth: {s.auth!r} is not 'oauth' or 'basic'")
    if s.timeout <= 0 or s.connect_timeout <= 0:
        raise ConfigError("[sinch] timeout and connect_timeout must be positive")
    if s.pool_size < 1:
        raise ConfigError("[sinch] pool_size must be at least 1")
    if config.sending.requests_per_second <= 0:
        raise ConfigError(
            "[sending] requests_per_second must be positive, "
            f"not {config.sending.requests_per_second:g}"
        )
    if not 1 <= config.sending.batch_size <= 1000:
        raise ConfigError(
            f"[sending] batch_size must be between 1 and 1000, not {config.sending.batch_size}"
        )
    if config.sending.max_in_flight is not None and config.sending.max_in_flight < 1:
        raise ConfigError("[sending] max_in_flight must be at least 1")
    if config.sending.max_attempts < 1:
        raise ConfigError("[sending] max_attempts must be at least 1")
    if config.sandbox.outbound_rate < 1 or config.sandbox.queue_limit < 1:
        raise ConfigError("[sandbox] outbound_rate and queue_limit must be at least 1")
    if not 0 <= config.sending.queue_share < 1:
        raise ConfigError("[sending] queue_share must be at least 0 and below 1")
    if config.sending.drain_timeout <= 0:
        raise ConfigError("[sending] drain_timeout must be positive")
    if not 0 < config.sending.heartbeat_interval * 3 <= config.sending.worker_lease:
        raise ConfigError(
            "[sending] heartbeat_interval must be positive and worker_lease at least three times it"
        )
    if credentials and not s.sandbox:
        missing = [
            name
            for name, value in (
                ("SINCH_PROJECT_ID", s.project_id),
                ("SINCH_APP_ID", s.app_id),
                ("SINCH_KEY_ID", s.key_id),
                ("SINCH_KEY_SECRET", s.key_secret.reveal()),
            )
            if not value
        ]
        if missing:
            raise ConfigError(
                f"{', '.join(missing)} not set in the environment (needed when sandbox = false)"
            )


def load_config(
    path: Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    database_url: str | None = None,
    credentials: bool = True,
) -> Config:
    """Read ``path`` (or ``$CAMPAIGN_CONFIG``, or ``./config.toml`` when it exists).

    A path given explicitly must exist; the implicit ``./config.toml`` may be absent, and then
    defaults apply. ``database_url`` (the ``--database`` flag) beats the environment. Without
    ``credentials`` (a command that never calls Sinch: status, report, the receiver), the
    Sinch credentials may be absent.
    """
    env = os.environ if env is None else env
    explicit = path is not None or "CAMPAIGN_CONFIG" in env
    if path is None:
        path = Path(env.get("CAMPAIGN_CONFIG", "config.toml"))
    data = _read(path, explicit)
    sinch = _sinch(data, env)
    db_table = dict(data.get("database", {}))
    if env.get("CAMPAIGN_DATABASE_URL"):
        db_table["url"] = env["CAMPAIGN_DATABASE_URL"]
    if database_url:
        db_table["url"] = database_url
    if isinstance(db_table.get("url"), str):
        _register_password(db_table["url"])

    config = Config(
        sinch=sinch,
        database=_from_table(DatabaseConfig, db_table, "[database]"),
        sending=_from_table(SendingConfig, data.get("sending", {}), "[sending]"),
        receiver=_from_table(ReceiverConfig, data.get("receiver", {}), "[receiver]"),
        sandbox=_from_table(SandboxConfig, data.get("sandbox", {}), "[sandbox]"),
        optout=_from_table(OptOutConfig, data.get("optout", {}), "[optout]"),
        path=path if path.exists() else None,
    )
    _validate(config, credentials=credentials)
    return config


_TABLES = {"sinch", "database", "sending", "receiver", "sandbox", "optout"}


def _read(path: Path, explicit: bool) -> dict[str, Any]:
    """The file's tables (none when the implicit ``./config.toml`` is absent)."""
    if not (path.exists() or explicit):
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    for key in data:
        if key not in _TABLES:
            raise ConfigError(f"{path}: unknown table or key {key!r}")
    for key in _TABLES:
        if key in data and not isinstance(data[key], dict):
            raise ConfigError(f"{path}: {key!r} must be a table")
    return data


def _sinch(data: Mapping[str, Any], env: Mapping[str, str]) -> SinchConfig:
    """``[sinch]`` with the environment's ids over it, and the credentials, which come from
    the environment only (the sandbox's own when ``sandbox = true`` and none are set)."""
    sinch_table = dict(data.get("sinch", {}))
    env_map = {
        "SINCH_PROJECT_ID": "project_id",
        "SINCH_APP_ID": "app_id",
        "SINCH_REGION": "region",
    }
    for var, key in env_map.items():
        if env.get(var):
            sinch_table[key] = env[var]
    sinch = _from_table(SinchConfig, sinch_table, "[sinch]")
    key_id = env.get("SINCH_KEY_ID", "")
    key_secret = env.get("SINCH_KEY_SECRET", "")
    webhook_secret = env.get("SINCH_WEBHOOK_SECRET", "")
    if sinch.sandbox:
        sinch = dataclasses.replace(
            sinch,
            project_id=sinch.project_id or SANDBOX_PROJECT_ID,
            app_id=sinch.app_id or SANDBOX_APP_ID,
        )
        key_id = key_id or SANDBOX_KEY_ID
        key_secret = key_secret or SANDBOX_KEY_SECRET
        webhook_secret = webhook_secret or SANDBOX_WEBHOOK_SECRET
    return dataclasses.replace(
        sinch,
        key_id=key_id,
        key_secret=Secret(key_secret),
        webhook_secret=Secret(webhook_secret) if webhook_secret else None,
    )
