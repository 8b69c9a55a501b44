"""Command-line options of ``campaign sandbox``: :func:`add_arguments`, :func:`settings_from_args`.

The CLI module owns the parser; this module only knows which options the sandbox takes and
how they become :class:`~campaign.sandbox.settings.SandboxSettings`.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from campaign.sandbox.settings import FailureRule, SandboxSettings

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765

_DEFAULTS = SandboxSettings()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the sandbox's options to ``parser`` (``--host``, ``--port``, faults, callbacks)."""
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to listen on")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (0: any free one)")
    _add_credentials(parser)
    _add_faults(parser)
    _add_callbacks(parser)
    _add_batch_behaviour(parser)


def _add_credentials(parser: argparse.ArgumentParser) -> None:
    """The project, apps and access key the sandbox accepts."""
    who = parser.add_argument_group("credentials")
    who.add_argument("--project-id", default=_DEFAULTS.project_id)
    who.add_argument(
        "--app-id",
        action="append",
        dest="app_ids",
        metavar="APP_ID",
        help="an app id the sandbox knows (repeatable)",
    )
    who.add_argument("--key-id", default=_DEFAULTS.key_id)
    who.add_argument("--key-secret", default=_DEFAULTS.key_secret)
    who.add_argument(
        "--token-lifetime", type=int, default=_DEFAULTS.token_lifetime, metavar="SECONDS"
    )


def _add_faults(parser: argparse.ArgumentParser) -> None:
    """Rate limit, 429 storms, latency, server errors and dropped connections."""
    faults = parser.add_argument_group("limits and faults")
    faults.add_argument(
        "--rate-limit",
        type=int,
        default=_DEFAULTS.rate_limit,
        metavar="N",
        help="requests per sliding second per project (0: unlimited)",
    )
    faults.add_argument(
        "--outbound-rate",
        type=int,
        default=_DEFAULTS.outbound_rate,
        metavar="N",
        help="messages/s each app's MT queue drains at (Sinch's default: 20)",
    )
    faults.add_argument(
        "--queue-limit",
        type=int,
        default=_DEFAULTS.queue_limit,
        metavar="N",
        help="messages each app's MT queue holds; beyond, 429 without Retry-After",
    )
    faults.add_argument(
        "--processing-mode",
        choices=("CONVERSATION", "DISPATCH"),
        default=_DEFAULTS.processing_mode,
        help="the processing mode the app reports",
    )
    faults.add_argument(
        "--storm-every",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="start a 429 storm this often (0: never)",
    )
    faults.add_argument("--storm-duration", type=float, default=0.0, metavar="SECONDS")
    faults.add_argument("--latency-ms", type=float, default=0.0)
    faults.add_argument("--jitter-ms", type=float, default=0.0)
    faults.add_argument("--error-rate-500", type=float, default=0.0, metavar="SHARE")
    faults.add_argument("--error-rate-503", type=float, default=0.0, metavar="SHARE")
    faults.add_argument(
        "--drop-rate",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="share of accepted requests whose connection is then dropped unanswered",
    )
    faults.add_argument("--seed", type=int, default=None, help="seed for reproducible faults")


def _add_callbacks(parser: argparse.ArgumentParser) -> None:
    """Where delivery callbacks go, how they are signed, and which of them fail or misbehave."""
    cb = parser.add_argument_group("delivery callbacks")
    cb.add_argument("--callback-url", default=None, help="where to POST delivery callbacks")
    cb.add_argument(
        "--webhook-secret",
        default=_DEFAULTS.webhook_secret,
        help="HMAC secret for callback signatures ('' to send them unsigned)",
    )
    cb.add_argument(
        "--override-secret",
        default=None,
        help="HMAC secret for callbacks to a request's own callback_url (the app's"
        " secret_for_overridden_callback_urls; default: the webhook secret; '' unsigned)",
    )
    cb.add_argument(
        "--fail-pattern",
        action="append",
        default=[],
        metavar="REGEX[=CODE[:CHANNEL]]",
        help="identities matching REGEX fail (default code RECIPIENT_NOT_REACHABLE)",
    )
    cb.add_argument(
        "--fail-channel",
        action="append",
        default=[],
        metavar="CHANNEL:REGEX[:CODE]",
        help="identities matching REGEX fail on CHANNEL only (then fall back to the next one)",
    )
    cb.add_argument(
        "--whatsapp-window",
        default=None,
        metavar="REGEX",
        help="identities with an open WhatsApp 24-hour window (others get only templates)",
    )
    cb.add_argument(
        "--whatsapp-window-share",
        type=float,
        default=_DEFAULTS.whatsapp_window_share,
        metavar="SHARE",
        help="share of the other identities with an open window, by hash (default: 1, all)",
    )
    cb.add_argument(
        "--inbound-pattern",
        default=None,
        metavar="REGEX",
        help="identities matching REGEX reply to each delivered message (MESSAGE_INBOUND)",
    )
    cb.add_argument(
        "--inbound-text",
        default=None,
        metavar="TEXT",
        help=f"what they reply (default: {_DEFAULTS.inbound_text})",
    )
    cb.add_argument(
        "--delivered-delay", type=float, default=_DEFAULTS.delivered_delay_s, metavar="SECONDS"
    )
    cb.add_argument("--read-delay", type=float, default=_DEFAULTS.read_delay_s, metavar="SECONDS")
    cb.add_argument("--duplicate-rate", type=float, default=0.0, metavar="SHARE")
    cb.add_argument("--reorder", action="store_true", help="callbacks may arrive out of order")
    cb.add_argument("--no-submit", action="store_true", help="do not send MESSAGE_SUBMIT callbacks")


