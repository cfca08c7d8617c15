"""The pull request and check run / check suite handlers, through the webhook endpoint."""

from __future__ import annotations

import copy

from bot.deploys import DeployState, Trigger
from bot.reporting.gates import GateDecision, checks_gate
from tests.conftest import APP_ID, load_webhook
from tests.reporting.conftest import INSTALLATION, OWNER, REPO, SHA_A, SHA_B, push_payload, stages_done

OTHER_APP = 29310


def pr_payload(action: str, sha: str = SHA_A, *, number: int = 7) -> dict:
    """GitHub's example pull_request event of `action`, on the Hello-World repo with installation 1."""
    name = {"opened": "13.opened.json", "synchronize": "22.synchronize.json", "reopened": "18.reopened.json",
            "closed": "03.closed.json"}[action]
    payload = copy.deepcopy(load_webhook("pull_request", name))
    payload["number"] = payload["pull_request"]["number"] = number
    payload["pull_request"]["head"]["sha"] = sha
    payload["installation"] = {"id": INSTALLATION}
    return payload


def check_run_payload(action: str, deploy, *, app_id: int = APP_ID, run_id: int | None = None, identifier: str | None = None) -> dict:
    """GitHub's example check_run event, about the check run of `deploy`."""
    name = {"rerequested": "07.rerequested.json", "requested_action": "06.requested_action.json"}[action]
    payload = copy.deepcopy(load_webhook("check_run", name))
    repo = push_payload(SHA_A)["repository"]
    payload["repository"], payload["installation"] = repo, {"id": INSTALLATION}
    run = payload["check_run"]
    run["id"] = run_id or deploy.reporting["github"]["check_run_id"]
    run["app"]["id"], run["external_id"], run["head_sha"], run["name"] = app_id, deploy.id, deploy.sha, "Easy Deploy"
    if identifier:
        payload["requested_action"] = {"identifier": identifier}
    return payload


def check_suite_payload(action: str, sha: str, *, app_id: int) -> dict:
    name = {"completed": "00.completed.json", "rerequested": "07.rerequested.json"}[action]
    payload = copy.deepcopy(load_webhook("check_suite", name))
    payload["repository"], payload["installation"] = push_payload(SHA_A)["repository"], {"id": INSTALLATION}
    payload["check_suite"]["head_sha"], payload["check_suite"]["app"]["id"] = sha, app_id
    return payload


async def build_of(svc, delivery: str):
    return await svc.deploy_by_key("delivery:" + delivery)


# -- pull requests -------------------------------------------------------------------------------


async def test_pull_request_opened_builds_the_head_as_a_build_check_without_a_deployment(svc, github):
    delivery = await svc.send("pull_request", pr_payload("opened", SHA_A))
    build = await build_of(svc, delivery)
    assert (build.kind, build.sha, build.ref, build.pr_number) == ("build", SHA_A, "refs/pull/7/head", 7)
    assert (build.clone_url, build.default_branch, build.untrusted) == ("https://github.com/Codertocat/Hello-World.git", "master", False)
    assert (build.trigger, build.actor) == (Trigger.PULL_REQUEST.value, "Codertocat")
    [create] = github.requests("POST", r"/check-runs$")
    assert create.json["name"] == "Easy Deploy / build" and create.json["head_sha"] == SHA_A
    assert create.json["output"]["title"] == "Build queued"
    assert not github.requests("POST", r"/deployments")

    await svc.advance(build.id, state=DeployState.FAILED, stages=stages_done("identity", "source", failed="build"),
                      result={"failure": {"stage": "build", "summary": "The Dockerfile's RUN step failed.",
                                          "what_to_do": "Run `docker build .` locally.", "log_lines": ["step 3/7", "error: exit 2"]}})
    run = github.check_runs[build.reporting["github"]["check_run_id"]]
    assert run["conclusion"] == "failure" and "actions" not in run
    assert "| release |" not in run["output"]["summary"]
    assert run["output"]["text"] == "Last 2 log lines:\n\n```\nstep 3/7\nerror: exit 2\n```"


async def test_a_pull_request_from_a_fork_builds_untrusted(svc, github):
    payload = pr_payload("opened", SHA_A)
    payload["pull_request"]["head"]["repo"].update(id=1, full_name="mallory/Hello-World", fork=True)
    assert (await build_of(svc, await svc.send("pull_request", payload))).untrusted is True

    gone = pr_payload("reopened", SHA_B, number=8)
    gone["pull_request"]["head"]["repo"] = None  # the fork was deleted
    assert (await build_of(svc, await svc.send("pull_request", gone))).untrusted is True


