"""Every `/deploy` command through signed HTTP requests, with the GitHub and Slack stand-ins."""

from __future__ import annotations

import time

import pytest

from bot.deploys import DeployState
from bot.slack.messages import REDEPLOY_ACTION, ROLLBACK_ACTION
from tests.slack.conftest import CHANNEL, INSTALLATION, REPO, SHA_FEATURE, SHA_MAIN, SHA_TAG, TEAM


async def linked(slack_service, *, permission: str = "write", login: str = "octocat", user: str = "U0ALICE", **kw):
    h = await slack_service(**kw)
    await h.link(user, login)
    h.github.set_permission("acme/web", login, permission)
    return h


async def deploys(h) -> list[dict]:
    return [dict(r) for r in await h.services.store.fetchall("SELECT * FROM deploys ORDER BY created_at")]


async def test_deploy_the_default_branch_to_production(slack_service, github):
    h = await linked(slack_service)
    reply = await h.ask("acme/web")
    assert reply["response_type"] == "in_channel"
    assert "acme/web`@`aaaaaaa` to *production* requested by octocat" in reply["text"]
    [d] = await deploys(h)
    assert (d["owner"], d["repo"], d["sha"], d["ref"], d["environment"]) == ("acme", "web", SHA_MAIN, "refs/heads/main", "production")
    assert (d["trigger"], d["actor"], d["installation_id"], d["default_branch"]) == ("slack", "octocat", INSTALLATION, "main")
    assert d["clone_url"] == REPO["clone_url"]  # as GitHub describes the repository
    assert d["key"].startswith(f"slack-cmd:{TEAM}:")
    assert await h.svc.count("SELECT COUNT(*) FROM jobs WHERE kind = 'deploy'") == 1
    # the permission was asked with the installation token
    [perm] = github.requests("GET", "/collaborators/octocat/permission")
    assert perm.auth == "installation" and perm.installation_id == INSTALLATION
    assert 'command="deploy",outcome="ok"} 1.0' in h.services.metrics.render().decode()


@pytest.mark.parametrize("text, sha, ref, env", [
    ("acme/web@feature/login to staging", SHA_FEATURE, "refs/heads/feature/login", "staging"),
    ("acme/web@v1.0", SHA_TAG, "refs/tags/v1.0", "production"),
    (f"acme/web@{SHA_TAG[:10]} in qa", SHA_TAG, SHA_TAG, "qa"),
    ("web@main", SHA_MAIN, "refs/heads/main", "production"),  # a bare name, unambiguous
])
async def test_deploy_a_branch_tag_or_sha(slack_service, text, sha, ref, env):
    h = await linked(slack_service)
    await h.ask(text)
    [d] = await deploys(h)
    assert (d["sha"], d["ref"], d["environment"]) == (sha, ref, env)


async def test_unknown_ref_is_refused(slack_service):
    h = await linked(slack_service)
    reply = await h.ask("acme/web@nope")
    assert "has no branch, tag or commit `nope`" in reply["text"]
    assert await deploys(h) == []


async def test_a_retried_command_lands_on_the_same_deploy(slack_service):
    h = await linked(slack_service)
    form = h.command_form("acme/web")
    await h.post(form)
    await h.reply(1)
    await h.post(dict(form, response_url=h.slack.response_url()))
    second = await h.reply(2)
    assert "was already requested" in second["text"]
    assert len(await deploys(h)) == 1


@pytest.mark.parametrize("permission", ["read", "triage", None])
async def test_deploy_needs_write_permission(slack_service, permission):
    h = await slack_service()
    await h.link("U0ALICE", "octocat")
    if permission:
        h.github.set_permission("acme/web", "octocat", permission)
    reply = await h.ask("acme/web")
    assert reply["response_type"] == "ephemeral"
    assert f"has {permission + ' access' if permission else 'no access'} to `acme/web`; this needs write" in reply["text"]
    assert await deploys(h) == []
    for cmd in ("rollback acme/web", "lock acme/web", "unlock acme/web"):
        assert "this needs write" in (await h.ask(cmd))["text"]


