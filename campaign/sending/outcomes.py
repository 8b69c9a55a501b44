"""What a failed request means for its recipients: one classification for every mode. Pure.

Individual and batch sends meet the same errors and must record the same for them: the same
failure code, the same retry decision, the same refusal of the campaign as a whole. Only what
each mode then does differs (a batch looks a lost answer up, and splits a refused batch).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from campaign import errors, retry
from campaign.sinch.responses import field_violations

# Fields of a request that may differ by recipient (a recipient's text may not fit, its
# identity may be refused): a 400 naming any other field names the campaign's.
_PER_RECIPIENT = ("recipient", "message")
_BATCH_INDEX = re.compile(r"^recipient_and_params\[(\d+)\]")

# Identical refusals of the message, in a row, after which the message is taken to be wrong
# for everyone and the run stops. One is not enough: a recipient's rendered text (a parameter
# of its own) may be what Sinch refuses. Five in a row is already far past coincidence, and
# costs at most four recipients marked FAILED (which `campaign retry` puts back).
STREAK_LIMIT = 5


class Kind(StrEnum):
    CREDENTIALS = "credentials"  # refused credentials: nobody's fault, the run stops
    CAMPAIGN = "campaign"  # a field every request carries: nobody's fault, the run stops
    IN_DOUBT = "in_doubt"  # sent, answer lost: never sent again blindly
    RETRY = "retry"
    QUEUE_FULL = "queue_full"  # the app's queue is full: sent again when it has room, uncounted
    FAIL = "fail"
    SPLIT = "split"  # a batch refused for some of its recipients


@dataclass(frozen=True)
class App:
    """Where the campaign's requests go, named when Sinch does not know it (no secret)."""

    app_id: str
    region: str


@dataclass(frozen=True)
class Verdict:
    kind: Kind
    code: str = ""  # the failure code recorded (FAIL, RETRY)
    delay: float = 0.0  # RETRY: seconds until the retry is due
    rate_limited: bool = False  # a 429: every sender waits ``delay``
    refusal: errors.CampaignRefusedError | None = None  # CAMPAIGN


def classify(
    exc: errors.SinchError,
    attempts: int,
    policy: retry.RetryPolicy,
    rand: float,
    *,
    recipients: int = 1,
    app: App | None = None,
    queue_full: bool = False,
) -> Verdict:
    """What ``exc``, after the ``attempts``-th attempt of a request for ``recipients``
    recipients to ``app``, leads to. ``queue_full``: the app's queue was full when last read
    (a 429 without ``Retry-After`` is then the queue's, whatever its message says)."""
    if isinstance(exc, errors.SinchAuthError):
        return Verdict(Kind.CREDENTIALS)
    if (refused := app_refusal(exc, app)) is not None:
        return Verdict(Kind.CAMPAIGN, refusal=refused)
    if (refused := campaign_refusal(exc)) is not None:
        return Verdict(Kind.CAMPAIGN, refusal=refused)
    if exc.status == 400 and recipients > 1:
        return Verdict(Kind.SPLIT, failure_code(exc))
    if is_queue_full(exc, queue_full):
        return Verdict(Kind.QUEUE_FULL, failure_code(exc))
    decision = retry.decide(policy, attempts, exc, rand)
    limited = isinstance(exc, errors.SinchRateLimitedError)
    if decision.outcome is retry.Outcome.IN_DOUBT:
        return Verdict(Kind.IN_DOUBT)
    if decision.outcome is retry.Outcome.RETRY:
        return Verdict(Kind.RETRY, failure_code(exc), decision.delay, limited)
    return Verdict(Kind.FAIL, failure_code(exc), rate_limited=limited)


def is_queue_full(exc: errors.SinchError, queue_read_full: bool = False) -> bool:
    """A 429 for the app's MT queue: back-pressure, which never fails a recipient and is not
    the request rate's fault (its message names the queue, or the queue was read full)."""
    if isinstance(exc, errors.SinchQueueFullError):
        return True
    return (
        queue_read_full
        and isinstance(exc, errors.SinchRateLimitedError)
        and exc.retry_after is None
    )


def app_refusal(exc: errors.SinchError, app: App | None) -> errors.CampaignRefusedError | None:
    """The run's error when Sinch answers 404 to a send: nobody fails for it.

    Only the path (the project) and the body's ``app_id`` name resources on ``messages:send``
    and the Batch API's ``POST /messages``: an unknown recipient is never a 404 there (Sinch
    accepts the request and reports the recipient in a delivery callback, or refuses its
    identity with a 400). So a 404 means the project or the app is unknown where the requests
    go (a wrong ``SINCH_APP_ID`` or ``SINCH_REGION``, an app deleted mid-run), and every
    request of the campaign would get it."""
    if exc.status != 404:
        return None
    where = f"the app {app.app_id!r} in region {app.region!r}" if app is not None else "the app"
    return errors.CampaignRefusedError(
        f"Sinch does not know {where} (HTTP 404 {exc.code or 'NOT_FOUND'}: {exc.message}); "
        "sending stopped and nobody was marked failed for it: check SINCH_APP_ID, SINCH_REGION "
        "and SINCH_PROJECT_ID, then run the same command again (with --force-target when "
        "they name another app than the campaign began with)"
    )


