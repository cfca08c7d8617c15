"""Linking a Slack user to a GitHub login through the GitHub App's user authorization.

The OAuth `state` is signed, expires after ten minutes, names the Slack team and
user it was issued to, and is accepted once. The user token GitHub hands back
is used for one `GET /user` and then dropped: nothing about it is stored.
"""

from __future__ import annotations

import base64
import html
import hashlib
import hmac
import logging
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import orjson
from aiohttp import web

from bot.settings import Settings
from bot.slack.store import SlackStore

log = logging.getLogger(__name__)

STATE_TTL = 600.0
CALLBACK_PATH = "/github/oauth/callback"
STATE_KEY_CONTEXT = b"easydeploy/github-oauth-state/v1"


class LinkError(Exception):
    """The link could not be made; the message is for the person in the browser."""


@dataclass(frozen=True)
class OAuthState:
    """What a valid state says: who asked, until when, and its one-time nonce."""

    team_id: str
    user_id: str
    expires_at: float
    nonce: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def state_key(settings: Settings) -> bytes:
    """The key that signs OAuth states: derived from the Slack signing secret, else made once in the data dir."""
    if settings.slack_signing_secret is not None:
        return hmac.new(settings.slack_signing_secret.get_secret_value().encode(), STATE_KEY_CONTEXT, hashlib.sha256).digest()
    path = Path(settings.data_dir) / "slack" / "oauth-state-key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(32))
    return path.read_bytes()


def make_state(key: bytes, team_id: str, user_id: str, *, now: float, ttl: float = STATE_TTL) -> str:
    """A signed, expiring state bound to a Slack team and user."""
    payload = orjson.dumps({"t": team_id, "u": user_id, "e": int(now + ttl), "n": secrets.token_urlsafe(12)})
    body = _b64(payload)
    return body + "." + _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())


def read_state(key: bytes, state: str, *, now: float) -> OAuthState | None:
    """The state's content if its signature is ours and it has not expired, else None."""
    body, dot, signature = state.partition(".")
    if not dot or not body or not signature:
        return None
    expected = _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(expected, signature):
        return None
    try:
        data = orjson.loads(_unb64(body))
        parsed = OAuthState(str(data["t"]), str(data["u"]), float(data["e"]), str(data["n"]))
    except (ValueError, KeyError, TypeError):
        return None
    return parsed if parsed.expires_at >= now else None


def authorize_url(settings: Settings, state: str) -> str:
    """GitHub's user authorization page for the App, coming back to our callback."""
    query = urlencode({
        "client_id": settings.github_client_id or "",
        "redirect_uri": settings.public_url.rstrip("/") + CALLBACK_PATH,
        "state": state,
    })
    return f"{settings.github_web_url.rstrip('/')}/login/oauth/authorize?{query}"


def linking_configured(settings: Settings) -> bool:
    """True when the GitHub App's client id and secret are set."""
    return bool(settings.github_client_id and settings.github_client_secret)


async def github_login_for_code(http: aiohttp.ClientSession, settings: Settings, code: str) -> str:
    """Exchange an authorization code for a user token, read the login, and drop the token."""
    assert settings.github_client_secret is not None
    async with http.post(
        settings.github_web_url.rstrip("/") + "/login/oauth/access_token",
        json={"client_id": settings.github_client_id, "client_secret": settings.github_client_secret.get_secret_value(),
              "code": code, "redirect_uri": settings.public_url.rstrip("/") + CALLBACK_PATH},
        headers={"Accept": "application/json"},
    ) as resp:
        data = await resp.json(content_type=None) if resp.status < 500 else {}
    # GitHub answers 200 with an `error` field when the code is wrong or used.
    token = data.get("access_token") if isinstance(data, dict) else None
    if not token:
        log.warning("GitHub refused the OAuth code: %s", data.get("error") if isinstance(data, dict) else resp.status)
        raise LinkError("GitHub did not accept the sign-in (the code is wrong or was already used). Run `/deploy link` again.")
    async with http.get(
        settings.github_api_url.rstrip("/") + "/user",
        headers={"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json"},
    ) as resp:
        user = await resp.json(content_type=None) if resp.status == 200 else {}
    login = user.get("login") if isinstance(user, dict) else None
    if not login:
        raise LinkError("GitHub did not say who you are. Run `/deploy link` again.")
    return str(login)


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Easy Deploy</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: system-ui, sans-serif; max-width: 36em; margin: 4em auto;">
<h1>{title}</h1><p>{body}</p></body></html>
"""


def html_page(title: str, body: str, status: int) -> web.Response:
    """A small HTML answer for the browser (text escaped)."""
    text = PAGE.format(title=html.escape(title), body=html.escape(body))
    return web.Response(text=text, status=status, content_type="text/html",
                        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


class GitHubLinker:
    """Issues sign-in links and handles GitHub's redirect back."""

    def __init__(self, settings: Settings, links: SlackStore, http: aiohttp.ClientSession, key: bytes,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.links = links
        self.http = http
        self.key = key
        self.clock = clock

    def sign_in_url(self, team_id: str, user_id: str) -> str:
        """The URL that links this Slack user once they sign in to GitHub."""
        return authorize_url(self.settings, make_state(self.key, team_id, user_id, now=self.clock()))

    async def callback(self, request: web.Request) -> web.Response:
        """GET /github/oauth/callback?code&state: check the state, learn the login, store the link."""
        if request.query.get("error"):
            return html_page("Not linked", "GitHub sign-in was cancelled. Run /deploy link in Slack to try again.", 400)
        state = read_state(self.key, request.query.get("state", ""), now=self.clock())
        code = request.query.get("code", "")
        if state is None:
            log.warning("OAuth callback refused: forged or expired state")
            return html_page("Link refused", "This sign-in link is invalid or has expired (links last 10 minutes). "
                             "Run /deploy link in Slack for a new one.", 400)
        if not code:
            return html_page("Not linked", "GitHub sent no authorization code. Run /deploy link in Slack again.", 400)
        if not linking_configured(self.settings):
            return html_page("Not linked", "Linking is not configured on this Easy Deploy "
                             "(EASYDEPLOY_GITHUB_CLIENT_ID and EASYDEPLOY_GITHUB_CLIENT_SECRET).", 503)
        if not await self.links.use_oauth_state(state.nonce, state.expires_at):
            log.warning("OAuth callback refused: state replayed for %s/%s", state.team_id, state.user_id)
            return html_page("Link refused", "This sign-in link was already used. Run /deploy link in Slack for a new one.", 400)
        try:
            login = await github_login_for_code(self.http, self.settings, code)
        except LinkError as exc:
            return html_page("Not linked", str(exc), 400)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("OAuth callback: GitHub unreachable: %s", exc)
            return html_page("Not linked", "GitHub could not be reached. Run /deploy link in Slack to try again.", 502)
        await self.links.link(state.team_id, state.user_id, login)
        log.info("Slack user %s/%s linked to GitHub %s", state.team_id, state.user_id, login)
        return html_page("Linked", f"Your Slack account is now linked to the GitHub account {login}. "
                         "You can close this tab and use /deploy.", 200)