async def test_a_newer_push_to_the_pull_request_cancels_the_running_build_naming_the_newer_sha(svc, github):
    older = await build_of(svc, await svc.send("pull_request", pr_payload("opened", SHA_A)))
    await svc.advance(older.id, state=DeployState.RUNNING, stages=stages_done(running="build"))
    newer = await build_of(svc, await svc.send("pull_request", pr_payload("synchronize", SHA_B)))
    assert [c for c in svc.ops.calls if c[0] == "cancel_builds"] == [
        ("cancel_builds", OWNER, REPO, 7, "superseded by a newer push (bbbbbbb)", newer.id)]
    older = await svc.deploy(older.id)
    run = github.check_runs[older.reporting["github"]["check_run_id"]]
    assert run["conclusion"] == "cancelled" and run["output"]["title"] == "Build cancelled: superseded by bbbbbbb"
    assert run["output"]["summary"].startswith("Superseded by a newer build of commit bbbbbbb.")
    assert github.check_runs[newer.reporting["github"]["check_run_id"]]["status"] == "queued"


async def test_closing_the_pull_request_stops_its_running_build(svc, github):
    build = await build_of(svc, await svc.send("pull_request", pr_payload("opened", SHA_A)))
    await svc.advance(build.id, state=DeployState.RUNNING, stages=stages_done(running="build"))
    await svc.send("pull_request", pr_payload("closed", SHA_A))
    assert svc.ops.calls[0][:4] == ("cancel_builds", OWNER, REPO, 7)
    run = github.check_runs[(await svc.deploy(build.id)).reporting["github"]["check_run_id"]]
    assert run["conclusion"] == "cancelled"
    assert run["output"]["summary"].startswith("Cancelled: pull request #7 was ")


async def test_a_redelivered_pull_request_event_builds_once(svc, github):
    payload = pr_payload("opened", SHA_A)
    await svc.send("pull_request", payload, delivery="same")
    await svc.send("pull_request", payload, delivery="same")
    assert await svc.count("SELECT COUNT(*) FROM deploys") == 1 and len(github.check_runs) == 1


# -- check runs: re-run and buttons --------------------------------------------------------------------


async def test_check_run_rerequested_runs_the_same_work_again(svc, github):
    deploy = await svc.push(SHA_A)
    await svc.advance(deploy.id, state=DeployState.FAILED, result={"failure": {"summary": "x"}})
    deploy = await svc.deploy(deploy.id)
    delivery = await svc.send("check_run", check_run_payload("rerequested", deploy))
    again = await svc.deploy_by_key("rerun:" + delivery)
    assert (again.sha, again.kind, again.environment, again.trigger) == (SHA_A, "deploy", "production", "rerun")
    assert len(github.check_runs) == 2


async def test_rerequests_of_other_apps_runs_are_ignored(svc, github):
    deploy = await svc.push(SHA_A)
    sent = len(github.calls)
    await svc.send("check_run", check_run_payload("rerequested", deploy, app_id=OTHER_APP))
    await svc.send("check_suite", check_suite_payload("rerequested", SHA_A, app_id=OTHER_APP))
    assert await svc.count("SELECT COUNT(*) FROM deploys") == 1
    assert len(github.calls) == sent, "nothing may be posted for another app's check run"


async def test_check_suite_rerequested_runs_the_commits_work_again(svc, github):
    deploy = await svc.push(SHA_A)
    await svc.advance(deploy.id, state=DeployState.SUCCEEDED)
    await svc.send("check_suite", check_suite_payload("rerequested", SHA_A, app_id=APP_ID))
    rows = await svc.services.store.fetchall("SELECT sha, kind, trigger FROM deploys ORDER BY created_at")
    assert [tuple(r) for r in rows] == [(SHA_A, "deploy", "push"), (SHA_A, "deploy", "rerun")]


