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


class Kind(StrEnum):
    CREDENTIALS = "credentials"  # refused credentials: nobody's fault, the run stops
    CAMPAIGN = "campaign"  # a field every request carries: nobody's fault, the run stops
    IN_DOUBT = "in_doubt"  # sent, answer lost: never sent again blindly
    RETRY = "retry"
    FAIL = "fail"
    SPLIT = "split"  # a batch refused for some of its recipients


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
) -> Verdict:
    """What ``exc``, after the ``attempts``-th attempt of a request for ``recipients``
    recipients, leads to."""
    if isinstance(exc, errors.SinchAuthError):
        return Verdict(Kind.CREDENTIALS)
    if (refused := campaign_refusal(exc)) is not None:
        return Verdict(Kind.CAMPAIGN, refusal=refused)
    if exc.status == 400 and recipients > 1:
        return Verdict(Kind.SPLIT, failure_code(exc))
    decision = retry.decide(policy, attempts, exc, rand)
    limited = isinstance(exc, errors.SinchRateLimitedError)
    if decision.outcome is retry.Outcome.IN_DOUBT:
        return Verdict(Kind.IN_DOUBT)
    if decision.outcome is retry.Outcome.RETRY:
        return Verdict(Kind.RETRY, failure_code(exc), decision.delay, limited)
    return Verdict(Kind.FAIL, failure_code(exc), rate_limited=limited)


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


def recipient_reason(exc: errors.SinchError, index: int) -> str:
    """Sinch's description for recipient ``index`` of a batch, else its message."""
    prefix = f"recipient_and_params[{index}]"
    for field, description in field_violations(exc):
        if field.startswith(prefix):
            return f"{exc.message}: {field[len(prefix) :].lstrip('.')} {description}".strip()
    return exc.message