@pytest.mark.parametrize("permission", ["maintain", "admin"])
async def test_maintain_and_admin_may_deploy(slack_service, permission):
    h = await linked(slack_service, permission=permission)
    assert "requested by octocat" in (await h.ask("acme/web"))["text"]


async def test_status_and_history_need_read(slack_service):
    h = await slack_service()
    await h.link("U0ALICE", "octocat")
    assert "no access to `acme/web`; this needs read" in (await h.ask("status acme/web"))["text"]
    h.github.set_permission("acme/web", "octocat", "read")
    assert "Status of acme/web" in (await h.ask("status acme/web"))["text"]
    assert "has not been deployed yet" in (await h.ask("history acme/web"))["text"]


async def test_repository_not_installed_or_not_enabled_is_refused(slack_service):
    h = await linked(slack_service)
    assert "Easy Deploy is not installed on `acme/api`" in (await h.ask("acme/api"))["text"]
    await h.services.tenants.set_repos(INSTALLATION, [{"id": 501, "full_name": "acme/web"}], enabled=False)
    assert "`acme/web` is not enabled for Easy Deploy" in (await h.ask("acme/web"))["text"]
    assert "I know no repository named `web`" in (await h.ask("web"))["text"]


async def test_suspended_installation_is_refused(slack_service):
    h = await linked(slack_service)
    await h.services.tenants.set_flags(INSTALLATION, suspended=True)
    assert "suspended or removed" in (await h.ask("acme/web"))["text"]


async def test_a_bare_name_shared_by_two_installations_is_ambiguous_unless_only_one_is_visible(slack_service, github):
    h = await linked(slack_service)
    other = {"id": 777, "name": "web", "full_name": "other/web", "owner": {"login": "other"}, "default_branch": "main"}
    inst = github.add_installation(88, "other", [other])
    await h.services.tenants.save_installation(inst.as_json(), [other])
    # octocat can only see acme/web: the bare name is theirs
    assert "requested by octocat" in (await h.ask("web"))["text"]
    github.set_permission("other/web", "octocat", "read")
    text = (await h.ask("status web"))["text"]
    assert "ambiguous" in text and "`acme/web`" in text and "`other/web`" in text


async def test_github_outage_is_reported_not_crashed(slack_service, github):
    h = await linked(slack_service)
    github.fail("GET", r"/collaborators/", 502, times=10)
    reply = await h.ask("acme/web")
    assert "GitHub could not answer (502)" in reply["text"]
    assert 'command="deploy",outcome="error"} 1.0' in h.services.metrics.render().decode()


async def test_the_acknowledgement_does_not_wait_for_the_deploy(slack_service, github):
    h = await linked(slack_service)
    github.lookup_delay = 1.5  # GitHub is slow today
    started = time.monotonic()
    resp = await h.command("acme/web")
    acked = time.monotonic() - started
    assert resp.status == 200 and (await resp.text()) == ""
    assert acked < 1.0, acked
    assert await deploys(h) == []  # the ack left before the work was done
    reply = await h.reply(1, timeout=10)
    assert "requested by octocat" in reply["text"]
    assert len(await deploys(h)) == 1


# -- locks -------------------------------------------------------------------------------------------

async def test_lock_refuses_deploys_by_others_but_not_the_holder(slack_service):
    h = await linked(slack_service)
    await h.link("U0BOB", "bob")
    h.github.set_permission("acme/web", "bob", "write")
    reply = await h.ask("lock acme/web db migration <!channel>")
    assert reply["response_type"] == "in_channel"
    assert "*production* is locked by octocat (<@U0ALICE>)" in reply["text"]
    assert "db migration &lt;!channel&gt;" in reply["text"]
    lock = await h.feature.locks.get("acme", "web", "production")
    assert (lock.holder, lock.holder_slack_user, lock.reason) == ("octocat", "U0ALICE", "db migration <!channel>")

    refused = await h.ask("acme/web", user="U0BOB")
    assert "locked by octocat" in refused["text"] and "db migration" in refused["text"]
    assert "/deploy unlock acme/web" in refused["text"]
    assert "Already" in (await h.ask("lock acme/web mine now", user="U0BOB"))["text"]
    assert "locked by octocat" in (await h.ask("rollback acme/web", user="U0BOB"))["text"]
    # another environment is free
    assert "requested by bob" in (await h.ask("acme/web to staging", user="U0BOB"))["text"]
    # the holder deploys through their own lock
    assert "requested by octocat" in (await h.ask("acme/web"))["text"]
    assert [d["environment"] for d in await deploys(h)] == ["staging", "production"]
    status = (await h.ask("status acme/web", user="U0BOB"))["text"]
    assert "*production* is locked by octocat" in status


