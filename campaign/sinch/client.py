"""The Sinch Conversation API client: ``messages:send`` and the Batch API.

The only code that speaks HTTP to Sinch. It does one request per call (plus at most one token
refresh and replay on an expired token) and classifies every failure; retry decisions belong to
the caller (:mod:`campaign.retry`), which knows the budget and the global rate.
"""

from __future__ import annotations

import logging
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote

import aiohttp
import orjson

from campaign import errors, jsonutil
from campaign.config import SinchConfig
from campaign.sinch import responses
from campaign.sinch.auth import TokenProvider

logger = logging.getLogger(__name__)

USER_AGENT = "campaign/0.1 (+aiohttp)"


@dataclass(frozen=True)
class SendAccepted:
    """Sinch queued one message."""

    message_id: str
    accepted_time: str


@dataclass(frozen=True)
class BatchAccepted:
    """Sinch accepted a batch. ``send_after`` is echoed (possibly rounded) when scheduled."""

    batch_id: str
    send_after: str | None


@dataclass(frozen=True)
class AppInfo:
    """The app as Sinch describes it: how it processes messages, and its MT queue, which
    drains towards the channels at ``outbound_rate`` messages/s whatever the request rate.
    A field Sinch leaves out is None."""

    app_id: str
    processing_mode: str | None
    outbound_rate: int | None
    queue_size: int | None
    queue_limit: int | None


@dataclass(frozen=True)
class BatchInfo:
    batch_id: str
    status: str
    metadata: dict[str, Any]
    send_after: str | None


def open_session(config: SinchConfig) -> aiohttp.ClientSession:
    """The process's one HTTP session to Sinch. Call inside the running loop; close it last.

    The connect phase (which includes waiting for a pooled connection) has its own timeout so
    that a request which never left is told apart from one whose answer was lost.
    """
    connector = aiohttp.TCPConnector(limit=config.pool_size, ttl_dns_cache=300)
    timeout = aiohttp.ClientTimeout(
        total=None, connect=config.connect_timeout, sock_read=config.timeout
    )
    trace = aiohttp.TraceConfig()
    trace.on_request_headers_sent.append(_headers_sent)
    trace.on_request_chunk_sent.append(_chunk_sent)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        json_serialize=jsonutil.dumps,
        headers={"User-Agent": USER_AGENT},
        trace_configs=[trace],
    )


# Called when a request is written to the connection: the moment the rate limit counts
# (campaign.pacing).
Written = Callable[[], None]


@dataclass(frozen=True)
class _Pacing:
    """A request's ``trace_request_ctx``: whom to tell when it is written. A request with a
    body is written with its first chunk: aiohttp holds the headers back to send them with it,
    from a task of its own that may start tens of milliseconds later on a busy loop (so "headers
    sent" would be too early). One without a body is written with its headers."""

    written: Written
    body: bool


async def _headers_sent(
    _session: aiohttp.ClientSession,
    context: types.SimpleNamespace,
    _params: aiohttp.TraceRequestHeadersSentParams,
) -> None:
    pacing = context.trace_request_ctx
    if isinstance(pacing, _Pacing) and not pacing.body:
        pacing.written()


async def _chunk_sent(
    _session: aiohttp.ClientSession,
    context: types.SimpleNamespace,
    _params: aiohttp.TraceRequestChunkSentParams,
) -> None:
    pacing = context.trace_request_ctx
    if isinstance(pacing, _Pacing):
        pacing.written()


_Auth = Literal["conversation", "batch"]


