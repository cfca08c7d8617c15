"""One live message per deploy: posted once per subscribed channel, updated in place, never failing a deploy."""

from __future__ import annotations

import logging
import time

from bot.deploys import DeployIntent, DeployState, Trigger
from bot.slack.reporter import SlackRetry, retry_wait
from bot.slack.store import Channel
from tests.slack.conftest import CHANNEL, INSTALLATION, SHA_MAIN, TEAM

OTHER_CHANNEL = "C0OPS"


def intent(**kw) -> DeployIntent:
    values = dict(installation_id=INSTALLATION, owner="acme", repo="web", sha=SHA_MAIN, ref="refs/heads/main",
                  default_branch="main", clone_url="https://github.example/acme/web.git", trigger=Trigger.PUSH, actor="alice")
    values.update(kw)
    return DeployIntent(**values)


async def subscribed(slack_service, *channels: str):
    h = await slack_service()
    for channel in channels or (CHANNEL,):
        await h.feature.store.subscribe(Channel(TEAM, channel), "acme", "web")
    return h


async def progress(h, deploy_id: str, **fields) -> None:
    await h.services.deploy_store.update(deploy_id, **fields)
    await h.services.deploys.report(await h.services.deploy_store.get(deploy_id))


def text_of(message) -> str:
    import json

    return json.dumps(message.blocks)


async def test_a_push_deploy_posts_once_per_channel_then_updates_in_place(slack_service, github):
    h = await subscribed(slack_service, CHANNEL, OTHER_CHANNEL)
    result = await h.services.deploys.request(intent(), key="delivery:1")
    await h.settle()
    deploy_id = result.deploy.id
    assert len(h.slack.requests("chat.postMessage")) == 2
    stages = {s: {"state": "pending", "message": ""} for s in ("identity", "source", "build", "release")}
    stages["identity"] = {"state": "succeeded", "message": "roles ready"}
    stages["build"] = {"state": "running", "message": "building image"}
    await progress(h, deploy_id, state=DeployState.RUNNING, stages=stages)
    await h.settle()
    stages["build"] = {"state": "succeeded", "message": "image pushed"}
    stages["release"] = {"state": "succeeded", "message": "rolled out"}
    await progress(h, deploy_id, state=DeployState.SUCCEEDED, stages=stages, finished_at=time.time(),
                   result={"app_url": "https://web.apps.example"})
    await h.settle()
    assert len(h.slack.requests("chat.postMessage")) == 2  # never posted twice
    for channel in (CHANNEL, OTHER_CHANNEL):
        [message] = h.slack.channel_messages(channel)
        assert message.updates >= 1
        assert message.text.startswith(":white_check_mark: Deployed acme/web@aaaaaaa to production")
        blocks = text_of(message)
        assert f"{github.url}/acme/web/commit/{SHA_MAIN}|`aaaaaaa`" in blocks
        assert "alice via a push" in blocks and "https://web.apps.example" in blocks and "image pushed" in blocks
        assert "easydeploy_rollback" in blocks and "easydeploy_redeploy" in blocks
    post = h.slack.requests("chat.postMessage")[0]
    assert post.headers["Authorization"] == f"Bearer {h.slack.bot_token}"
    update = h.slack.requests("chat.update")[-1]
    assert update.body["ts"] == h.slack.channel_messages(update.body["channel"])[0].ts


async def test_failure_shows_the_reason(slack_service):
    h = await subscribed(slack_service)
    result = await h.services.deploys.request(intent(), key="delivery:2")
    await progress(h, result.deploy.id, state=DeployState.FAILED,
                   result={"failure": {"summary": "CodeBuild failed: npm ERR! missing script: build"}})
    await h.settle()
    [message] = h.slack.channel_messages(CHANNEL)
    assert "Deploy failed" in message.text and "npm ERR! missing script: build" in text_of(message)


