"""The Slack feature: its tables, the Bolt app on POST /slack/events, the OAuth callback and the reporter."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from bot.app import Extension
from bot.locks import LOCKS_SCHEMA, Locks
from bot.settings import Settings
from bot.slack.identity import CALLBACK_PATH, GitHubLinker, state_key
from bot.slack.reporter import SlackReporter, SlackRetry
from bot.slack.store import SLACK_SCHEMA, SlackStore
from bot.store import Store
from handlers.slack_deploy import SlackDeploy

if TYPE_CHECKING:
    from bot.app import Services

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
MAX_SLACK_BODY = 1024 * 1024  # commands and button payloads are a few KB
NOT_CONFIGURED = ("Slack is not configured on this Easy Deploy: set EASYDEPLOY_SLACK_SIGNING_SECRET and "
                  "EASYDEPLOY_SLACK_BOT_TOKEN.")


def build_bolt_app(settings: Settings, client: AsyncWebClient) -> AsyncApp | None:
    """A Bolt app that verifies signatures and acknowledges before working; None without Slack secrets."""
    if settings.slack_signing_secret is None or settings.slack_bot_token is None:
        return None
    return AsyncApp(
        signing_secret=settings.slack_signing_secret.get_secret_value(),
        client=client,  # carries the bot token (Bolt ignores `token=` when a client is given)
        # Bolt answers 401 to a bad signature or a timestamp more than five minutes off.
        request_verification_enabled=True,
        # ack() answers Slack at once; the listener's slow part runs after the answer left.
        process_before_response=False,
    )


class SlackEvents:
    """POST /slack/events: Bolt on our own aiohttp route (the two-function adapter)."""

    def __init__(self, bolt: AsyncApp | None, signing_secret: str | None = None) -> None:
        self.bolt = bolt
        self.verifier = SignatureVerifier(signing_secret) if signing_secret else None

    async def handle(self, request: web.Request) -> web.Response:
        """Verify, dispatch to the listeners, and answer with what they acknowledged."""
        if self.bolt is None or self.verifier is None:
            return web.json_response({"error": NOT_CONFIGURED}, status=503)
        if (request.content_length or 0) > MAX_SLACK_BODY:
            return web.json_response({"error": "request body too large"}, status=413)
        try:
            body = await request.text()
        except web.HTTPRequestEntityTooLarge:
            return web.json_response({"error": "request body too large"}, status=413)
        # Checked here as well as in Bolt: Bolt parses the body before it verifies, and a
        # malformed body from a stranger must get 401, not a parser's error.
        timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
        if not timestamp.isdigit() or not self.verifier.is_valid(body, timestamp, request.headers.get("X-Slack-Signature", "")):
            return web.json_response({"error": "invalid Slack signature or timestamp"}, status=401)
        try:
            bolt_request = await to_bolt_request(request)
        except ValueError:  # json.JSONDecodeError included: a `payload` that is not JSON
            return web.json_response({"error": "malformed Slack request"}, status=400)
        return await to_aiohttp_response(await self.bolt.async_dispatch(bolt_request))


@dataclass
class SlackFeature:
    """What the Slack extension built for one service."""

    store: SlackStore
    locks: Locks
    client: AsyncWebClient
    linker: GitHubLinker
    commands: SlackDeploy
    events: SlackEvents
    reporter: SlackReporter | None


class SlackExtension(Extension):
    """Slack ChatOps: `/deploy`, linked identities, locks and one live message per deploy."""

    def __init__(self, *, retry: SlackRetry | None = None) -> None:
        self.retry = retry

    def schema(self, store: Store) -> None:
        store.add_schema(SLACK_SCHEMA)
        store.add_schema(LOCKS_SCHEMA)

    async def setup(self, services: "Services") -> None:
        settings = services.settings
        token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
        client = AsyncWebClient(token=token, base_url=settings.slack_api_url, session=services.http)
        store, locks = SlackStore(services.store), Locks(services.store)
        linker = GitHubLinker(settings, store, services.http, state_key(settings))
        commands = SlackDeploy(services, store, locks, linker)
        bolt = build_bolt_app(settings, client)
        if bolt is not None:
            commands.register(bolt)
        else:
            log.warning("Slack disabled: %s", NOT_CONFIGURED)
        reporter = SlackReporter(store, client, settings.github_web_url, retry=self.retry) if token else None
        if reporter is not None:
            services.deploys.reporters.append(reporter)
        services.extras["slack"] = SlackFeature(store, locks, client, linker, commands, SlackEvents(bolt, settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None), reporter)
        services.extras["locks"] = locks

    def routes(self, app: web.Application, services: "Services") -> None:
        feature: SlackFeature = services.extras["slack"]
        app.router.add_post(EVENTS_PATH, feature.events.handle)
        app.router.add_get(CALLBACK_PATH, feature.linker.callback)

    async def close(self, services: "Services") -> None:
        feature: SlackFeature | None = services.extras.get("slack")
        if feature is None:
            return
        await feature.commands.drain()
        if feature.reporter is not None:
            await feature.reporter.close()
