"""A local stand-in for the Slack Web API and response URLs, for the sandbox and the tests.

It answers the way Slack does: HTTP 200 with `{"ok": false, "error": ...}` for
API errors, 429 with `Retry-After` when rate limited, and it checks the bot
token. Every call and every post to a response URL is recorded, messages are
kept so `chat.update` edits them, and failures can be queued for any method.
"""

from __future__ import annotations

import itertools
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from bot.sandbox import serve_local


@dataclass
class SlackCall:
    """One Web API call or response-URL post as the stand-in saw it."""

    method: str  # "chat.postMessage", … or "response_url"
    body: dict[str, Any]
    headers: dict[str, str]
    status: int = 200
    ok: bool = True


@dataclass
class SlackFault:
    method: str
    status: int
    error: str | None
    retry_after: int | None
    times: int


@dataclass
class PostedMessage:
    """A message as it stands now in a channel."""

    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)
    updates: int = 0


class SlackStandIn:
    """The fake Slack; `await slack.start()`, then point the Web API client at `slack.api_url`."""

    def __init__(self, *, bot_token: str = "xoxb-standin-token", team_id: str = "T0STANDIN", bot_user_id: str = "U0BOT") -> None:
        self.bot_token = bot_token
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.calls: list[SlackCall] = []
        self.messages: dict[tuple[str, str], PostedMessage] = {}
        self.channels_without_bot: set[str] = set()
        self._faults: list[SlackFault] = []
        self._ts = itertools.count(1)
        self._responses = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.url = ""

    @property
    def api_url(self) -> str:
        """The Web API base URL (what `EASYDEPLOY_SLACK_API_URL` is set to)."""
        return self.url + "/api/"

    # -- set-up and inspection ------------------------------------------------

    def response_url(self) -> str:
        """A fresh response URL, as Slack puts in a command or an action payload."""
        return f"{self.url}/commands/{self.team_id}/{next(self._responses)}/{secrets.token_hex(8)}"

    def fail(self, method: str, *, status: int = 200, error: str | None = None, retry_after: int | None = None,
             times: int = 1) -> None:
        """Answer the next `times` calls of `method` with an HTTP status, an API error, or a rate limit."""
        self._faults.append(SlackFault(method, status, error, retry_after, times))

    def requests(self, method: str | None = None) -> list[SlackCall]:
        """Recorded calls of one method (every call when None)."""
        return [c for c in self.calls if method is None or c.method == method]

    def responses(self) -> list[dict[str, Any]]:
        """The bodies posted to response URLs, in order."""
        return [c.body for c in self.requests("response_url")]

    def channel_messages(self, channel: str) -> list[PostedMessage]:
        """The messages the bot posted in a channel, oldest first."""
        return [m for (ch, _), m in self.messages.items() if ch == channel]

    # -- server ---------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on a loopback port; return the base URL."""
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        app.router.add_post("/commands/{tail:.*}", self._response_url)
        self._runner, self.url = await serve_local(app, host, port)
        return self.url

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _read(self, request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        if not raw:
            return {}
        if "json" in request.headers.get("Content-Type", ""):
            return orjson.loads(raw)
        form = dict(await request.post())
        # Form-encoded calls carry blocks as a JSON string.
        if isinstance(form.get("blocks"), str):
            form["blocks"] = orjson.loads(form["blocks"])
        return form

    def _fault(self, method: str, call: SlackCall) -> web.Response | None:
        for fault in self._faults:
            if fault.times > 0 and fault.method == method:
                fault.times -= 1
                call.ok = False
                if fault.retry_after is not None:
                    call.status = 429
                    return web.json_response({"ok": False, "error": "ratelimited"}, status=429,
                                             headers={"Retry-After": str(fault.retry_after)})
                call.status = fault.status
                if fault.status >= 500:
                    return web.Response(status=fault.status, text="upstream connect error")
                return web.json_response({"ok": False, "error": fault.error or "fatal_error"}, status=fault.status)
        return None

    async def _response_url(self, request: web.Request) -> web.Response:
        call = SlackCall("response_url", await self._read(request), dict(request.headers))
        call.body["_path"] = request.path
        self.calls.append(call)
        if err := self._fault("response_url", call):
            return err
        return web.Response(text="ok")

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        body = await self._read(request)
        call = SlackCall(method, body, dict(request.headers))
        self.calls.append(call)
        if err := self._fault(method, call):
            return err
        token = request.headers.get("Authorization", "").removeprefix("Bearer ") or str(body.get("token", ""))
        if token != self.bot_token:
            call.ok = False
            return web.json_response({"ok": False, "error": "invalid_auth" if token else "not_authed"})
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            call.ok = False
            return web.json_response({"ok": False, "error": "unknown_method"})
        answer = handler(body)
        call.ok = bool(answer.get("ok"))
        return web.json_response(answer)

    # -- methods --------------------------------------------------------------

    def _auth_test(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": "https://standin.slack.com/", "team": "Stand-in", "user": "easydeploy",
                "team_id": self.team_id, "user_id": self.bot_user_id, "bot_id": "B0BOT", "is_enterprise_install": False}

    def _chat_postMessage(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = str(body.get("channel") or "")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if channel in self.channels_without_bot:
            return {"ok": False, "error": "not_in_channel"}
        if not body.get("text") and not body.get("blocks"):
            return {"ok": False, "error": "no_text"}
        ts = f"{int(time.time())}.{next(self._ts):06d}"
        msg = PostedMessage(channel, ts, str(body.get("text", "")), list(body.get("blocks") or []))
        self.messages[(channel, ts)] = msg
        return {"ok": True, "channel": channel, "ts": ts,
                "message": {"type": "message", "user": self.bot_user_id, "text": msg.text, "ts": ts, "blocks": msg.blocks}}

    def _chat_update(self, body: dict[str, Any]) -> dict[str, Any]:
        key = (str(body.get("channel")), str(body.get("ts")))
        msg = self.messages.get(key)
        if msg is None:
            return {"ok": False, "error": "message_not_found"}
        msg.text = str(body.get("text", msg.text))
        msg.blocks = list(body.get("blocks") or msg.blocks)
        msg.updates += 1
        return {"ok": True, "channel": msg.channel, "ts": msg.ts, "text": msg.text}

    def _chat_postEphemeral(self, body: dict[str, Any]) -> dict[str, Any]:
        if not body.get("channel") or not body.get("user"):
            return {"ok": False, "error": "channel_not_found" if not body.get("channel") else "user_not_in_channel"}
        return {"ok": True, "message_ts": f"{int(time.time())}.{next(self._ts):06d}"}
