"""From a `/deploy` in Slack to a service on the emulator, with one Slack message following it."""

from __future__ import annotations

import json

from bot.deploy_job import PipelineExtension
from bot.pipeline.testing import FLASK_APP, commit_files
from bot.slack.extension import SlackExtension
from tests.slack.conftest import CHANNEL, FAST_SLACK
from tests.test_deploy_e2e import FAST_POLL


async def test_slash_command_deploys_through_the_pipeline_and_updates_one_message(slack_service, github, moto_endpoint, tmp_path):
    source = tmp_path / "upstream" / "acme" / "web"
    sha = commit_files(source, FLASK_APP)
    h = await slack_service(
        extensions=[PipelineExtension(poll=FAST_POLL, max_attempts=2), SlackExtension(retry=FAST_SLACK)],
        start_workers=True, aws_endpoint_url=moto_endpoint, repos_root=tmp_path / "repos",
    )
    # GitHub describes acme/web with a clone URL this machine can fetch, main at our commit.
    github.installations[77].repositories[0]["clone_url"] = f"file://{source}"
    github.add_commit("acme/web", sha, branch="main")
    await h.link("U0ALICE", "octocat")
    github.set_permission("acme/web", "octocat", "write")
    assert "acme/web" in (await h.ask("subscribe acme/web"))["text"]

    reply = await h.ask("acme/web")  # acknowledged at once; the answer comes through the response URL
    assert "requested by octocat" in reply["text"]
    [deploy] = await h.services.deploy_store.list_for_repo("acme", "web")
    await h.svc.idle(timeout=60)
    deploy = await h.services.deploy_store.get(deploy.id)
    assert deploy.state == "succeeded", deploy.result
    assert deploy.sha == sha and deploy.trigger == "slack" and deploy.actor == "octocat"
    await h.settle()
    [message] = h.slack.channel_messages(CHANNEL)
    text = json.dumps(message.blocks)
    assert deploy.result["app_url"] in text and sha[:7] in text
    assert len(h.slack.requests("chat.postMessage")) == 1 and message.updates >= 1
