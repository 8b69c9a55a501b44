"""The receiver's settings (frozen, validated once) and its live counters."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Histogram

from campaign.config import OptOutConfig, ReceiverConfig, SinchConfig
from campaign.errors import ConfigError
from campaign.optout import DEFAULT_KEYWORDS
from campaign.secrets import Secret

MiB = 1024 * 1024


@dataclass(frozen=True)
class ReceiverSettings:
    """How the webhook server checks and stores callbacks. Times are seconds.

    ``secret`` is the webhook secret (``SINCH_WEBHOOK_SECRET``); without one the server refuses
    to start unless ``allow_unsigned``. With ``allow_unsigned`` a callback that carries no
    signature headers is accepted (and stored without a nonce); one that does carry them is
    still verified when a secret is known.

    Connections are bounded: one that has not sent a whole request's headers ``idle_timeout_s``
    after it opened, or after its last response (keep-alive), is closed; a body not received
    within ``body_timeout_s`` of its headers is refused (408); while ``max_connections`` are
    open a new one is answered 503 and closed.
    """

    path: str = "/sinch/callbacks"
    secret: Secret | None = None
    allow_unsigned: bool = False
    timestamp_window_s: float = 300.0
    max_body_bytes: int = MiB
    max_json_depth: int = 64
    max_batch: int = 2000  # events per group commit
    max_pending: int = 50_000  # events queued for the committer before new ones get 503
    apply_batch: int = 1000  # events per apply transaction (a commit may wait for one)
    apply_interval_s: float = 0.2  # without a backlog, at most one apply per interval
    apply_retry_s: float = 5.0  # apply again after this long while events wait or it failed
    max_nonces: int = 1_000_000  # nonces held in memory for replay checks
    # An event that matches no recipient this long after it arrived is given up (kept raw).
    match_window_s: float = 86_400.0
    idle_timeout_s: float = 5.0  # to send a request's headers, from connect or last response
    body_timeout_s: float = 10.0  # to send the body once the headers are in
    # Well under a 1,024 file-descriptor limit; Sinch sends over a few connections.
    max_connections: int = 512
    clock: Callable[[], float] = field(default=time.time, compare=False)  # Unix seconds
    # Replies that opt their sender out ([optout] keywords; campaign.optout).
    optout_keywords: tuple[str, ...] = DEFAULT_KEYWORDS

    def __post_init__(self) -> None:
        if not self.path.startswith("/") or self.path != self.path.strip() or "?" in self.path:
            raise ConfigError(f"receiver path {self.path!r} must start with '/' (no query)")
        if self.timestamp_window_s <= 0:
            raise ConfigError("receiver timestamp_window_s must be positive")
        for name in (
            "max_body_bytes",
            "max_json_depth",
            "max_batch",
            "max_pending",
            "max_nonces",
            "apply_batch",
            "max_connections",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"receiver {name} must be at least 1")
        if self.apply_interval_s < 0 or self.apply_retry_s <= 0:
            raise ConfigError("receiver apply_interval_s must be >= 0, apply_retry_s positive")
        for name in ("match_window_s", "idle_timeout_s", "body_timeout_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"receiver {name} must be positive")

    @classmethod
    def from_config(
        cls,
        receiver: ReceiverConfig,
        sinch: SinchConfig,
        *,
        allow_unsigned: bool = False,
        path: str | None = None,
        optout: OptOutConfig | None = None,
    ) -> ReceiverSettings:
        """The settings for ``campaign receiver`` / ``campaign run`` from the loaded config;
        ``path`` (``--path``) replaces the configured one when given."""
        return cls(
            path=path or receiver.path,
            secret=sinch.webhook_secret,
            allow_unsigned=allow_unsigned,
            timestamp_window_s=receiver.timestamp_window,
            optout_keywords=(optout or OptOutConfig()).keywords,
        )

    def require_secret(self) -> str | None:
        """The secret's value for HMAC checks; raises ConfigError when it is needed but absent."""
        if self.secret:
            return self.secret.reveal()
        if self.allow_unsigned:
            return None
        raise ConfigError(
            "SINCH_WEBHOOK_SECRET is not set; the receiver only accepts signed callbacks. "
            "Set it to the webhook's secret (pass --unsigned only for local tests)"
        )


@dataclass
class ReceiverStats:
    """Live counters of one receiver (what ``GET {path}/health`` shows)."""

    received: int = 0  # callback POSTs seen
    stored: int = 0  # events written to the event table
    duplicates: int = 0  # acknowledged events whose nonce was already stored
    rejected: Counter[str] = field(default_factory=Counter)  # by reason
    pending: int = 0  # events queued or being committed
    commits: int = 0  # group commits that succeeded
    commit_failures: int = 0  # group commits the database refused (their events got 503)
    largest_commit: int = 0
    applied: int = 0  # events applied to recipients
    apply_failures: int = 0
    # Events waiting for their recipient as of the last apply, counted up to 10,000.
    waiting: int | None = None
    unmatched: int = 0  # events given up by this receiver: no recipient within the window
    inbound: int = 0  # verified MESSAGE_INBOUND callbacks (replies), opt-outs or not
    opt_outs: int = 0  # verified callbacks that opt their sender out (STOP replies, OPT_OUT)
    connections: int = 0  # open now
    connections_refused: int = 0  # answered 503 and closed: max_connections were open
    store_ok: bool = True  # whether the last commit succeeded
    # Each successful group commit: how long it took (seconds) and how many events it held.
    commit_seconds: Histogram = field(
        default_factory=lambda: Histogram(
            "campaign_receiver_commit_seconds",
            "Duration of successful group commits of callbacks, in seconds.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=None,
        )
    )
    commit_size: Histogram = field(
        default_factory=lambda: Histogram(
            "campaign_receiver_commit_events",
            "Callbacks stored per successful group commit.",
            buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000),
            registry=None,
        )
    )

    @property
    def acknowledged(self) -> int:
        """Events answered 200: stored now or already stored."""
        return self.stored + self.duplicates

    def as_json(self) -> dict[str, Any]:
        """The counters as a JSON-ready mapping (no settings, no secrets)."""
        return {
            "status": "ok" if self.store_ok else "store unavailable",
            "received": self.received,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "rejected": dict(sorted(self.rejected.items())),
            "pending": self.pending,
            "commits": self.commits,
            "commit_failures": self.commit_failures,
            "largest_commit": self.largest_commit,
            "applied": self.applied,
            "apply_failures": self.apply_failures,
            "waiting": self.waiting,
            "unmatched": self.unmatched,
            "inbound": self.inbound,
            "opt_outs": self.opt_outs,
            "connections": self.connections,
            "connections_refused": self.connections_refused,
        }