def campaign_refusal(exc: errors.SinchError) -> errors.CampaignRefusedError | None:
    """The run's error when Sinch refused a request for a field that every request of the
    campaign carries (``channel_properties``, ``send_after``...): nobody fails for it. None
    when the refusal may be the recipient's."""
    if exc.status != 400:
        return None
    wide = [(f, d) for f, d in field_violations(exc) if not f.startswith(_PER_RECIPIENT)]
    if not wide:
        return None
    named = "; ".join(f"{field} {description}".strip() for field, description in wide)
    return errors.CampaignRefusedError(
        f"Sinch refused the campaign's requests (HTTP 400 {exc.code or 'INVALID_ARGUMENT'}: "
        f"{named}); nobody was marked failed for it: correct the campaign and run the same "
        "command again"
    )


def failure_code(exc: errors.SinchError) -> str:
    """The code a recipient's failure or retry records: Sinch's, else the HTTP status (a
    bodiless 5xx), else the kind of error (no answer). One classification for every mode."""
    if exc.code:
        return exc.code
    return f"HTTP_{exc.status}" if exc.status is not None else type(exc).__name__


def named_recipients(exc: errors.SinchError, size: int) -> set[int]:
    """The indexes of a batch of ``size`` that Sinch's field violations name."""
    named = {int(m.group(1)) for f, _ in field_violations(exc) if (m := _BATCH_INDEX.match(f))}
    return named & set(range(size))


def recipient_reason(exc: errors.SinchError, index: int | None = None) -> str:
    """What a recipient's failure records: Sinch's message and its field violations
    ("field: description") that concern the recipient: for recipient ``index`` of a batch,
    those naming it (the index left out) and those naming no recipient (the message);
    for an individual send (``index`` None), all of them."""
    named: list[str] = []
    prefix = None if index is None else f"recipient_and_params[{index}]"
    for field, description in field_violations(exc):
        if prefix is not None and field.startswith(prefix):
            field = field[len(prefix) :].lstrip(".")
        elif prefix is not None and _BATCH_INDEX.match(field):
            continue  # another recipient's
        named.append(f"{field}: {description}" if field else description)
    return f"{exc.message}: {'; '.join(named)}" if named else exc.message


def _is_message(field: str) -> bool:
    return field == "message" or field.startswith(("message.", "message["))


RefusalKey = tuple[int | None, str | None, tuple[tuple[str, str], ...]]


def message_refusal(exc: errors.SinchError) -> RefusalKey | None:
    """What identifies a refusal of the message (status, code, violations), or None when
    Sinch's violations name anything else. Only the message counts: a recipient's identity
    refused alike for several recipients says something about each of them, not the campaign."""
    violations = field_violations(exc)
    if not violations or not all(_is_message(field) for field, _ in violations):
        return None
    return exc.status, exc.code, tuple(violations)


class RefusalStreak:
    """Identical refusals of the message in a row: after ``limit`` of them the message is
    wrong for everyone, and this one and every later identical refusal stop the run instead
    of failing their recipients. Fed with every verdict, in the order the answers come. Pure."""

    def __init__(self, limit: int = STREAK_LIMIT) -> None:
        self.limit = limit
        self._key: RefusalKey | None = None
        self._count = 0
        self._failed = 0  # recipients FAILED by the refusals of the streak
        self._stopped: tuple[RefusalKey, errors.CampaignRefusedError] | None = None

    def accepted(self) -> None:
        """A request was accepted: the streak is broken."""
        self._key, self._count, self._failed = None, 0, 0

    def feed(self, verdict: Verdict, exc: errors.SinchError, recipients: int = 1) -> Verdict:
        """``verdict`` (of ``exc``, for ``recipients``), or the run's stop in its place."""
        if verdict.kind in (Kind.RETRY, Kind.QUEUE_FULL, Kind.IN_DOUBT):
            return verdict  # not an answer about the message: neither counts nor breaks it
        key = message_refusal(exc) if verdict.kind in (Kind.FAIL, Kind.SPLIT) else None
        if key is None:
            self.accepted()
            return verdict
        if self._stopped is not None and self._stopped[0] == key:
            return Verdict(Kind.CAMPAIGN, refusal=self._stopped[1])
        if key != self._key:
            self._key, self._count, self._failed = key, 0, 0
        self._count += 1
        if self._count < self.limit:
            self._failed += recipients if verdict.kind is Kind.FAIL else 0
            return verdict
        refusal = self._refusal(exc, key)
        self._stopped = (key, refusal)
        return Verdict(Kind.CAMPAIGN, refusal=refusal)

    def _refusal(self, exc: errors.SinchError, key: RefusalKey) -> errors.CampaignRefusedError:
        named = "; ".join(f"{field}: {description}" for field, description in key[2])
        before = (
            f"{self._failed:,} {'recipient' if self._failed == 1 else 'recipients'} failed "
            "with it before the run stopped; "
            "`campaign retry` will put them back"
            if self._failed
            else "nobody was marked failed for it"
        )
        status = f"HTTP {exc.status} {exc.code}" if exc.code else f"HTTP {exc.status}"
        return errors.CampaignRefusedError(
            f"Sinch refused the campaign's message {self._count} times in a row ({status}: "
            f"{named}); sending stopped: {before}; correct the message and run the same "
            "command again"
        )
