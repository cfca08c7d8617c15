"""POST /slack/events through HTTP: signatures, the acknowledgement, help, errors and linking."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlparse

from tests.slack.conftest import SIGNING_SECRET, TEAM, signed_headers


async def test_help_is_answered_in_the_acknowledgement(slack_service):
    h = await slack_service()
    resp = await h.command("help")
    assert resp.status == 200
    body = await resp.json()
    assert "/deploy owner/repo[@ref] [to <environment>]" in body["text"]
    assert h.slack.responses() == []
    assert 'easydeploy_slack_commands_total{command="help",outcome="ok"} 1.0' in h.services.metrics.render().decode()


async def test_a_parse_error_is_answered_with_usage(slack_service):
    h = await slack_service()
    resp = await h.command("rollback acme/web to main")
    body = await resp.json()
    assert "not a commit SHA" in body["text"] and "Usage: `/deploy rollback owner/repo" in body["text"]
    assert 'command="invalid",outcome="invalid"} 1.0' in h.services.metrics.render().decode()


async def test_bad_signature_is_401(slack_service):
    h = await slack_service()
    form = h.command_form("help")
    from urllib.parse import urlencode

    body = urlencode(form)
    resp = await h.client.post("/slack/events", data=body.encode(), headers=signed_headers(body, secret="not-the-secret"))
    assert resp.status == 401
    headers = signed_headers(body)
    resp = await h.client.post("/slack/events", data=(body + "&text=status").encode(), headers=headers)
    assert resp.status == 401
    headers.pop("X-Slack-Signature")
    resp = await h.client.post("/slack/events", data=body.encode(), headers=headers)
    assert resp.status == 401


async def test_a_stale_timestamp_is_401_even_when_signed(slack_service):
    h = await slack_service()
    old = int(time.time()) - 6 * 60
    resp = await h.post(h.command_form("help"), timestamp=old)
    assert resp.status == 401
    recent = int(time.time()) - 4 * 60
    resp = await h.post(h.command_form("help"), timestamp=recent)
    assert resp.status == 200


async def test_without_slack_secrets_the_endpoint_is_503_and_the_service_starts(start_service, slack):
    from bot.slack.extension import SlackExtension

    svc = await start_service(extensions=[SlackExtension()], start_workers=False)
    resp = await svc.client.post("/slack/events", data=b"command=%2Fdeploy", headers=signed_headers("command=%2Fdeploy"))
    assert resp.status == 503
    assert "EASYDEPLOY_SLACK_SIGNING_SECRET" in (await resp.json())["error"]
    assert svc.services.deploys.reporters == []


async def test_unlinked_user_is_told_how_to_link(slack_service):
    h = await slack_service()
    reply = await h.ask("acme/web")
    assert reply["response_type"] == "ephemeral"
    assert "/deploy link" in reply["text"]
    assert await h.svc.count("SELECT COUNT(*) FROM deploys") == 0
    assert 'command="deploy",outcome="refused"} 1.0' in h.services.metrics.render().decode()


async def sign_in_link(h, user: str = "U0ALICE") -> tuple[str, dict[str, list[str]]]:
    resp = await h.command("link", user=user)
    text = (await resp.json())["text"]
    url = text[text.index("<") + 1:text.index("|")]
    return url, parse_qs(urlparse(url).query)


async def test_link_answers_privately_with_a_github_sign_in_url(slack_service, github):
    h = await slack_service()
    url, query = await sign_in_link(h)
    assert url.startswith(f"{github.url}/login/oauth/authorize?")
    assert query["client_id"] == [github.client_id]
    assert query["redirect_uri"] == ["https://easydeploy.example/github/oauth/callback"]
    assert query["state"][0]
    assert h.slack.responses() == []  # answered in the acknowledgement: only the caller sees it


async def test_oauth_callback_links_the_slack_user_and_keeps_no_token(slack_service, github):
    h = await slack_service()
    _, query = await sign_in_link(h)
    github.add_oauth_user("code-123", "octocat")
    resp = await h.client.get("/github/oauth/callback", params={"code": "code-123", "state": query["state"][0]})
    assert resp.status == 200
    assert "octocat" in await resp.text()
    assert await h.feature.store.linked_login(TEAM, "U0ALICE") == "octocat"
    exchange = github.requests("POST", "/login/oauth/access_token")[0]
    assert exchange.headers["Accept"] == "application/json" and exchange.json["code"] == "code-123"
    user_call = github.requests("GET", "^/user$")[0]
    assert user_call.auth == "user"
    dump = "\n".join(str(tuple(r)) for r in await h.services.store.fetchall("SELECT * FROM slack_links"))
    assert "ghu_" not in dump
    # the same state cannot be used twice
    github.add_oauth_user("code-456", "mallory")
    resp = await h.client.get("/github/oauth/callback", params={"code": "code-456", "state": query["state"][0]})
    assert resp.status == 400
    assert await h.feature.store.linked_login(TEAM, "U0ALICE") == "octocat"


async def test_a_forged_state_is_refused_and_nothing_is_stored(slack_service, github):
    h = await slack_service()
    _, query = await sign_in_link(h)
    github.add_oauth_user("code-1", "mallory")
    body, _, sig = query["state"][0].partition(".")
    import base64

    import orjson

    data = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    data["u"] = "U0VICTIM"
    forged = base64.urlsafe_b64encode(orjson.dumps(data)).rstrip(b"=").decode() + "." + sig
    for state in (forged, "", "garbage", query["state"][0] + "x"):
        resp = await h.client.get("/github/oauth/callback", params={"code": "code-1", "state": state})
        assert resp.status == 400, state
        assert "invalid or has expired" in await resp.text()
    assert await h.services.store.fetchall("SELECT * FROM slack_links") == []
    assert github.requests("POST", "/login/oauth/access_token") == []


async def test_an_expired_state_is_refused(slack_service, github):
    from bot.slack.identity import make_state, state_key

    h = await slack_service()
    github.add_oauth_user("code-1", "octocat")
    state = make_state(state_key(h.services.settings), TEAM, "U0ALICE", now=time.time() - 601)
    resp = await h.client.get("/github/oauth/callback", params={"code": "code-1", "state": state})
    assert resp.status == 400
    assert await h.feature.store.linked_login(TEAM, "U0ALICE") is None


async def test_a_bad_code_is_refused(slack_service, github):
    h = await slack_service()
    _, query = await sign_in_link(h)
    resp = await h.client.get("/github/oauth/callback", params={"code": "wrong", "state": query["state"][0]})
    assert resp.status == 400
    assert "did not accept" in await resp.text()
    assert await h.feature.store.linked_login(TEAM, "U0ALICE") is None


async def test_unlink(slack_service):
    h = await slack_service()
    await h.link("U0ALICE", "octocat")
    assert "Unlinked from GitHub `octocat`" in (await h.ask("unlink"))["text"]
    assert await h.feature.store.linked_login(TEAM, "U0ALICE") is None
    assert "was not linked" in (await h.ask("unlink"))["text"]


async def test_link_without_client_credentials_says_what_to_set(slack_service):
    h = await slack_service(github_client_id=None, github_client_secret=None)
    text = (await (await h.command("link")).json())["text"]
    assert "EASYDEPLOY_GITHUB_CLIENT_ID" in text


def test_signature_helper_matches_slacks_documented_example():
    # https://api.slack.com/authentication/verifying-requests-from-slack
    body = ("token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
            "&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
            "&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
            "&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c")
    from tests.slack.conftest import slack_signature

    assert slack_signature(body, 1531420618, "8f742231b10e8888abcd99yyyzzz85a5") == \
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    assert SIGNING_SECRET == "8f742231b10e8888abcd99yyyzzz85a5"


async def test_malformed_requests_get_clear_errors_and_change_nothing(slack_service):
    from tests.slack.conftest import signed_headers

    h = await slack_service()
    cases = {
        "not a form": "%%%",
        "payload is not JSON": "payload=%7Bnot-json",
        "unknown interaction": "payload=" + '{"type": "view_submission"}',
        "no command": "team_id=T0001&user_id=U0ALICE",
    }
    for name, body in cases.items():
        resp = await h.client.post("/slack/events", data=body.encode(), headers=signed_headers(body))
        assert resp.status < 500, (name, resp.status, await resp.text())
        if name == "payload is not JSON":
            assert resp.status == 400 and "malformed" in (await resp.json())["error"]
    assert await h.svc.count("SELECT COUNT(*) FROM deploys") == 0
    assert h.slack.requests("chat.postMessage") == []


async def test_a_malformed_body_from_a_stranger_is_401_not_a_parse_error(slack_service):
    h = await slack_service()
    for headers in ({}, {"X-Slack-Request-Timestamp": "yesterday", "X-Slack-Signature": "v0=00"}):
        resp = await h.client.post("/slack/events", data=b"payload=%7Bnot-json",
                                   headers={"Content-Type": "application/x-www-form-urlencoded", **headers})
        assert resp.status == 401


async def test_an_oversized_body_is_refused(slack_service):
    from tests.slack.conftest import signed_headers

    h = await slack_service(max_webhook_bytes=10_000)
    body = "text=" + "x" * 20_000
    resp = await h.client.post("/slack/events", data=body.encode(), headers=signed_headers(body))
    assert resp.status == 413