def _add_batch_behaviour(parser: argparse.ArgumentParser) -> None:
    """What the sandbox keeps of what it sends, and how batches treat missing parameters."""
    parser.add_argument(
        "--no-history",
        action="store_true",
        help="count messages and callbacks but keep no history (long benchmarks)",
    )
    parser.add_argument(
        "--unknown-parameter",
        choices=("literal", "empty", "error"),
        default="literal",
        help="what a batch does with ${name} that a recipient has no value for",
    )


def settings_from_args(args: argparse.Namespace) -> SandboxSettings:
    """The settings that parsed options ask for (missing options keep their defaults)."""

    def opt(name: str, default: Any) -> Any:
        value = getattr(args, name, None)
        return default if value is None else value

    d = _DEFAULTS
    webhook_secret = opt("webhook_secret", d.webhook_secret)
    triggers = d.triggers
    if getattr(args, "no_submit", False):
        triggers = tuple(t for t in triggers if t != "MESSAGE_SUBMIT")
    return dataclasses.replace(
        d,
        project_id=opt("project_id", d.project_id),
        app_ids=tuple(opt("app_ids", None) or d.app_ids),
        key_id=opt("key_id", d.key_id),
        key_secret=opt("key_secret", d.key_secret),
        token_lifetime=opt("token_lifetime", d.token_lifetime),
        rate_limit=opt("rate_limit", d.rate_limit),
        outbound_rate=opt("outbound_rate", d.outbound_rate),
        queue_limit=opt("queue_limit", d.queue_limit),
        processing_mode=opt("processing_mode", d.processing_mode),
        storm_every_s=opt("storm_every", d.storm_every_s),
        storm_duration_s=opt("storm_duration", d.storm_duration_s),
        latency_ms=opt("latency_ms", d.latency_ms),
        jitter_ms=opt("jitter_ms", d.jitter_ms),
        error_rate_500=opt("error_rate_500", d.error_rate_500),
        error_rate_503=opt("error_rate_503", d.error_rate_503),
        drop_rate=opt("drop_rate", d.drop_rate),
        seed=opt("seed", d.seed),
        callback_url=opt("callback_url", d.callback_url),
        webhook_secret=webhook_secret or None,
        override_secret=opt("override_secret", d.override_secret),
        failure_rules=(
            *(FailureRule.parse(p) for p in opt("fail_pattern", [])),
            *(FailureRule.parse_channel(p) for p in opt("fail_channel", [])),
        ),
        whatsapp_window=opt("whatsapp_window", d.whatsapp_window),
        whatsapp_window_share=opt("whatsapp_window_share", d.whatsapp_window_share),
        inbound_pattern=opt("inbound_pattern", d.inbound_pattern),
        inbound_text=opt("inbound_text", d.inbound_text),
        delivered_delay_s=opt("delivered_delay", d.delivered_delay_s),
        read_delay_s=opt("read_delay", d.read_delay_s),
        duplicate_callback_rate=opt("duplicate_rate", d.duplicate_callback_rate),
        reorder=bool(getattr(args, "reorder", False)),
        triggers=triggers,
        unknown_parameter=opt("unknown_parameter", d.unknown_parameter),
        record_history=not getattr(args, "no_history", False),
    )