async def test_unlock_starts_the_newest_held_deploy(slack_service):
    h = await linked(slack_service)
    await h.ask("lock acme/web to staging freeze")
    # pushes arrived meanwhile and were held by the deploy job
    from bot.deploys import DeployIntent

    svc = h.services.deploys
    for i, sha in enumerate(("1" * 40, "2" * 40)):
        intent = DeployIntent(INSTALLATION, "acme", "web", sha, "refs/heads/main", "main", "x", environment="staging")
        await svc.request(intent, key=f"push-{i}", state=DeployState.HELD)
    reply = await h.ask("unlock acme/web to staging")
    assert ":unlock: *staging* of `acme/web` is unlocked by octocat." in reply["text"]
    assert "Starting the newest held deploy" in reply["text"] and "2222222" in reply["text"]
    states = {d["sha"][:1]: d["state"] for d in await deploys(h)}
    assert states == {"1": "cancelled", "2": "queued"}
    assert await h.feature.locks.get("acme", "web", "staging") is None
    assert "is not locked" in (await h.ask("unlock acme/web to staging"))["text"]


async def test_anyone_with_write_may_unlock_and_is_named(slack_service):
    h = await linked(slack_service)
    await h.link("U0BOB", "bob")
    h.github.set_permission("acme/web", "bob", "maintain")
    await h.ask("lock acme/web")
    reply = await h.ask("unlock acme/web", user="U0BOB")
    assert "unlocked by bob (it was held by octocat)" in reply["text"]


# -- status, history, subscriptions -----------------------------------------------------------------

async def finish(h, deploy_id: str, state: DeployState, **result) -> None:
    await h.services.deploy_store.update(deploy_id, state=state, result=result, finished_at=time.time())


async def test_history_lists_the_last_ten(slack_service):
    h = await linked(slack_service)
    for _ in range(12):
        await h.ask("acme/web")
    rows = await deploys(h)
    await finish(h, rows[-1]["id"], DeployState.SUCCEEDED, app_url="https://web.apps.example", task_definition_arn="td:2")
    text = (await h.ask("history acme/web"))["text"]
    lines = text.splitlines()
    assert lines[0] == "*Last 10 deploys of acme/web*" and len(lines) == 11
    assert "succeeded" in lines[1] and "https://web.apps.example" in lines[1] and "octocat via /deploy" in lines[1]
    assert "`aaaaaaa`" in lines[1] and "<!date^" in lines[1]


async def test_subscribe_and_unsubscribe(slack_service):
    h = await linked(slack_service, permission="read")
    reply = await h.ask("subscribe acme/web")
    assert reply["response_type"] == "in_channel" and "now gets one live message per deploy" in reply["text"]
    assert "already gets" in (await h.ask("subscribe acme/web"))["text"]
    assert [c.channel_id for c in await h.feature.store.subscribers("acme", "web")] == [CHANNEL]
    assert "no longer gets" in (await h.ask("unsubscribe acme/web"))["text"]
    assert "was not subscribed" in (await h.ask("unsubscribe acme/web"))["text"]


# -- rollback ---------------------------------------------------------------------------------------

async def test_rollback_with_nothing_to_go_back_to(slack_service):
    h = await linked(slack_service)
    assert "There is no earlier successful deploy of `acme/web` in *production*" in (await h.ask("rollback acme/web"))["text"]


