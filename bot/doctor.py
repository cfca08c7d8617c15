"""`easydeploy doctor`: show the effective configuration and check every dependency answers."""

from __future__ import annotations

import asyncio
from typing import TextIO

import aiohttp

from bot.app import resolve_github_credentials
from bot.github import GitHubApp, GitHubError, RetryPolicy
from bot.settings import Settings


async def check_github(settings: Settings, http: aiohttp.ClientSession) -> str:
    """GET /app with the App's JWT."""
    app_id, key, _ = resolve_github_credentials(settings)
    app = GitHubApp(app_id, key, settings.github_api_url, http, retry=RetryPolicy(attempts=1))
    data = await app.app_request("GET", "/app")
    return f"app {data.get('slug') or data.get('name')} (id {data.get('id')})"


async def check_slack(settings: Settings, http: aiohttp.ClientSession) -> str:
    """auth.test with the bot token."""
    if settings.slack_bot_token is None:
        raise LookupError("EASYDEPLOY_SLACK_BOT_TOKEN is not set")
    url = settings.slack_api_url.rstrip("/") + "/auth.test"
    async with http.post(url, headers={"Authorization": f"Bearer {settings.slack_bot_token.get_secret_value()}"}) as resp:
        body = await resp.json(content_type=None)
    if not body.get("ok"):
        raise RuntimeError(f"auth.test answered {body.get('error')}")
    return f"team {body.get('team')} as {body.get('user')}"


def check_aws(settings: Settings) -> str:
    """sts:GetCallerIdentity against the configured endpoint."""
    import boto3
    from botocore.config import Config

    if settings.sandbox and not settings.aws_endpoint_url:
        return "sandbox: the embedded emulator starts with the service"
    sts = boto3.client("sts", region_name=settings.aws_region, endpoint_url=settings.aws_endpoint_url,
                       config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=5))
    ident = sts.get_caller_identity()
    return f"account {ident['Account']} as {ident['Arn']}"


async def doctor(settings: Settings, out: TextIO) -> int:
    """Print the configuration and one line per dependency; 1 if any check fails."""
    out.write("Configuration (secrets masked):\n")
    for name, value in settings.masked().items():
        out.write(f"  {name}={value}\n")
    failed = False
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        checks = {
            "github": check_github(settings, http),
            "slack": check_slack(settings, http),
            "aws": asyncio.to_thread(check_aws, settings),
        }
        for name, pending in checks.items():
            try:
                detail = await pending
            except (GitHubError, aiohttp.ClientError, asyncio.TimeoutError, LookupError, RuntimeError, ValueError) as exc:
                failed = True
                out.write(f"{name}: FAIL {exc}\n")
            except Exception as exc:  # noqa: BLE001 - botocore errors and the like
                failed = True
                out.write(f"{name}: FAIL {exc.__class__.__name__}: {exc}\n")
            else:
                out.write(f"{name}: ok {detail}\n")
    return 1 if failed else 0
