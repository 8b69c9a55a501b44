"""The Batch API: send one message to up to 1000 recipients, schedule, look up, cancel.

Each recipient becomes a normal Conversation message with its ``${parameters}`` substituted
and its metadata merged (plus ``_batch_id``). Without a future ``send_after`` the messages are
accepted at once; otherwise the batch waits, SCHEDULED, in :class:`BatchScheduler` until its
time or until it is cancelled.
"""

from __future__ import annotations

import contextlib
import gc
import re
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec
from aiohttp import web

from campaign import jsonutil
from campaign.sandbox import (
    bulkcheck,
    guard,
    keys,
    records,
    responses,
    scheduling,
    substitution,
    validation,
    webhooks,
)
from campaign.sandbox.records import Batch, BatchStatus
from campaign.sandbox.settings import SandboxSettings
from campaign.sandbox.state import SandboxState
from campaign.sandbox.timers import DueQueue


class BatchScheduler:
    """Releases SCHEDULED batches at their ``send_after``. Create it inside the running loop."""

    def __init__(self, state: SandboxState) -> None:
        self._state = state
        self._due: DueQueue[str] = DueQueue(time.time)

    def schedule(self, batch: Batch) -> None:
        """Release ``batch`` at its ``send_after`` unless it is cancelled first."""
        assert batch.send_after is not None
        self._due.push(batch.send_after.timestamp(), batch.batch_id)

    def clear(self) -> None:
        """Forget every scheduled release."""
        self._due.clear()

    async def run(self) -> None:
        """Release batches as they fall due, until cancelled."""
        while True:
            batch_id = await self._due.get()
            batch = self._state.batches.get(batch_id)
            if batch is not None and batch.status is BatchStatus.SCHEDULED:
                self._state.release(batch)