async def test_redeploy_button_deploys_the_same_sha_again_and_a_double_click_lands_on_one_deploy(svc, github):
    deploy = await svc.push(SHA_A)
    deploy = await svc.advance(deploy.id, state=DeployState.SUCCEEDED)
    payload = check_run_payload("requested_action", deploy, identifier="redeploy")
    await svc.send("check_run", payload)
    await svc.send("check_run", payload)  # a second click: another delivery, the same check run
    again = await svc.deploy_by_key(f"action:{deploy.reporting['github']['check_run_id']}:redeploy")
    assert (again.sha, again.kind, again.trigger, again.actor) == (SHA_A, "deploy", "button", payload["sender"]["login"])
    assert await svc.count("SELECT COUNT(*) FROM deploys") == 2
    assert len(github.check_runs) == 2


async def test_roll_back_button_rolls_back_to_the_previous_good_deploy_and_reports_it(svc, github):
    first = await svc.push(SHA_A)
    await svc.advance(first.id, state=DeployState.SUCCEEDED, result={"task_definition_arn": "arn:aws:ecs:td/hello:1"})
    second = await svc.push(SHA_B)
    second = await svc.advance(second.id, state=DeployState.SUCCEEDED, result={"task_definition_arn": "arn:aws:ecs:td/hello:2"})
    payload = check_run_payload("requested_action", second, identifier="rollback")
    await svc.send("check_run", payload)
    await svc.send("check_run", payload)
    rollback = await svc.deploy_by_key(f"action:{second.reporting['github']['check_run_id']}:rollback")
    assert (rollback.kind, rollback.sha, rollback.rollback_task_definition) == ("rollback", SHA_A, "arn:aws:ecs:td/hello:1")
    assert await svc.count("SELECT COUNT(*) FROM deploys WHERE kind = 'rollback'") == 1
    run = github.check_runs[rollback.reporting["github"]["check_run_id"]]
    assert (run["name"], run["head_sha"], run["status"]) == ("Easy Deploy", SHA_A, "queued")
    assert run["output"]["title"] == "Rollback queued"
    dep = github.deployments[rollback.reporting["github"]["deployment_id"]]
    assert dep["description"].startswith("Roll back aaaaaaa to production")


async def test_roll_back_with_nothing_to_go_back_to_says_so_once(svc, github):
    deploy = await svc.push(SHA_A)
    deploy = await svc.advance(deploy.id, state=DeployState.SUCCEEDED, result={"task_definition_arn": "arn:aws:ecs:td/hello:1"})
    payload = check_run_payload("requested_action", deploy, identifier="rollback")
    await svc.send("check_run", payload)
    await svc.send("check_run", payload)
    notes = [r for r in github.check_runs.values() if r["name"] == "Easy Deploy / roll back"]
    assert len(notes) == 1
    assert (notes[0]["conclusion"], notes[0]["output"]["title"]) == ("neutral", "Nothing to roll back to")
    assert await svc.count("SELECT COUNT(*) FROM deploys") == 1


# -- wait for checks ----------------------------------------------------------------------------------


async def test_another_apps_suite_completing_resumes_waiting_deploys(svc, github):
    await svc.send("check_suite", check_suite_payload("completed", SHA_A, app_id=OTHER_APP))
    await svc.send("check_suite", check_suite_payload("completed", SHA_B, app_id=APP_ID))  # our own: nothing to wake
    assert svc.ops.calls == [("resume_waiting", OWNER, REPO, SHA_A)]


async def test_checks_gate_waits_goes_and_cancels_from_the_commits_check_suites(svc, github):
    deploy = await svc.push(SHA_A)
    full = f"{OWNER}/{REPO}"
    ci = github.add_check_suite(full, SHA_A, app_slug="ci", status="in_progress", conclusion=None)
    github.check_suites[(full.lower(), SHA_A)].append(
        {"id": 1, "head_sha": SHA_A, "status": "queued", "conclusion": None, "app": {"id": APP_ID, "slug": "easy-deploy"}})
    gate = await checks_gate(svc.services.github, deploy)
    assert (gate.decision, gate.waiting_for) == (GateDecision.WAIT, ["ci"])
    ci.update(status="completed", conclusion="success")
    assert (await checks_gate(svc.services.github, deploy)).decision is GateDecision.GO
    ci.update(conclusion="failure")
    gate = await checks_gate(svc.services.github, deploy)
    assert (gate.decision, gate.reason) == (GateDecision.CANCEL, "other checks did not pass: ci (failure)")
    [call, *_] = github.requests("GET", r"/check-suites$")
    assert call.path == f"/repos/{OWNER}/{REPO}/commits/{SHA_A}/check-suites" and call.auth == "installation"
