"""One classification of Sinch's errors for every mode (campaign.sending.outcomes)."""

from __future__ import annotations

import pytest

from campaign import errors, retry
from campaign.sending.outcomes import (
    STREAK_LIMIT,
    App,
    Kind,
    RefusalStreak,
    Verdict,
    classify,
    named_recipients,
    recipient_reason,
)

POLICY = retry.RetryPolicy(max_attempts=3, base_delay=1.0, factor=2.0, max_delay=5.0)


def bad_request(*fields: str, description: str = "is not valid") -> errors.SinchPermanentError:
    violations = [{"field": f, "description": description} for f in fields]
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
    full = errors.SinchQueueFullError("queue is full", status=429, code="RESOURCE_EXHAUSTED")
    for attempts in (1, POLICY.max_attempts, 100):  # never fails, never the rate's 429
        assert classify(full, attempts, POLICY, 0.0, recipients=recipients) == Verdict(
            Kind.QUEUE_FULL, "RESOURCE_EXHAUSTED"
        )
    lost = errors.SinchAmbiguousError("read timeout")
    assert classify(lost, 1, POLICY, 0.0, recipients=recipients).kind is Kind.IN_DOUBT
    gone = errors.SinchPermanentError("not found", status=404, code="NOT_FOUND")
    assert classify(gone, 1, POLICY, 0.0, recipients=recipients).kind is Kind.CAMPAIGN
    revoked = errors.SinchAuthError("unauthenticated", status=401)
    assert classify(revoked, 1, POLICY, 0.0, recipients=recipients).kind is Kind.CREDENTIALS


def test_a_400_fails_one_recipient_and_splits_a_batch() -> None:
    refused = bad_request("recipient_and_params[3].recipient.identified_by")
    assert classify(refused, 1, POLICY, 0.0) == Verdict(Kind.FAIL, "INVALID_ARGUMENT")
    assert classify(refused, 1, POLICY, 0.0, recipients=10).kind is Kind.SPLIT
    assert named_recipients(refused, 10) == {3}
    assert named_recipients(refused, 3) == set()  # an index out of the batch names nobody
    assert recipient_reason(refused, 3) == "invalid request: recipient.identified_by: is not valid"
    assert recipient_reason(refused, 4) == "invalid request"  # another recipient's violation


def test_a_400_on_a_field_of_the_campaign_stops_the_run_in_every_mode() -> None:
    refused = bad_request("channel_properties.SMS_SENDER")
    for recipients in (1, 1000):
        verdict = classify(refused, 1, POLICY, 0.0, recipients=recipients)
        assert verdict.kind is Kind.CAMPAIGN and verdict.refusal is not None
        assert "channel_properties.SMS_SENDER is not valid" in str(verdict.refusal)


def test_sinchs_field_violations_are_kept_in_the_failure_description() -> None:
    """A recipient FAILED for a 400 records Sinch's violations ("field: description"), in
    every mode: all of them for one recipient's request, those naming it or nobody in a batch."""
    refused = bad_request("message.text_message.text", description="must not be empty")
    assert (
        recipient_reason(refused) == "invalid request: message.text_message.text: must not be empty"
    )
    assert recipient_reason(refused, 7) == recipient_reason(refused)  # the batch's message
    bare = errors.SinchPermanentError("invalid request", status=400, code="INVALID_ARGUMENT")
    assert recipient_reason(bare) == recipient_reason(bare, 0) == "invalid request"


@pytest.mark.parametrize("recipients", [1, 1000])
def test_a_404_on_a_send_stops_the_run_naming_the_app_and_region(recipients: int) -> None:
    """A 404 from messages:send or the Batch API names the app or the project, never a
    recipient: every request would get it, so nobody fails and the run stops."""
    gone = errors.SinchPermanentError("App '01WRONG' not found", status=404, code="NOT_FOUND")
    app = App("01WRONG", "eu")
    verdict = classify(gone, 1, POLICY, 0.0, recipients=recipients, app=app)
    assert verdict.kind is Kind.CAMPAIGN and verdict.refusal is not None
    text = str(verdict.refusal)
    assert text.startswith(
        "Sinch does not know the app '01WRONG' in region 'eu' "
        "(HTTP 404 NOT_FOUND: App '01WRONG' not found)"
    )
    assert "nobody was marked failed" in text
    bodiless = errors.SinchPermanentError("not found", status=404)
    assert classify(bodiless, 1, POLICY, 0.0, app=app).kind is Kind.CAMPAIGN


def _fail(exc: errors.SinchError, recipients: int = 1) -> Verdict:
    return classify(exc, 1, POLICY, 0.0, recipients=recipients)


