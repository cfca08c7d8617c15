"""Slack fixtures: the Slack stand-in, signed Slack requests, and a service with the Slack feature."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest

from bot.sandbox.github_standin import GitHubStandIn, wait_until
from bot.sandbox.slack_standin import SlackStandIn
from bot.slack.extension import SlackExtension
from bot.slack.reporter import SlackRetry

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TEAM = "T0001"
CHANNEL = "C0DEPLOYS"
FAST_SLACK = SlackRetry(attempts=3, backoff=0.01, max_wait=2)
INSTALLATION = 77
REPO = {"id": 501, "node_id": "R_501", "name": "web", "full_name": "acme/web", "private": True,
        "owner": {"login": "acme", "id": 9001, "type": "Organization"}, "default_branch": "main",
        "clone_url": "https://github.com/acme/web.git"}
SHA_MAIN = "a" * 40
SHA_TAG = "b" * 40
SHA_FEATURE = "c" * 40


def slack_signature(body: str, timestamp: int, secret: str = SIGNING_SECRET) -> str:
    """Slack's X-Slack-Signature for a body sent at `timestamp`."""
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed_headers(body: str, *, timestamp: int | None = None, secret: str = SIGNING_SECRET) -> dict[str, str]:
    """Headers as Slack sends them with a form-encoded request."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": slack_signature(body, ts, secret),
        "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
    }


@pytest.fixture
def commit_lookups(github: GitHubStandIn):
    """Teach the GitHub stand-in acme/web's branches, tags and commits."""
    github.add_commit("acme/web", SHA_MAIN, branch="main")
    github.add_commit("acme/web", SHA_FEATURE, branch="feature/login")
    github.add_commit("acme/web", SHA_TAG, tag="v1.0")
    return github


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    """The local Slack stand-in."""
    standin = SlackStandIn(team_id=TEAM)
    await standin.start()
    yield standin
    await standin.stop()


class SlackHarness:
    """A service with the Slack feature, and a Slack workspace that talks to it."""

    def __init__(self, svc: Any, slack: SlackStandIn, github: GitHubStandIn) -> None:
        self.svc = svc
        self.client = svc.client
        self.services = svc.services
        self.slack = slack
        self.github = github
        self._triggers = 0

    @property
    def feature(self):
        return self.services.extras["slack"]

    async def link(self, user: str, login: str) -> None:
        """Link a Slack user as if they had signed in to GitHub."""
        await self.feature.store.link(TEAM, user, login)

    def command_form(self, text: str, *, user: str = "U0ALICE", channel: str = CHANNEL) -> dict[str, str]:
        """A slash command exactly as Slack posts it."""
        self._triggers += 1
        return {
            "token": "gIkuvaNzQIHg97ATvDxqgjtO",
            "team_id": TEAM,
            "team_domain": "acme",
            "channel_id": channel,
            "channel_name": "deploys",
            "user_id": user,
            "user_name": user.lower(),
            "command": "/deploy",
            "text": text,
            "api_app_id": "A0EASYDEPLOY",
            "is_enterprise_install": "false",
            "response_url": self.slack.response_url(),
            "trigger_id": f"{self._triggers}.13345224609.738474920.8088930838d88f008e0",
        }

    async def post(self, form: dict[str, str], **sign: Any):
        body = urlencode(form)
        return await self.client.post("/slack/events", data=body.encode(), headers=signed_headers(body, **sign))

    async def command(self, text: str, *, user: str = "U0ALICE", channel: str = CHANNEL):
        """Send a signed `/deploy` command; return the HTTP response."""
        return await self.post(self.command_form(text, user=user, channel=channel))

    def action_payload(self, action_id: str, value: str, *, message_ts: str, user: str = "U0ALICE",
                       channel: str = CHANNEL) -> dict[str, Any]:
        """A block_actions payload as Slack sends it when a button is clicked."""
        self._triggers += 1
        return {
            "type": "block_actions",
            "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM},
            "api_app_id": "A0EASYDEPLOY",
            "token": "gIkuvaNzQIHg97ATvDxqgjtO",
            "container": {"type": "message", "message_ts": message_ts, "channel_id": channel, "is_ephemeral": False},
            "trigger_id": f"{self._triggers}.13345224609.738474920.8088930838d88f008e0",
            "team": {"id": TEAM, "domain": "acme"},
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": channel, "name": "deploys"},
            "message": {"type": "message", "user": "U0BOT", "ts": message_ts, "bot_id": "B0BOT", "text": "deploy", "blocks": []},
            "state": {"values": {}},
            "response_url": self.slack.response_url(),
            "actions": [{"action_id": action_id, "block_id": "easydeploy_deploy_actions", "value": value,
                         "type": "button", "action_ts": f"{time.time():.6f}", "text": {"type": "plain_text", "text": "x"}}],
        }

    async def click(self, action_id: str, value: str, *, message_ts: str, user: str = "U0ALICE"):
        """Click a button on a message; return the HTTP response."""
        payload = self.action_payload(action_id, value, message_ts=message_ts, user=user)
        return await self.post({"payload": orjson.dumps(payload).decode()})

    async def reply(self, count: int = 1, timeout: float = 10.0) -> dict[str, Any]:
        """Wait for the `count`-th post to a response URL and return it."""
        assert await wait_until(lambda: len(self.slack.responses()) >= count, timeout=timeout), self.slack.responses()
        return self.slack.responses()[count - 1]

    async def ask(self, text: str, *, user: str = "U0ALICE", channel: str = CHANNEL) -> dict[str, Any]:
        """Send a command that answers through the response URL; return that answer."""
        before = len(self.slack.responses())
        resp = await self.command(text, user=user, channel=channel)
        assert resp.status == 200, await resp.text()
        return await self.reply(before + 1)

    async def settle(self) -> None:
        """Wait until the live messages are sent."""
        reporter = self.feature.reporter
        if reporter is not None:
            await reporter.idle()


@pytest.fixture
def slack_service(start_service, slack: SlackStandIn, github: GitHubStandIn, commit_lookups):
    """Start a service with the Slack feature, acme/web installed and enabled: `await slack_service()`."""

    async def _start(*, install: bool = True, extensions: list | None = None, **overrides: Any) -> SlackHarness:
        settings: dict[str, Any] = dict(
            slack_signing_secret=SIGNING_SECRET, slack_bot_token=slack.bot_token, slack_api_url=slack.api_url,
            github_client_id=github.client_id, github_client_secret=github.client_secret,
            public_url="https://easydeploy.example", start_workers=False,
        )
        settings.update(overrides)
        svc = await start_service(extensions=extensions or [SlackExtension(retry=FAST_SLACK)], **settings)
        if install:
            inst = github.add_installation(INSTALLATION, "acme", [REPO], account_type="Organization")
            await svc.services.tenants.save_installation(inst.as_json(), [REPO])
        return SlackHarness(svc, slack, github)

    return _start