@guard.api_endpoint("batch")
async def send_batch(request: web.Request) -> web.StreamResponse:
    """``POST /v1/projects/{project_id}/messages``."""
    raw = await guard.read_body(request)
    if isinstance(raw, web.Response):
        return raw
    # A body of a thousand recipients parses into some 10,000 objects that live only until
    # the answer. Each allocation counts toward the cyclic collector's next run, which would
    # then walk them all (and older objects) again and again: that cost as much CPU as the
    # rest of the request. Reference counting frees them as soon as the (synchronous)
    # handling ends, and whatever outlives it is still there for the collector's next run,
    # so the collector sits out until then.
    with _collector_paused():
        return _send_batch(request, raw)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Suspend the cyclic garbage collector for a block that awaits nothing (a millisecond or
    so; the switch is process-wide, so another thread's collections wait as long)."""
    if not gc.isenabled():  # someone else holds it off; not ours to turn back on
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _send_batch(request: web.Request, raw: bytes) -> web.StreamResponse:
    """Check, build and accept (or schedule) the batch in ``raw``; the answer to give."""
    state = keys.state(request.app)
    settings = state.settings
    now = datetime.now(UTC)
    checked = _checked_body(raw, now, strict=settings.reject_unknown_fields)
    if isinstance(checked, web.Response):
        return checked
    body, items_json, size = checked
    if not state.has_app(body["app_id"]):
        return responses.not_found(f"App {body['app_id']!r}")
    if settings.processing_mode == "DISPATCH" and items_json is None:  # proven: none has one
        refused = validation.dispatch_violations(
            (f"recipient_and_params[{i}].recipient", item.get("recipient"))
            for i, item in enumerate(body[bulkcheck.ITEMS_FIELD])
            if isinstance(item, dict)
        )
        if refused:
            return responses.invalid_argument(refused)

    batch_id = records.new_id()
    # Messages nobody will see (no history kept, no callbacks to send) are counted, not built:
    # the answer is the same, and a long benchmark does not measure our bookkeeping.
    build = (
        settings.record_history
        or bool(settings.callback_url or body.get("callback_url"))
        or bool(webhooks.subscribers(state, body["app_id"]))
    )
    prepared = _recipient_messages(settings, body, items_json, size, batch_id, build, now)
    if isinstance(prepared, web.Response):
        return prepared

    batch = Batch(
        batch_id=batch_id,
        project_id=settings.project_id,
        app_id=body["app_id"],
        metadata=body.get("batch_metadata", {}),
        status=BatchStatus.READY,
        created_time=now,
        pending=prepared,
        size=size,
        unbuilt=0 if build else size,
        ttl_s=records.ttl_seconds(body),
    )
    return _accept(request, state, batch, body, now)


def _checked_body(
    raw: bytes, now: datetime, *, strict: bool
) -> tuple[dict[str, Any], msgspec.Raw | None, int] | web.Response:
    """The valid batch body in ``raw``: the body, its recipients still as JSON when they were
    proven valid unparsed (else ``None``: they are in the body), and their count; or the
    refusal to answer with."""
    # Most batches are proven valid as they are parsed; the others are parsed and checked in
    # full, which says what is wrong.
    proven = bulkcheck.proven_batch(raw, validation.MAX_RECIPIENTS)
    if proven is not None:
        body, items_json, size = proven
        violations = validation.check_batch(body, now=now, strict=strict, items_proven=True)
        if violations:
            return responses.invalid_argument(violations)
        return body, items_json, size
    parsed = guard.parse_json(raw)
    if isinstance(parsed, web.Response):
        return parsed
    violations = validation.check_batch(parsed, now=now, strict=strict)
    if violations:
        return responses.invalid_argument(violations)
    assert isinstance(parsed, dict)  # check_batch refuses anything else
    return parsed, None, len(parsed[bulkcheck.ITEMS_FIELD])


def _recipient_messages(
    settings: SandboxSettings,
    body: dict[str, Any],
    items_json: msgspec.Raw | None,
    size: int,
    batch_id: str,
    build: bool,
    now: datetime,
) -> list[records.SentMessage] | web.Response:
    """Each recipient's message (none unless ``build``), after the per-recipient checks: no
    refused identity, a value for every parameter when that is required; or the refusal."""
    refuse = settings.refuse_batches_with
    needed = build or settings.unknown_parameter == "error" or refuse is not None
    items: list[Any] = []
    if needed:
        items = (
            body[bulkcheck.ITEMS_FIELD]
            if items_json is None
            else jsonutil.loads(memoryview(items_json))
        )
    if refuse is not None and _holds_identity(items, re.compile(refuse)):
        # Refused whole, naming nobody: the client must find the bad recipients itself.
        return responses.api_error(400, "Invalid argument: the request could not be processed")
    ids = records.new_ids(size) if build else []
    prepared: list[records.SentMessage] = []
    missing: list[tuple[str, str]] = []
    render = substitution.compile_message(body["message"], settings.unknown_parameter)
    for i, item in enumerate(items):
        if not build and settings.unknown_parameter != "error":
            continue
        try:
            rendered = render(item.get("parameters", {}))
        except substitution.UnknownParameterError as exc:
            where = f"recipient_and_params[{i}].parameters"
            missing.append((where, f"no value for parameter {exc.name!r} used in message"))
            continue
        if build:
            prepared.append(
                records.from_batch_item(
                    body, item, rendered, batch_id, settings.project_id, now, message_id=ids[i]
                )
            )
    if missing:
        return responses.invalid_argument(missing)
    return prepared


def _accept(
    request: web.Request, state: SandboxState, batch: Batch, body: dict[str, Any], now: datetime
) -> web.StreamResponse:
    """Record ``batch`` and release it now, or schedule it for a future ``send_after``.

    A batch sent now whose recipients do not all fit in the app's MT queue is refused whole
    with the queue's 429, and not recorded. A scheduled one meets the queue when it falls due
    (:meth:`SandboxState.release`)."""
    answer: dict[str, Any] = {"batch_id": batch.batch_id}
    if "send_after" in body:
        requested = scheduling.parse_time(body["send_after"])
        assert requested is not None  # check_batch refuses anything else
        batch.send_after = scheduling.effective_send_after(requested, now)
        batch.send_after_text = answer["send_after"] = responses.iso_seconds(batch.send_after)
    scheduler = request.app[keys.SERVICES].scheduler
    later = batch.send_after is not None and batch.send_after > now and scheduler is not None
    if not later and not state.has_room(batch.app_id, batch.size):
        return responses.queue_full(batch.app_id, state.settings.queue_limit)
    state.batches[batch.batch_id] = batch
    state.stats.batches += 1
    if later:
        assert scheduler is not None
        batch.status = BatchStatus.SCHEDULED
        scheduler.schedule(batch)
    else:
        state.release(batch)
    return responses.json_response(answer)


@guard.api_endpoint("batch")
async def get_batch(request: web.Request) -> web.StreamResponse:
    """``GET /v1/projects/{project_id}/messages/{batch_id}``."""
    state = keys.state(request.app)
    batch = state.batches.get(request.match_info["batch_id"])
    if batch is None or batch.project_id != request.match_info["project_id"]:
        return responses.not_found(f"Batch {request.match_info['batch_id']!r}")
    return responses.json_response(batch.status_json())


@guard.api_endpoint("batch")
async def find_batches(request: web.Request) -> web.StreamResponse:
    """``GET /v1/projects/{project_id}/messages?metadataKey=K&metadataValue=V``."""
    state = keys.state(request.app)
    key = request.query.get("metadataKey")
    value = request.query.get("metadataValue")
    if key is None or value is None:
        return responses.invalid_argument(
            [
                (name, "is required")
                for name in ("metadataKey", "metadataValue")
                if name not in request.query
            ]
        )
    project_id = request.match_info["project_id"]
    found = [
        batch.status_json()
        for batch in state.batches.values()
        if batch.project_id == project_id and _metadata_matches(batch.metadata, key, value)
    ]
    return responses.json_response(found)


@guard.api_endpoint("batch")
async def cancel_batches(request: web.Request) -> web.StreamResponse:
    """``DELETE /v1/projects/{project_id}/messages``: cancel SCHEDULED batches.

    The JSON body names them by ``batch_id``, ``batch_ids`` or ``metadata_key`` and
    ``metadata_value`` (also ``metadataKey``/``metadataValue``); without a body the same names
    are read from the query string. Like Sinch, the answer is 200 ``{}`` whether or not
    anything matched; only a request naming nothing is refused.
    """
    state = keys.state(request.app)
    body: object = dict(request.query)  # for clients that cannot send a DELETE body
    if request.body_exists:
        body = await guard.read_json(request)
        if isinstance(body, web.Response):
            return body
    selector = _selector(body)
    if selector is None:
        return responses.invalid_argument(
            [("", "give batch_id, batch_ids, or metadata_key and metadata_value")]
        )
    project_id = request.match_info["project_id"]
    for batch in state.batches.values():
        if (
            batch.project_id == project_id
            and batch.status is BatchStatus.SCHEDULED
            and selector(batch)
        ):
            batch.status = BatchStatus.CANCELLED
            batch.pending = []
    return responses.json_response({})


def _selector(body: object) -> Callable[[Batch], bool] | None:
    """A predicate on batches from a cancel body, or ``None`` if the body names none."""
    if not isinstance(body, dict):
        return None
    ids: set[str] = set()
    if isinstance(body.get("batch_id"), str):
        ids.add(body["batch_id"])
    if isinstance(body.get("batch_ids"), list):
        ids.update(i for i in body["batch_ids"] if isinstance(i, str))
    key = body.get("metadata_key", body.get("metadataKey"))
    value = body.get("metadata_value", body.get("metadataValue"))
    by_metadata = isinstance(key, str) and isinstance(value, str)
    if not ids and not by_metadata:
        return None

    def selected(batch: Batch) -> bool:
        if batch.batch_id in ids:
            return True
        return by_metadata and _metadata_matches(batch.metadata, str(key), str(value))

    return selected


def _holds_identity(items: list[Any], pattern: re.Pattern[str]) -> bool:
    """Whether any recipient of ``items`` has a channel identity that ``pattern`` finds."""
    for item in items:
        identified = item.get("recipient", {}).get("identified_by", {})
        for entry in identified.get("channel_identities", ()):
            if pattern.search(str(entry.get("identity", ""))):
                return True
    return False


def _metadata_matches(metadata: Mapping[str, Any], key: str, value: str) -> bool:
    """Whether ``metadata[key]`` is ``value`` (non-string values compare as compact JSON)."""
    if key not in metadata:
        return False
    found = metadata[key]
    return found == value if isinstance(found, str) else jsonutil.dumps(found) == value
