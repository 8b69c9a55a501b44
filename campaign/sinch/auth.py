"""OAuth2 client-credentials tokens for Sinch: cached, refreshed early, fetched once at a time."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp
import orjson
import yarl

from campaign import errors, retry, secrets
from campaign.config import SinchConfig
from campaign.sinch import responses

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Token:
    value: str = field(repr=False)  # a bearer token is a credential: never printed
    refresh_at: float  # monotonic time after which a new token is fetched
    expires_at: float


def refresh_time(obtained: float, lifetime: float, margin: float) -> float:
    """When to refresh a token that lives ``lifetime`` seconds: ``margin`` before it expires,
    but never in the first half of its life (short-lived tokens would otherwise never be used).
    """
    return obtained + max(lifetime - margin, lifetime / 2)


class TokenProvider:
    """Hands out a valid bearer token. Concurrent callers share one fetch."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        config: SinchConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session = session
        self._config = config
        self._clock = clock
        self._token: Token | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0

    def basic_authorization(self) -> str:
        """The ``Authorization: Basic ...`` value for the key (token endpoint, or Basic mode)."""
        return aiohttp.encode_basic_auth(self._config.key_id, self._config.key_secret.reveal())

    async def token(self) -> str:
        """A token valid now, fetching a new one when the cached one is due for refresh."""
        token = self._token
        if token is not None and self._clock() < token.refresh_at:
            return token.value
        async with self._lock:
            token = self._token
            if token is None or self._clock() >= token.refresh_at:
                token = self._token = await self._fetch()
            return token.value

    def invalidate(self, value: str) -> None:
        """Forget ``value`` (Sinch said it expired) unless a newer token already replaced it."""
        if self._token is not None and self._token.value == value:
            self._token = None

    async def _fetch(self) -> Token:
        url = self._config.resolved_url(self._config.auth_url)
        started = self._clock()
        try:
            async with self._session.post(
                url,
                data={"grant_type": "client_credentials"},
                headers={"Authorization": self.basic_authorization()},
            ) as response:
                body = await response.read()
                status = response.status
                headers = response.headers
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise errors.SinchRetryableError(
                f"token endpoint unreachable: {type(exc).__name__}"
            ) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            # Fetching a token changes nothing at Sinch, so a lost answer is safe to retry.
            raise errors.SinchRetryableError(f"token request failed: {type(exc).__name__}") from exc
        if status >= 400:
            error = responses.error_for_status(status, headers, body, now=datetime.now(UTC))
            if isinstance(error, errors.SinchAuthError):
                raise errors.SinchAuthError(
                    f"the token endpoint refused the credentials (SINCH_KEY_ID / "
                    f"SINCH_KEY_SECRET): {error.message}",
                    status=status,
                    code=error.code,
                )
            raise error
        try:
            data = orjson.loads(body)
            value = data["access_token"]
            lifetime = float(data.get("expires_in", 3600))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise errors.SinchAuthError(
                "the token endpoint answered without a usable access_token", status=status
            ) from exc
        if not isinstance(value, str) or not value:
            raise errors.SinchAuthError("the token endpoint answered an empty access_token")
        if str(data.get("token_type", "bearer")).lower() != "bearer":
            raise errors.SinchAuthError("the token endpoint answered a non-bearer token")
        secrets.register(value)  # masked in any error or log line that might carry it
        self.fetches += 1
        logger.debug(
            "fetched access token", extra={"action": "token_fetched", "expires_in": lifetime}
        )
        return Token(
            value=value,
            refresh_at=refresh_time(started, lifetime, self._config.token_refresh_margin),
            expires_at=started + lifetime,
        )


async def check_credentials(
    tokens: TokenProvider,
    config: SinchConfig,
    *,
    attempts: int = 3,
    backoff: float = 0.5,
) -> None:
    """Fetch a token once, before anything is written or sent, so that a run that cannot
    authenticate stops at once with exit 2 instead of failing (or retrying for minutes)
    every recipient:

    - refused credentials (401/403) raise :class:`~campaign.errors.ConfigError`;
    - an unreachable or failing token endpoint (refused connection, timeout, 5xx) is tried
      ``attempts`` times, then raises :class:`~campaign.errors.SinchUnavailableError`. The
      waits are :func:`campaign.retry.delay`'s, at most ``backoff`` seconds and doubling; an
      endpoint that asks for a ``Retry-After`` over ``MAX_START_WAIT_S`` is not waited for (a
      run started by cron had better stop and say so than hang).

    With ``auth = "basic"`` no token is used and nothing is checked. The token fetched is
    ``tokens``' own: the senders use it.
    """
    if config.auth != "oauth":
        return
    policy = retry.RetryPolicy(max_attempts=attempts, base_delay=backoff)
    try:
        await retry.call(tokens.token, policy, retry_on=_worth_waiting_for)
    except errors.SinchAuthError as exc:
        raise errors.ConfigError(str(exc.message)) from None
    except errors.SinchRetryableError as exc:
        where = _public_url(config.resolved_url(config.auth_url))
        raise errors.SinchUnavailableError(
            f"the Sinch token endpoint {where} is unavailable ({exc}); "
            "nothing was sent, run again later"
        ) from exc
    except errors.SinchError:
        return  # anything else is the senders' to classify, recipient by recipient


# The longest Retry-After that the start-up check waits for.
MAX_START_WAIT_S = 5.0


def _worth_waiting_for(error: errors.SinchError) -> bool:
    if not retry.retryable(error):
        return False
    wait = error.retry_after if isinstance(error, errors.SinchRetryableError) else None
    return wait is None or wait <= MAX_START_WAIT_S


def _public_url(url: str) -> str:
    """``url`` without any user information or query, for an error message."""
    parsed = yarl.URL(url)
    return str(parsed.with_user(None).with_query(None).with_fragment(None))
