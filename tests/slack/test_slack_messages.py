"""Slack blocks built from deploy records and locks (pure functions, no Slack)."""

from __future__ import annotations

import json

from bot.deploys import Deploy, DeployState
from bot.locks import Lock, lock_holds_deploy
from bot.slack.messages import (
    REDEPLOY_ACTION,
    ROLLBACK_ACTION,
    deploy_message,
    escape,
    history_message,
    lock_text,
    status_message,
)

WEB = "https://github.example"
SHA = "0123456789abcdef0123456789abcdef01234567"


def make_deploy(**overrides) -> Deploy:
    values = dict(
        id="d-abc", key="k", installation_id=2, owner="acme", repo="web", sha=SHA, ref="refs/heads/main",
        default_branch="main", clone_url=f"{WEB}/acme/web.git", environment="production", kind="deploy",
        state=DeployState.RUNNING, trigger="slack", actor="octocat", untrusted=False, pr_number=None,
        rollback_task_definition=None, superseded_by=None, created_at=1_700_000_000.0, updated_at=1_700_000_030.0,
    )
    values.update(overrides)
    return Deploy(**values)


def all_text(message: dict) -> str:
    return json.dumps(message)


def test_live_message_names_repo_commit_trigger_stages_and_has_buttons():
    deploy = make_deploy(stages={
        "identity": {"state": "succeeded", "message": "roles ready"},
        "source": {"state": "succeeded", "message": "cloned"},
        "build": {"state": "running", "message": "building image"},
        "release": {"state": "pending", "message": ""},
    })
    msg = deploy_message(deploy, WEB)
    text = all_text(msg)
    assert msg["text"].startswith(":arrows_counterclockwise: Deploying acme/web@0123456 to production")
    assert f"<{WEB}/acme/web/commit/{SHA}|`0123456`>" in text
    assert "octocat via /deploy" in text
    assert "`main`" in text
    stages = msg["blocks"][2]["text"]["text"].splitlines()
    assert stages == [":white_check_mark: *identity* — roles ready", ":white_check_mark: *source* — cloned",
                      ":arrows_counterclockwise: *build* — building image", ":white_circle: *release*"]
    buttons = msg["blocks"][-1]["elements"]
    assert [(b["action_id"], b["value"], b["text"]["text"]) for b in buttons] == [
        (ROLLBACK_ACTION, "d-abc", "Roll back"), (REDEPLOY_ACTION, "d-abc", "Redeploy")]
    assert "confirm" in buttons[0]


def test_success_shows_the_url_and_duration():
    deploy = make_deploy(state=DeployState.SUCCEEDED, finished_at=1_700_000_065.0, result={"app_url": "https://web.apps.example"})
    msg = deploy_message(deploy, WEB)
    assert msg["text"].startswith(":white_check_mark: Deployed")
    assert "https://web.apps.example" in all_text(msg)
    assert "(1m 05s)" in all_text(msg)


def test_failure_shows_the_reason_escaped():
    deploy = make_deploy(state=DeployState.FAILED, trigger="push", actor="alice",
                         result={"failure": {"summary": "Build failed: <!channel> npm ERR", "what_to_do": "Fix the build"}})
    text = all_text(deploy_message(deploy, WEB))
    assert "Deploy failed" in text and "alice via a push" in text
    assert "&lt;!channel&gt; npm ERR" in text and "<!channel>" not in text
    assert "Fix the build" in text


def test_rollback_and_cancelled_wording():
    assert deploy_message(make_deploy(kind="rollback", state=DeployState.SUCCEEDED), WEB)["text"].startswith(":white_check_mark: Rolled back")
    cancelled = deploy_message(make_deploy(state=DeployState.CANCELLED, superseded_by="d-new"), WEB)
    assert "Superseded by the newer deploy `d-new`" in all_text(cancelled)


def test_no_actor_says_what_triggered_it():
    assert "via" not in all_text(deploy_message(make_deploy(actor=None, trigger="push"), WEB))


def test_section_text_stays_under_slacks_limit():
    deploy = make_deploy(state=DeployState.FAILED, result={"failure": {"summary": "x" * 10_000}})
    for block in deploy_message(deploy, WEB)["blocks"]:
        if block["type"] == "section" and "text" in block:
            assert len(block["text"]["text"]) <= 3000


def test_history_lists_sha_who_when_result_url():
    deploys = [
        make_deploy(id="d-2", state=DeployState.SUCCEEDED, result={"app_url": "https://web.apps.example"}),
        make_deploy(id="d-1", state=DeployState.FAILED, actor="bob", trigger="push", result={"failure": {"summary": "tests failed"}}),
    ]
    msg = history_message("acme/web", deploys, WEB)
    lines = msg["text"].splitlines()
    assert lines[0] == "*Last 2 deploys of acme/web*"
    assert "succeeded" in lines[1] and "`0123456`" in lines[1] and "octocat via /deploy" in lines[1]
    assert "<!date^1700000000^" in lines[1] and "https://web.apps.example" in lines[1]
    assert "failed" in lines[2] and "bob via a push" in lines[2] and "tests failed" in lines[2]
    assert history_message("acme/web", [], WEB)["text"] == "acme/web has not been deployed yet."


def test_status_shows_live_and_latest_per_environment_and_locks():
    deploys = [
        make_deploy(id="d-3", state=DeployState.RUNNING, sha="f" * 40),
        make_deploy(id="d-2", state=DeployState.SUCCEEDED, result={"app_url": "https://web.apps.example"}, finished_at=1_700_000_100.0),
        make_deploy(id="d-1", environment="staging", state=DeployState.FAILED),
    ]
    lock = Lock("acme", "web", "production", "octocat", "U123", "release <freeze>", 1_700_000_000.0)
    text = status_message("acme/web", deploys, [lock], WEB)["text"]
    assert "*production*: running" in text and "https://web.apps.example" in text and "latest: :arrows_counterclockwise: running" in text
    assert "*staging*: nothing live yet" in text
    assert "locked by octocat (<@U123>)" in text and "release &lt;freeze&gt;" in text


def test_lock_text_without_reason():
    assert "(no reason given)" in lock_text(Lock("a", "b", "production", "x", None, "", 1.0))


def test_escape():
    assert escape("a & <b>") == "a &amp; &lt;b&gt;"


def test_lock_holds_every_deploy_but_the_holders_own_from_slack():
    lock = Lock("acme", "web", "production", "Octocat", "U1", "freeze", 1.0)
    assert not lock_holds_deploy(None, "push", "alice")
    assert lock_holds_deploy(lock, "push", "octocat")  # pushes wait, even the holder's
    assert lock_holds_deploy(lock, "slack", "alice")
    assert not lock_holds_deploy(lock, "slack", "octocat")
    assert not lock_holds_deploy(lock, "button", "OCTOCAT")
