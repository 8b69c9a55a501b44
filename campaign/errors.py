"""The exception tree of the product.

Every error the product raises on purpose is a :class:`CampaignError`. Subclasses say what went
wrong; the CLI prints ``str(error)`` as one line and exits with ``error.exit_code``. Messages
never contain secrets: credentials are carried as :class:`campaign.secrets.Secret` and never
formatted into text.
"""

from __future__ import annotations

from typing import Any

# The exit codes of the interface. 3: a run that stopped part-way (a signal, Ctrl-C, a failed
# database): what was sent is recorded, and the next run resumes.
EXIT_OK = 0
EXIT_FAILED = 1  # some recipients did not make it, or an internal error
EXIT_USAGE = 2
EXIT_INTERRUPTED = 3


class CampaignError(Exception):
    """Root of every error raised by campaign."""

    exit_code: int = EXIT_USAGE


class ConfigError(CampaignError):
    """The configuration, the environment or a command-line option is invalid."""


class InputFileError(CampaignError):
    """A recipients or campaign file cannot be used (missing, unreadable, malformed)."""


# --- Sinch -------------------------------------------------------------------------------------


class SinchError(CampaignError):
    """A call to Sinch did not succeed.

    ``status`` is the HTTP status (``None`` when no answer arrived), ``code`` and ``message``
    come from Sinch's ``{"error": {...}}`` body when there is one.
    """

    exit_code = EXIT_FAILED

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        details: list[Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.details = details or []

    def __str__(self) -> str:
        prefix = f"HTTP {self.status}" if self.status is not None else "no answer"
        code = f" {self.code}" if self.code else ""
        return f"{prefix}{code}: {self.message}"


class SinchRetryableError(SinchError):
    """Sinch did not take the request and said so (429, 5xx) or it never left (refused).

    Sending it again cannot duplicate a message. ``retry_after`` is the delay, in seconds, that
    Sinch asked for with ``Retry-After``, when it did.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class SinchRateLimitedError(SinchRetryableError):
    """HTTP 429: the project's request rate is over Sinch's limit."""


class SinchQueueFullError(SinchRetryableError):
    """HTTP 429 because the app's MT queue is full: back-pressure, not a fault. The queue drains
    at the app's outbound rate; the request and the request rate are fine, and it is sent again
    once there is room, without counting as an attempt."""


class SinchPermanentError(SinchError):
    """Sinch refused the request (400, 403, 404, ...): sending it again gives the same answer."""


class SinchAuthError(SinchPermanentError):
    """The credentials were refused, or the token endpoint could not be used."""


class RunInterruptedError(CampaignError):
    """The run stopped part-way, after sending, for a reason other than a signal (the
    database failed). What was sent is recorded, or settled by the next run, which resumes."""

    exit_code = EXIT_INTERRUPTED


class CampaignRefusedError(CampaignError):
    """Sinch refused a request for a field of the campaign, not of any recipient (a
    ``send_after`` too far ahead, a channel property too long): every request would be refused
    alike, so the run stops (exit 2) with nobody marked FAILED for it."""


class SinchUnavailableError(CampaignError):
    """Sinch (its token endpoint) could not be used before anything was sent: the run stops
    with exit 2, as for any other problem found before sending."""


class SinchAmbiguousError(SinchError):
    """The request left but no answer came back (timeout, connection lost).

    Sinch may have accepted it: it must not be re-sent blindly.
    """


# --- the store ----------------------------------------------------------------------------------


class StoreError(CampaignError):
    """The database failed (raised at the store's edge, :mod:`campaign.store.edge`, with the
    driver's error as ``__cause__``). The message says which database (its URL with the password
    masked) and the driver's first line, never SQL or its parameters; ``reason`` is that line
    alone."""

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason if reason is not None else message

    def __str__(self) -> str:
        return self.message


class StoreUnavailableError(StoreError):
    """The database cannot be used now: unreachable, connection lost, locked by another
    process, disk full. Trying again later may succeed."""


class StoreSchemaError(StoreError):
    """The database's schema is not the one this version uses (not migrated: run
    ``campaign db upgrade``)."""


class StoreRefusedError(StoreError):
    """The database refused the data written (a constraint, a value too long or invalid):
    writing the same again gives the same answer."""


class CampaignBusyError(StoreError):
    """An exclusive campaign has another live worker already (raised by
    ``store.workers.register``)."""

    def __init__(self, message: str | int = "", *, reason: str | None = None) -> None:
        super().__init__(str(message), reason=reason)


class ReportReadError(StoreError):
    """The report's rows cannot be read from the database."""