async def test_unsubscribed_repositories_post_nothing(slack_service):
    h = await slack_service()
    await h.services.deploys.request(intent(), key="delivery:3")
    await h.settle()
    assert h.slack.requests("chat.postMessage") == []


async def test_a_deploy_from_slack_posts_the_live_message(slack_service):
    h = await subscribed(slack_service)
    await h.link("U0ALICE", "octocat")
    h.github.set_permission("acme/web", "octocat", "write")
    reply = await h.ask("acme/web")
    assert "Follow it live" not in reply["text"]  # this channel is subscribed
    await h.settle()
    [message] = h.slack.channel_messages(CHANNEL)
    assert "octocat via /deploy" in text_of(message)


async def test_a_slack_outage_never_fails_the_deploy(slack_service, caplog):
    h = await subscribed(slack_service)
    h.slack.fail("chat.postMessage", status=500, times=1)
    h.slack.fail("chat.postMessage", retry_after=0, times=1)
    result = await h.services.deploys.request(intent(), key="delivery:4")
    await h.settle()
    assert [c.status for c in h.slack.requests("chat.postMessage")] == [500, 429, 200]
    assert len(h.slack.channel_messages(CHANNEL)) == 1

    # chat.update down for longer than the retries: dropped with a log line, the deploy goes on
    h.slack.fail("chat.update", error="ratelimited", times=3)
    with caplog.at_level(logging.WARNING, logger="bot.slack.reporter"):
        await progress(h, result.deploy.id, state=DeployState.RUNNING)
        await h.settle()
    assert len(h.slack.requests("chat.update")) == 3  # FAST_SLACK: three attempts
    assert any("dropped after 3 attempt(s)" in r.getMessage() and result.deploy.id in r.getMessage() for r in caplog.records)
    deploy = await h.services.deploy_store.get(result.deploy.id)
    assert deploy.state is DeployState.RUNNING

    # the next change updates the same message again
    await progress(h, result.deploy.id, state=DeployState.SUCCEEDED, result={"app_url": "https://web.apps.example"})
    await h.settle()
    [message] = h.slack.channel_messages(CHANNEL)
    assert message.text.startswith(":white_check_mark:")


async def test_a_channel_the_bot_is_not_in_is_dropped_not_retried(slack_service):
    h = await subscribed(slack_service, CHANNEL, OTHER_CHANNEL)
    h.slack.channels_without_bot.add(OTHER_CHANNEL)
    await h.services.deploys.request(intent(), key="delivery:5")
    await h.settle()
    assert [c.body["channel"] for c in h.slack.requests("chat.postMessage")] == [CHANNEL, OTHER_CHANNEL]
    assert len(h.slack.channel_messages(CHANNEL)) == 1


async def test_reporting_does_not_block_the_deploy(slack_service):
    h = await subscribed(slack_service)
    h.slack.fail("chat.postMessage", status=503, times=2)
    started = time.monotonic()
    await h.services.deploys.request(intent(), key="delivery:6")
    assert time.monotonic() - started < 0.5
    await h.settle()
    assert len(h.slack.channel_messages(CHANNEL)) == 1


async def test_builds_are_not_posted(slack_service):
    h = await subscribed(slack_service)
    await h.services.deploys.request(intent(kind="build", pr_number=3), key="delivery:7")
    await h.settle()
    assert h.slack.requests("chat.postMessage") == []


def test_retry_wait_decisions():
    policy = SlackRetry(attempts=4, backoff=1.0, max_wait=30)
    assert retry_wait(500, None, None, 1, policy) == 1.0
    assert retry_wait(None, "ClientConnectorError", None, 2, policy) == 2.0
    assert retry_wait(429, "ratelimited", "7", 1, policy) == 7.0
    assert retry_wait(200, "ratelimited", None, 3, policy) == 4.0
    assert retry_wait(429, "ratelimited", "120", 1, policy) is None  # longer than we wait: drop
    assert retry_wait(200, "not_in_channel", None, 1, policy) is None
    assert retry_wait(500, None, None, 4, policy) is None  # out of attempts
