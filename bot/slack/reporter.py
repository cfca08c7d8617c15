"""The live Slack message of each deploy: posted once per subscribed channel, then updated in place.

Reporting never slows or fails a deploy: `deploy_changed` only notes the newest
record and returns; one task per deploy publishes it (coalescing bursts of
stage changes into one update), retries Slack's outages and rate limits with
backoff, and then drops the update with a log line.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.deploys import Deploy
from bot.slack.messages import deploy_message
from bot.slack.store import SlackStore

log = logging.getLogger(__name__)

# API errors that mean "try again later"; anything else (not_in_channel, invalid_auth…) will not heal by retrying.
RETRYABLE_ERRORS = frozenset({"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"})


@dataclass(frozen=True)
class SlackRetry:
    """How hard to try one Slack call: attempts, exponential backoff, and the longest wait honoured."""

    attempts: int = 4
    backoff: float = 1.0
    max_wait: float = 30.0


def retry_wait(status: int | None, error: str | None, retry_after: str | None, attempt: int, policy: SlackRetry) -> float | None:
    """Seconds to wait before the next try, or None when the failure is final (a pure decision)."""
    if attempt >= policy.attempts:
        return None
    if status == 429 or error == "ratelimited":
        try:
            wait = float(retry_after) if retry_after is not None else policy.backoff * 2 ** (attempt - 1)
        except ValueError:
            wait = policy.backoff * 2 ** (attempt - 1)
        return wait if wait <= policy.max_wait else None
    if status is None or status >= 500 or error in RETRYABLE_ERRORS:
        return min(policy.backoff * 2 ** (attempt - 1), policy.max_wait)
    return None


class SlackReporter:
    """A deploy reporter that keeps one message per subscribed channel up to date."""

    def __init__(self, store: SlackStore, client: AsyncWebClient, web_url: str, *, retry: SlackRetry | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.store = store
        self.client = client
        self.web_url = web_url
        self.retry = retry or SlackRetry()
        self._sleep = sleep
        self._latest: dict[str, Deploy] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def deploy_changed(self, deploy: Deploy) -> None:
        """Note the newest record; the deploy's publishing task sends it (never blocks the deploy)."""
        if deploy.kind == "build":
            return  # pull-request builds are reported on GitHub only
        self._latest[deploy.id] = deploy
        if deploy.id not in self._tasks:
            self._tasks[deploy.id] = asyncio.get_running_loop().create_task(self._drain(deploy.id), name=f"slack:{deploy.id}")

    async def idle(self, timeout: float | None = None) -> None:
        """Wait until every pending update was sent or dropped (tests, shutdown)."""
        while self._tasks:
            done, _ = await asyncio.wait(list(self._tasks.values()), timeout=timeout)
            if timeout is not None and not done:
                return

    async def close(self, timeout: float = 5.0) -> None:
        """Let pending updates finish for a while, then cancel the rest."""
        tasks = list(self._tasks.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                log.warning("Slack: %d deploy message updates dropped at shutdown", len(pending))
                await asyncio.gather(*pending, return_exceptions=True)

    async def _drain(self, deploy_id: str) -> None:
        try:
            # Each pass sends the newest record; changes that arrive meanwhile collapse into the next pass.
            while (deploy := self._latest.pop(deploy_id, None)) is not None:
                try:
                    await self.publish(deploy)
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - a Slack problem never reaches the deploy
                    log.exception("Slack: deploy %s message not updated", deploy_id)
        finally:
            self._tasks.pop(deploy_id, None)

    async def publish(self, deploy: Deploy) -> None:
        """Post or update the deploy's message in every subscribed channel (and where it was posted before)."""
        posted = {m.channel: m.ts for m in await self.store.messages(deploy.id)}
        channels = await self.store.subscribers(deploy.owner, deploy.repo)
        channels += [c for c in posted if c not in channels]
        if not channels:
            return
        message = deploy_message(deploy, self.web_url)
        for channel in channels:
            ts = posted.get(channel)
            if ts is not None:
                await self._call(deploy, "chat_update", channel=channel.channel_id, ts=ts, **message)
                continue
            answer = await self._call(deploy, "chat_postMessage", channel=channel.channel_id,
                                      unfurl_links=False, unfurl_media=False, **message)
            if answer is not None and answer.get("ts"):
                await self.store.save_message(deploy.id, channel, str(answer["ts"]))

    async def _call(self, deploy: Deploy, method: str, **kwargs: Any) -> dict[str, Any] | None:
        """One Web API call with retries; None when it was dropped."""
        attempt = 0
        while True:
            attempt += 1
            status: int | None = None
            error: str | None = None
            retry_after: str | None = None
            try:
                response = await getattr(self.client, method)(**kwargs)
                return dict(response.data) if isinstance(response.data, dict) else {}
            except SlackApiError as exc:
                status = exc.response.status_code
                data = exc.response.data
                error = data.get("error") if isinstance(data, dict) else None
                retry_after = (exc.response.headers or {}).get("Retry-After") or (exc.response.headers or {}).get("retry-after")
            except (SlackClientError, aiohttp.ClientError, asyncio.TimeoutError) as exc:
                error = type(exc).__name__
            wait = retry_wait(status, error, retry_after, attempt, self.retry)
            if wait is None:
                log.warning("Slack %s for deploy %s in %s dropped after %d attempt(s): status=%s error=%s",
                            method, deploy.id, kwargs.get("channel"), attempt, status, error)
                return None
            log.info("Slack %s for deploy %s: status=%s error=%s; retrying in %.2fs", method, deploy.id, status, error, wait)
            await self._sleep(wait)