class SinchClient:
    """Calls to one Sinch project, over a session the caller owns."""

    def __init__(
        self,
        config: SinchConfig,
        session: aiohttp.ClientSession,
        tokens: TokenProvider | None = None,
    ) -> None:
        self.config = config
        self._session = session
        self.tokens = tokens or TokenProvider(session, config)
        project = quote(config.project_id, safe="")
        conversation = config.resolved_url(config.conversation_url)
        self._send_url = f"{conversation}/v1/projects/{project}/messages:send"
        self._app_url = f"{conversation}/v1/projects/{project}/apps/{quote(config.app_id, safe='')}"
        self._batch_url = f"{config.resolved_url(config.batch_url)}/v1/projects/{project}/messages"
        self._project_url = f"{conversation}/v1/projects/{project}"

    # --- messages:send ------------------------------------------------------------------------

    async def send_message(
        self, body: Mapping[str, Any], *, written: Written | None = None
    ) -> SendAccepted:
        """``POST messages:send``. ``app_id`` is filled in from the config when absent.
        ``written`` is called when the request is written."""
        data = await self._request(
            "POST", self._send_url, self._with_app(body), "conversation", written=written
        )
        try:
            return SendAccepted(str(data["message_id"]), str(data.get("accepted_time", "")))
        except (KeyError, TypeError) as exc:
            raise errors.SinchAmbiguousError(
                "messages:send answered 2xx without a message_id"
            ) from exc

    async def app(self, *, written: Written | None = None) -> AppInfo:
        """``GET apps/{app_id}``: the configured app (a 404 when the project has no such app in
        this region). ``written`` is called when the request is written."""
        data = await self._request("GET", self._app_url, None, "conversation", written=written)
        return _app_info(data, self.config.app_id)

    async def conversation(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """A call to a resource of the project on the Conversation API host: ``path`` under
        ``/v1/projects/{project}`` (``/webhooks``, ``/messages:transcode``...); its JSON
        answer, or the classified :class:`~campaign.errors.SinchError`. For the resources
        that modules of :mod:`campaign.sinch` wrap (webhooks, transcoding)."""
        return await self._request(
            method, self._project_url + path, body, "conversation", params=params
        )

    # --- Batch API ----------------------------------------------------------------------------

    async def send_batch(
        self, body: Mapping[str, Any], *, written: Written | None = None
    ) -> BatchAccepted:
        """``POST /messages`` on the batch host: one message to 1..1000 recipients."""
        data = await self._request(
            "POST", self._batch_url, self._with_app(body), "batch", written=written
        )
        try:
            send_after = data.get("send_after")
            return BatchAccepted(str(data["batch_id"]), str(send_after) if send_after else None)
        except (KeyError, TypeError, AttributeError) as exc:
            raise errors.SinchAmbiguousError("batch send answered 2xx without a batch_id") from exc

    async def batch_status(self, batch_id: str) -> BatchInfo:
        data = await self._request(
            "GET", f"{self._batch_url}/{quote(batch_id, safe='')}", None, "batch"
        )
        return _batch_info(data)

    async def find_batches(
        self, key: str, value: str, *, written: Written | None = None
    ) -> list[BatchInfo]:
        """The batches whose ``batch_metadata[key] == value`` (how an ambiguous send is settled)."""
        query = {"metadataKey": key, "metadataValue": value}
        data = await self._request(
            "GET", self._batch_url, None, "batch", params=query, written=written
        )
        items = data.get("batches", []) if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise errors.SinchPermanentError("batch lookup answered an unexpected shape")
        return [_batch_info(item) for item in items]

    async def cancel_batches(
        self, *, batch_ids: Sequence[str] = (), metadata: tuple[str, str] | None = None
    ) -> None:
        """Ask Sinch to cancel scheduled batches. Sinch answers 200 whether or not it could;
        check with :meth:`batch_status`."""
        if metadata is not None:
            await self._request(
                "DELETE",
                self._batch_url,
                {"metadata_key": metadata[0], "metadata_value": metadata[1]},
                "batch",
            )
        for batch_id in batch_ids:
            await self._request("DELETE", self._batch_url, {"batch_id": batch_id}, "batch")

    # --- plumbing -----------------------------------------------------------------------------

    def _with_app(self, body: Mapping[str, Any]) -> Mapping[str, Any]:
        if "app_id" in body:
            return body
        return {"app_id": self.config.app_id, **body}

    async def _authorization(self, auth: _Auth) -> tuple[str, str | None]:
        """The Authorization header and the bearer token it carries (None for Basic)."""
        if auth == "conversation" and self.config.auth == "basic":
            return self.tokens.basic_authorization(), None
        token = await self.tokens.token()
        return f"Bearer {token}", token

    async def _request(
        self,
        method: str,
        url: str,
        body: Mapping[str, Any] | None,
        auth: _Auth,
        *,
        params: Mapping[str, str] | None = None,
        written: Written | None = None,
    ) -> Any:
        payload = orjson.dumps(body) if body is not None else None
        for attempt in (1, 2):
            authorization, token = await self._authorization(auth)
            headers = {"Authorization": authorization}
            if payload is not None:
                headers["Content-Type"] = "application/json"
            try:
                async with self._session.request(
                    method,
                    url,
                    data=payload,
                    headers=headers,
                    params=params,
                    # Once: a request sent again with a new token is not paced again.
                    trace_request_ctx=(
                        _Pacing(written, payload is not None)
                        if written is not None and attempt == 1
                        else None
                    ),
                ) as response:
                    status = response.status
                    raw = await response.read()
                    response_headers = response.headers
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
                # Never connected: the request did not leave, so it is safe to send again.
                raise errors.SinchRetryableError(
                    f"cannot connect to Sinch: {_describe(exc)}"
                ) from exc
            except (aiohttp.ClientError, TimeoutError) as exc:
                # Sent, but the answer was lost: Sinch may have accepted it.
                raise errors.SinchAmbiguousError(
                    f"no answer from Sinch after sending: {_describe(exc)}"
                ) from exc
            if 200 <= status < 300:
                try:
                    return orjson.loads(raw) if raw else {}
                except orjson.JSONDecodeError as exc:
                    raise errors.SinchAmbiguousError(
                        f"Sinch answered {status} with a body that is not JSON"
                    ) from exc
            if (
                token is not None
                and attempt == 1
                and responses.is_token_expired(status, response_headers)
            ):
                logger.info("access token expired; refreshing", extra={"action": "token_expired"})
                self.tokens.invalidate(token)
                continue
            raise responses.error_for_status(status, response_headers, raw, now=datetime.now(UTC))
        raise errors.SinchAuthError("Sinch refused a freshly fetched token as expired", status=401)


def _batch_info(data: Any) -> BatchInfo:
    if not isinstance(data, dict) or "batch_id" not in data:
        raise errors.SinchPermanentError("batch status answered an unexpected shape")
    metadata = data.get("meta_data", data.get("batch_metadata")) or {}
    send_after = data.get("send_after")
    return BatchInfo(
        batch_id=str(data["batch_id"]),
        status=str(data.get("status", "")),
        metadata=metadata if isinstance(metadata, dict) else {},
        send_after=str(send_after) if send_after else None,
    )


def _app_info(data: Any, app_id: str) -> AppInfo:
    if not isinstance(data, dict):
        raise errors.SinchPermanentError("the app answered an unexpected shape")
    limits = data.get("rate_limits") or {}
    stats = data.get("queue_stats") or {}
    return AppInfo(
        app_id=str(data.get("id", app_id)),
        processing_mode=_text(data.get("processing_mode")),
        outbound_rate=_count(limits.get("outbound") if isinstance(limits, dict) else None),
        queue_size=_count(stats.get("outbound_size") if isinstance(stats, dict) else None),
        queue_limit=_count(stats.get("outbound_limit") if isinstance(stats, dict) else None),
    )


def _text(value: Any) -> str | None:
    return str(value) if isinstance(value, str) and value else None


def _count(value: Any) -> int | None:
    """A count as Sinch writes it: a number, or an int64 as a string (proto3 JSON)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
