"""One classification of Sinch's errors for every mode (campaign.sending.outcomes)."""

from __future__ import annotations

import pytest

from campaign import errors, retry
from campaign.sending.outcomes import Kind, Verdict, classify, named_recipients, recipient_reason

POLICY = retry.RetryPolicy(max_attempts=3, base_delay=1.0, factor=2.0, max_delay=5.0)


def bad_request(*fields: str) -> errors.SinchPermanentError:
    violations = [{"field": f, "description": "is not valid"} for f in fields]
    return errors.SinchPermanentError(
        "invalid request",
        status=400,
        code="INVALID_ARGUMENT",
        details=[{"@type": "BadRequest", "field_violations": violations}],
    )


@pytest.mark.parametrize("recipients", [1, 1000])
def test_every_mode_records_the_same_for_the_same_error(recipients: int) -> None:
    """Individual (one recipient) and batch (many) sends get the same verdict, code and
    retry delay for every error but a 400 (a batch splits it)."""
    bodiless = errors.SinchRetryableError("unavailable", status=503)
    assert classify(bodiless, 1, POLICY, 0.0, recipients=recipients) == Verdict(
        Kind.RETRY, "HTTP_503", 0.5
    )
    assert classify(bodiless, 3, POLICY, 0.0, recipients=recipients) == Verdict(
        Kind.FAIL, "HTTP_503"
    )
    limited = errors.SinchRateLimitedError("slow down", status=429, code="RESOURCE_EXHAUSTED")
    verdict = classify(limited, 1, POLICY, 0.0, recipients=recipients)
    assert verdict == Verdict(Kind.RETRY, "RESOURCE_EXHAUSTED", 0.5, rate_limited=True)
    assert classify(limited, 3, POLICY, 0.0, recipients=recipients).rate_limited  # still counted
    lost = errors.SinchAmbiguousError("read timeout")
    assert classify(lost, 1, POLICY, 0.0, recipients=recipients).kind is Kind.IN_DOUBT
    gone = errors.SinchPermanentError("not found", status=404, code="NOT_FOUND")
    assert classify(gone, 1, POLICY, 0.0, recipients=recipients) == Verdict(Kind.FAIL, "NOT_FOUND")
    revoked = errors.SinchAuthError("unauthenticated", status=401)
    assert classify(revoked, 1, POLICY, 0.0, recipients=recipients).kind is Kind.CREDENTIALS


def test_a_400_fails_one_recipient_and_splits_a_batch() -> None:
    refused = bad_request("recipient_and_params[3].recipient.identified_by")
    assert classify(refused, 1, POLICY, 0.0) == Verdict(Kind.FAIL, "INVALID_ARGUMENT")
    assert classify(refused, 1, POLICY, 0.0, recipients=10).kind is Kind.SPLIT
    assert named_recipients(refused, 10) == {3}
    assert named_recipients(refused, 3) == set()  # an index out of the batch names nobody
    assert recipient_reason(refused, 3).endswith("recipient.identified_by is not valid")
    assert recipient_reason(refused, 4) == "invalid request"


def test_a_400_on_a_field_of_the_campaign_stops_the_run_in_every_mode() -> None:
    refused = bad_request("channel_properties.SMS_SENDER")
    for recipients in (1, 1000):
        verdict = classify(refused, 1, POLICY, 0.0, recipients=recipients)
        assert verdict.kind is Kind.CAMPAIGN and verdict.refusal is not None
        assert "channel_properties.SMS_SENDER is not valid" in str(verdict.refusal)