def test_identical_refusals_of_the_message_in_a_row_stop_the_run() -> None:
    """The same 400 on the message for STREAK_LIMIT requests in a row: the message is wrong
    for everyone. Those before the stop stay FAILED (the stop says how many); the one that
    completes the streak, and every identical one after, stop the run instead."""
    streak = RefusalStreak()
    refused = bad_request("message.text_message.text", description="must not be empty")
    for _ in range(STREAK_LIMIT - 1):
        assert streak.feed(_fail(refused), refused).kind is Kind.FAIL
    stop = streak.feed(_fail(refused), refused)
    assert stop.kind is Kind.CAMPAIGN and stop.refusal is not None
    assert str(stop.refusal) == (
        f"Sinch refused the campaign's message {STREAK_LIMIT} times in a row (HTTP 400 "
        "INVALID_ARGUMENT: message.text_message.text: must not be empty); sending stopped: "
        f"{STREAK_LIMIT - 1} recipients failed with it before the run stopped; `campaign "
        "retry` will put them back; correct the message and run the same command again"
    )
    later = streak.feed(_fail(refused), refused)  # an answer still under way at the stop
    assert later == stop
    streak.accepted()  # an accepted send after the stop does not undo it
    assert streak.feed(_fail(refused), refused) == stop


def test_a_different_refusal_or_an_accepted_send_breaks_the_streak() -> None:
    streak = RefusalStreak()
    message = bad_request("message.text_message.text", description="must not be empty")
    other_description = bad_request("message.text_message.text", description="too long")
    identity = bad_request("recipient.identified_by", description="invalid identity")
    for breaker in (other_description, identity):
        for _ in range(STREAK_LIMIT - 1):
            assert streak.feed(_fail(message), message).kind is Kind.FAIL
        assert streak.feed(_fail(breaker), breaker).kind is Kind.FAIL
    for _ in range(STREAK_LIMIT - 1):
        assert streak.feed(_fail(message), message).kind is Kind.FAIL
    streak.accepted()
    assert streak.feed(_fail(message), message).kind is Kind.FAIL
    # A retry (a 503 between two refusals) is no answer about the message: the streak goes on.
    for _ in range(STREAK_LIMIT - 2):
        streak.feed(_fail(message), message)
    busy = errors.SinchRetryableError("unavailable", status=503)
    assert streak.feed(_fail(busy), busy).kind is Kind.RETRY
    assert streak.feed(_fail(message), message).kind is Kind.CAMPAIGN


def test_a_recipients_identity_refused_alike_many_times_never_stops_the_run() -> None:
    """Identical refusals of recipients' identities say something about each of them."""
    streak = RefusalStreak()
    identity = bad_request("recipient.identified_by", description="invalid identity")
    for _ in range(STREAK_LIMIT * 3):
        assert streak.feed(_fail(identity), identity).kind is Kind.FAIL


def test_a_batch_refused_for_its_message_stops_the_run_before_anyone_fails() -> None:
    """In batch mode the refusals are splits (nobody FAILED yet): the stop says so."""
    streak = RefusalStreak()
    refused = bad_request("message.bogus", description="unknown field")
    sizes = [1000, 500, 500, 250, 250]
    verdicts = [streak.feed(_fail(refused, n), refused, n) for n in sizes]
    assert [v.kind for v in verdicts] == [Kind.SPLIT] * 4 + [Kind.CAMPAIGN]
    assert "nobody was marked failed for it" in str(verdicts[-1].refusal)


def test_a_429_without_retry_after_is_the_queues_when_the_queue_was_read_full() -> None:
    """Sinch documents no body for the full queue's 429: whatever its message, one that
    comes while the queue was last read full, without Retry-After, is the queue's."""
    bare = errors.SinchRateLimitedError("Too many requests", status=429)
    assert classify(bare, 1, POLICY, 0.0).kind is Kind.RETRY
    assert classify(bare, 1, POLICY, 0.0, queue_full=True).kind is Kind.QUEUE_FULL
    timed = errors.SinchRateLimitedError("Too many requests", status=429, retry_after=1.0)
    assert classify(timed, 1, POLICY, 0.0, queue_full=True).rate_limited


def test_a_full_queue_neither_counts_in_nor_breaks_a_streak_of_refusals() -> None:
    streak = RefusalStreak(limit=2)
    refused = bad_request("message.text_message.text")
    full = errors.SinchQueueFullError("queue is full", status=429)
    assert streak.feed(classify(refused, 1, POLICY, 0.0), refused).kind is Kind.FAIL
    assert streak.feed(classify(full, 1, POLICY, 0.0), full).kind is Kind.QUEUE_FULL
    assert streak.feed(classify(refused, 1, POLICY, 0.0), refused).kind is Kind.CAMPAIGN