async def test_rollback_to_the_previous_success_and_to_a_sha(slack_service):
    h = await linked(slack_service)
    await h.ask("acme/web@v1.0")
    await h.ask("acme/web")
    first, second = await deploys(h)
    await finish(h, first["id"], DeployState.SUCCEEDED, task_definition_arn="td:1")
    await finish(h, second["id"], DeployState.SUCCEEDED, task_definition_arn="td:2")
    reply = await h.ask("rollback acme/web")
    assert "Rollback `acme/web`@`bbbbbbb` to *production* requested by octocat" in reply["text"]
    rollback = (await deploys(h))[-1]
    assert (rollback["kind"], rollback["sha"], rollback["rollback_task_definition"], rollback["trigger"]) == (
        "rollback", SHA_TAG, "td:1", "slack")
    reply = await h.ask(f"rollback acme/web to {SHA_MAIN[:8]}")
    assert "Rollback `acme/web`@`aaaaaaa`" in reply["text"]
    assert (await deploys(h))[-1]["rollback_task_definition"] == "td:2"
    assert "no successful deploy of `0123456`" in (await h.ask("rollback acme/web to 0123456"))["text"]


# -- buttons ----------------------------------------------------------------------------------------

async def test_buttons_redeploy_and_roll_back_with_the_same_rules(slack_service):
    h = await linked(slack_service)
    await h.ask("acme/web@v1.0")
    await h.ask("acme/web")
    first, second = await deploys(h)
    await finish(h, first["id"], DeployState.SUCCEEDED, task_definition_arn="td:1")
    await finish(h, second["id"], DeployState.SUCCEEDED, task_definition_arn="td:2")
    before = len(h.slack.responses())

    resp = await h.click(REDEPLOY_ACTION, second["id"], message_ts="1700000000.000100")
    assert resp.status == 200 and (await resp.text()) == ""
    reply = await h.reply(before + 1)
    assert reply["replace_original"] is False and "Deploy `acme/web`@`aaaaaaa`" in reply["text"]
    redeploy = (await deploys(h))[-1]
    assert (redeploy["trigger"], redeploy["actor"], redeploy["sha"]) == ("button", "octocat", SHA_MAIN)
    assert redeploy["key"] == f"slack-action:{TEAM}:1700000000.000100:{REDEPLOY_ACTION}"
    # a double click lands on the same deploy
    await h.click(REDEPLOY_ACTION, second["id"], message_ts="1700000000.000100")
    assert "already requested" in (await h.reply(before + 2))["text"]

    await h.click(ROLLBACK_ACTION, second["id"], message_ts="1700000000.000100")
    assert "Rollback `acme/web`@`bbbbbbb`" in (await h.reply(before + 3))["text"]
    assert (await deploys(h))[-1]["kind"] == "rollback"
    assert 'command="button_redeploy",outcome="ok"} 2.0' in h.services.metrics.render().decode()


async def test_buttons_refuse_unlinked_unauthorised_and_locked_out_users(slack_service):
    h = await linked(slack_service)
    await h.ask("acme/web")
    [d] = await deploys(h)
    await h.click(REDEPLOY_ACTION, d["id"], message_ts="1.1", user="U0STRANGER")
    assert "/deploy link" in (await h.reply(2))["text"]
    await h.link("U0READER", "reader")
    h.github.set_permission("acme/web", "reader", "read")
    await h.click(ROLLBACK_ACTION, d["id"], message_ts="1.1", user="U0READER")
    assert "this needs write" in (await h.reply(3))["text"]
    await h.link("U0BOB", "bob")
    h.github.set_permission("acme/web", "bob", "write")
    await h.ask("lock acme/web")
    await h.click(REDEPLOY_ACTION, d["id"], message_ts="1.1", user="U0BOB")
    assert "locked by octocat" in (await h.reply(5))["text"]
    await h.click(REDEPLOY_ACTION, "d-gone", message_ts="1.1")
    assert "not known" in (await h.reply(6))["text"]
    assert len(await deploys(h)) == 1
