"""The GitHub App client: JWT for app endpoints, cached installation tokens for the rest.

Responses are read as plain JSON (no strict models: GitHub's payloads vary more
than any generated schema admits). 5xx answers and rate limits are retried with
backoff, honouring `Retry-After` and `x-ratelimit-reset`; other 4xx are not.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
import jwt
import orjson

from bot import __version__

log = logging.getLogger(__name__)

USER_AGENT = f"easydeploy/{__version__} (+https://github.com/apps/easy-deploy)"
API_VERSION = "2022-11-28"
TOKEN_REFRESH_MARGIN = 300.0  # refresh installation tokens five minutes before they expire
JWT_LIFETIME = 540  # GitHub allows at most 10 minutes
JWT_BACKDATE = 60  # tolerate clock drift between us and GitHub

# The delivery or deploy being worked on; stamped on outgoing requests so logs line up.
current_delivery: contextvars.ContextVar[str | None] = contextvars.ContextVar("delivery_id", default=None)


class GitHubError(Exception):
    """GitHub answered with an error; carries the status, body and headers."""

    def __init__(self, status: int, message: str, body: Any = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"GitHub answered {status}: {message}")
        self.status = status
        self.body = body
        self.headers = headers or {}


class BadRequest(GitHubError):
    """A 4xx that retrying will not fix."""


class NotFound(BadRequest):
    """404: the thing is gone, or the App cannot see it."""


class RateLimitExceeded(GitHubError):
    """Still rate limited after the retries."""


class GitHubBroken(GitHubError):
    """5xx or no answer after the retries."""


@dataclass
class CachedToken:
    token: str
    expires_at: float


@dataclass
class RetryPolicy:
    """How hard to try: attempts, backoff and the longest single wait."""

    attempts: int = 5
    backoff: float = 0.5
    max_wait: float = 60.0


def _parse_expiry(value: str | None, clock: float) -> float:
    if not value:
        return clock + 3600
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def rate_limit_wait(status: int, headers: Any, clock: float) -> float | None:
    """Seconds to wait if this answer is a rate limit, else None (a pure decision)."""
    retry_after = headers.get("Retry-After")
    if status in (403, 429) and retry_after is not None:
        try:
            return max(float(retry_after), 0.0)
        except ValueError:
            return 60.0
    if status in (403, 429) and headers.get("x-ratelimit-remaining") == "0":
        reset = headers.get("x-ratelimit-reset")
        try:
            return max(float(reset) - clock, 0.0) + 1.0 if reset else 60.0
        except ValueError:
            return 60.0
    if status == 429:
        return 60.0
    return None


class GitHubApp:
    """An authenticated GitHub App; one per process, shared by handlers."""

    def __init__(
        self,
        app_id: int,
        private_key: str,
        api_url: str,
        session: aiohttp.ClientSession,
        *,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.app_id = app_id
        self._private_key = private_key
        self.api_url = api_url.rstrip("/")
        self.session = session
        self.retry = retry or RetryPolicy()
        self._clock = clock
        self._sleep = sleep
        self._tokens: dict[int, CachedToken] = {}
        self._token_locks: dict[int, asyncio.Lock] = {}

    def jwt(self) -> str:
        """A fresh RS256 JWT identifying the App."""
        issued = int(self._clock()) - JWT_BACKDATE
        payload = {"iat": issued, "exp": issued + JWT_LIFETIME, "iss": str(self.app_id)}
        return jwt.encode(payload, self._private_key, algorithm="RS256")

    async def installation_token(self, installation_id: int) -> str:
        """An installation token, reused until five minutes before it expires."""
        cached = self._tokens.get(installation_id)
        if cached and cached.expires_at - TOKEN_REFRESH_MARGIN > self._clock():
            return cached.token
        lock = self._token_locks.setdefault(installation_id, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(installation_id)
            if cached and cached.expires_at - TOKEN_REFRESH_MARGIN > self._clock():
                return cached.token
            data = await self.app_request("POST", f"/app/installations/{installation_id}/access_tokens")
            token = CachedToken(data["token"], _parse_expiry(data.get("expires_at"), self._clock()))
            self._tokens[installation_id] = token
            return token.token

    def forget_token(self, installation_id: int) -> None:
        """Drop a cached token (after a 401, or when the installation is deleted)."""
        self._tokens.pop(installation_id, None)

    async def app_request(self, method: str, path: str, *, json: Any = None, params: dict | None = None) -> Any:
        """Call an App-level endpoint (`/app/...`) with the JWT."""
        return await self._request(method, path, f"Bearer {self.jwt()}", json=json, params=params)

    async def request(
        self, installation_id: int, method: str, path: str, *, json: Any = None, params: dict | None = None
    ) -> Any:
        """Call a repository or installation endpoint with the installation token."""
        token = await self.installation_token(installation_id)
        try:
            return await self._request(method, path, f"token {token}", json=json, params=params)
        except GitHubError as exc:
            if exc.status != 401:
                raise
            # The token was revoked early (the installation changed): fetch a new one once.
            self.forget_token(installation_id)
            token = await self.installation_token(installation_id)
            return await self._request(method, path, f"token {token}", json=json, params=params)

    def installation(self, installation_id: int) -> "InstallationClient":
        """A client bound to one installation."""
        return InstallationClient(self, installation_id)

    async def _request(
        self, method: str, path: str, authorization: str, *, json: Any = None, params: dict | None = None
    ) -> Any:
        url = path if path.startswith("http") else self.api_url + path
        headers = {
            "Accept": "application/vnd.github+json",
            "Authorization": authorization,
            "User-Agent": USER_AGENT,
            "X-GitHub-Api-Version": API_VERSION,
        }
        delivery = current_delivery.get()
        if delivery:
            headers["X-Request-Id"] = delivery
        data = orjson.dumps(json) if json is not None else None
        if data is not None:
            headers["Content-Type"] = "application/json"
        last: GitHubError | None = None
        for attempt in range(1, self.retry.attempts + 1):
            try:
                async with self.session.request(method, url, data=data, params=params, headers=headers) as resp:
                    raw = await resp.read()
                    status, resp_headers = resp.status, resp.headers
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                last = GitHubBroken(0, f"no answer ({exc.__class__.__name__})")
                wait = self._backoff(attempt)
            else:
                body = _decode(raw)
                if status < 400:
                    return body
                message = body.get("message", "") if isinstance(body, dict) else str(body)[:200]
                wait = rate_limit_wait(status, resp_headers, self._clock())
                if wait is not None:
                    last = RateLimitExceeded(status, message, body, dict(resp_headers))
                elif status >= 500:
                    last = GitHubBroken(status, message, body, dict(resp_headers))
                    wait = self._backoff(attempt)
                else:
                    cls = NotFound if status == 404 else BadRequest
                    raise cls(status, message, body, dict(resp_headers))
            if attempt == self.retry.attempts or wait > self.retry.max_wait:
                break
            log.warning("GitHub %s %s: %s; retrying in %.1fs", method, path, last, wait)
            await self._sleep(wait)
        assert last is not None
        raise last

    def _backoff(self, attempt: int) -> float:
        return self.retry.backoff * (2 ** (attempt - 1)) * (1 + random.random() / 4)


class InstallationClient:
    """Shorthand for requests made with one installation's token."""

    def __init__(self, app: GitHubApp, installation_id: int) -> None:
        self.app = app
        self.installation_id = installation_id

    async def get(self, path: str, **params: Any) -> Any:
        return await self.app.request(self.installation_id, "GET", path, params=params or None)

    async def post(self, path: str, json: Any = None) -> Any:
        return await self.app.request(self.installation_id, "POST", path, json=json)

    async def patch(self, path: str, json: Any = None) -> Any:
        return await self.app.request(self.installation_id, "PATCH", path, json=json)

    async def token(self) -> str:
        """The installation token (for git over HTTPS)."""
        return await self.app.installation_token(self.installation_id)


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode("utf-8", "replace")
