"""GitHub reporting end to end: webhook in, deploy record moved as the deploy job moves it, GitHub stand-in out."""

from __future__ import annotations

from bot.deploys import DeployState
from bot.reporting.checks import MAX_FIELD
from tests.reporting.conftest import INSTALLATION, OWNER, REPO, SHA_A, SHA_B, stage, stages_done

REPO_PATH = f"/repos/{OWNER}/{REPO}"
APP_URL = "https://hello-world.apps.example.com"
LOGS = "https://console.aws.amazon.com/codesuite/codebuild/projects/ed-hello/build/ed-hello:1/log"


def table(*rows: tuple[str, str, str]) -> str:
    return "| Stage | State | Duration |\n| --- | --- | --- |\n" + "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)


PENDING_TABLE = table(("identity", "pending", "–"), ("source", "pending", "–"), ("build", "pending", "–"), ("release", "pending", "–"))


async def test_push_creates_a_queued_check_run_and_deployment_at_once(svc, github):
    deploy = await svc.push(SHA_A)

    [create] = github.requests("POST", r"/check-runs$")
    assert create.path == f"{REPO_PATH}/check-runs"
    assert create.auth == "installation" and create.installation_id == INSTALLATION
    assert create.json == {
        "name": "Easy Deploy",
        "head_sha": SHA_A,
        "external_id": deploy.id,
        "status": "queued",
        "output": {
            "title": "Deploy queued",
            "summary": f"Easy Deploy has queued aaaaaaa to production.\n\n{PENDING_TABLE}\n\nDeploy id: `{deploy.id}`",
        },
    }
    [dep] = github.requests("POST", r"/deployments$")
    assert dep.json == {
        "ref": SHA_A, "task": "deploy", "environment": "production", "auto_merge": False, "required_contexts": [],
        "payload": {"deploy_id": deploy.id}, "description": f"Deploy aaaaaaa to production (Easy Deploy {deploy.id})",
        "transient_environment": False, "production_environment": True,
    }
    [status] = github.requests("POST", r"/statuses$")
    dep_id = next(iter(github.deployments))
    run_id = next(iter(github.check_runs))
    assert status.path == f"{REPO_PATH}/deployments/{dep_id}/statuses"
    assert status.json == {"state": "queued", "description": "Easy Deploy has queued aaaaaaa to production.",
                           "auto_inactive": False, "log_url": github.check_runs[run_id]["html_url"]}
    record = (await svc.deploy(deploy.id)).reporting["github"]
    assert record["check_run_id"] == run_id and record["deployment_id"] == dep_id and record["state"] == "queued"


async def test_app_endpoints_use_the_jwt_and_repository_endpoints_the_token(svc, github):
    await svc.push(SHA_A)
    assert {c.auth for c in github.calls if c.path.startswith("/app")} == {"jwt"}
    assert {c.auth for c in github.calls if c.path.startswith("/repos") or c.path.startswith("/installation/")} == {"installation"}


async def test_each_stage_updates_the_check_run_and_the_same_state_twice_sends_nothing(svc, github):
    deploy = await svc.push(SHA_A)
    run_id = next(iter(github.check_runs))
    before = len(github.calls)

    await svc.advance(deploy.id, state=DeployState.RUNNING, stages=stages_done(running="identity"))
    await svc.advance(deploy.id, state=DeployState.RUNNING, stages=stages_done("identity", running="source"))
    await svc.advance(deploy.id, state=DeployState.RUNNING,
                      stages={**stages_done("identity", "source", running="build"),
                              "build": stage("running", 1_700_000_020.0, build_logs_url=LOGS)})
    patches = github.requests("PATCH", rf"/check-runs/{run_id}$")
    assert [p.json["status"] for p in patches] == ["in_progress"] * 3
    assert patches[0].json["output"]["title"] == "Deploy running: identity"
    assert patches[2].json == {
        "status": "in_progress",
        "details_url": LOGS,
        "output": {
            "title": "Deploy running: build",
            "summary": "Easy Deploy is running aaaaaaa to production.\n\n"
                       + table(("identity", "succeeded", "10s"), ("source", "succeeded", "10s"), ("build", "running", "–"),
                               ("release", "pending", "–"))
                       + f"\n\nDeploy id: `{deploy.id}`",
        },
    }
    # The deployment status follows the state, not every stage (and says again once the logs have a URL).
    statuses = github.requests("POST", r"/statuses$")
    assert [c.json["state"] for c in statuses] == ["queued", "in_progress", "in_progress"]
    assert statuses[2].json["log_url"] == LOGS

    sent = len(github.calls)
    await svc.services.deploys.report(await svc.deploy(deploy.id))
    await svc.services.deploys.report(await svc.deploy(deploy.id))
    assert len(github.calls) == sent, "reporting the same state again sent something"
    assert sent > before


async def test_success_sets_environment_url_and_retires_the_previous_deployment(svc, github):
    first = await svc.push(SHA_A)
    await svc.advance(first.id, state=DeployState.SUCCEEDED, stages=stages_done("identity", "source", "build", "release"),
                      result={"app_url": APP_URL, "build_logs_url": LOGS, "failure": None, "internal_error": False})
    first_dep = (await svc.deploy(first.id)).reporting["github"]["deployment_id"]

    second = await svc.push(SHA_B)
    await svc.advance(second.id, state=DeployState.RUNNING, stages=stages_done(running="identity"))
    assert github.deployment_statuses[first_dep][-1]["state"] == "success", "retired before the new one succeeded"
    await svc.advance(second.id, state=DeployState.SUCCEEDED, stages=stages_done("identity", "source", "build", "release"),
                      result={"app_url": APP_URL, "build_logs_url": LOGS, "failure": None, "internal_error": False})

    run = github.check_runs[(await svc.deploy(second.id)).reporting["github"]["check_run_id"]]
    last_patch = github.requests("PATCH", rf"/check-runs/{run['id']}$")[-1].json
    assert last_patch["status"] == "completed" and last_patch["conclusion"] == "success"
    assert last_patch["completed_at"] == "2027-01-15T08:00:00Z"
    assert last_patch["details_url"] == LOGS
    assert last_patch["output"]["title"] == "Deploy to production succeeded"
    assert last_patch["output"]["summary"].startswith(f"bbbbbbb is live on production at {APP_URL}.\n\n**App:** {APP_URL}\n\n")
    assert "| release | succeeded | 10s |" in last_patch["output"]["summary"]
    assert last_patch["actions"] == [
        {"label": "Redeploy", "description": "Deploy this commit again", "identifier": "redeploy"},
        {"label": "Roll back", "description": "Go back to the previous good deploy", "identifier": "rollback"},
    ]
    second_dep = (await svc.deploy(second.id)).reporting["github"]["deployment_id"]
    assert github.deployment_statuses[second_dep][-1] | {"id": 0, "created_at": ""} == {
        "id": 0, "created_at": "", "state": "success", "auto_inactive": False, "environment_url": APP_URL,
        "log_url": LOGS, "description": f"bbbbbbb is live on production at {APP_URL}.",
    }
    inactive = github.requests("POST", rf"/deployments/{first_dep}/statuses$")[-1]
    assert inactive.json == {"state": "inactive", "auto_inactive": False,
                             "description": f"Replaced by bbbbbbb (deploy {second.id})."}
    # A later report of the first deploy does not bring its success back.
    sent = len(github.calls)
    await svc.services.deploys.report(await svc.deploy(first.id))
    assert len(github.calls) == sent


async def test_failure_says_what_failed_what_to_do_and_carries_the_log_tail_cut_to_github_limits(svc, github):
    deploy = await svc.push(SHA_A)
    log_lines = [f"line {i}: " + "x" * 2000 for i in range(80)]
    failure = {"stage": "build", "summary": "The image did not build: `npm ci` exited with code 1.",
               "what_to_do": "Fix the dependency error in package.json and push again.", "log_lines": log_lines}
    await svc.advance(deploy.id, state=DeployState.FAILED, stages=stages_done("identity", "source", failed="build"),
                      result={"build_logs_url": LOGS, "failure": failure, "internal_error": False})
    body = github.requests("PATCH", r"/check-runs/\d+$")[-1].json
    assert body["conclusion"] == "failure" and body["status"] == "completed"
    assert body["output"]["title"] == "Deploy failed at build"
    assert body["output"]["summary"].startswith(
        "The image did not build: `npm ci` exited with code 1.\n\n"
        "**What to do:** Fix the dependency error in package.json and push again.\n\n")
    assert "| build | failed | 1m 15s |" in body["output"]["summary"]
    text = body["output"]["text"]
    assert len(text) <= MAX_FIELD
    assert text.startswith("Last 50 log lines:\n\n```\n… (earlier lines cut to GitHub's size limit)\n")
    assert text.endswith("line 79: " + "x" * 2000 + "\n```")
    assert "line 29:" not in text  # only the last 50 lines are considered
    dep_id = (await svc.deploy(deploy.id)).reporting["github"]["deployment_id"]
    status = github.deployment_statuses[dep_id][-1]
    assert status["state"] == "failure" and status["log_url"] == LOGS
    assert status["description"] == "The image did not build: `npm ci` exited with code 1."


async def test_internal_error_ends_the_check_run_as_failure_with_the_deploy_id(svc, github):
    deploy = await svc.push(SHA_A)
    await svc.advance(deploy.id, state=DeployState.RUNNING, stages=stages_done(running="identity"))
    await svc.advance(deploy.id, state=DeployState.FAILED, result={
        "internal_error": True, "failure": {"stage": "identity", "summary": f"internal error (deploy {deploy.id})",
                                            "what_to_do": None, "log_lines": []}})
    body = github.requests("PATCH", r"/check-runs/\d+$")[-1].json
    assert body["status"] == "completed" and body["conclusion"] == "failure"
    assert body["output"]["title"] == f"Internal error ({deploy.id})"
    assert f"internal error, deploy {deploy.id}" in body["output"]["summary"]
    assert "text" not in body["output"]
    dep_id = (await svc.deploy(deploy.id)).reporting["github"]["deployment_id"]
    assert github.deployment_statuses[dep_id][-1]["state"] == "error"
    assert deploy.id in github.deployment_statuses[dep_id][-1]["description"]


async def test_a_newer_push_cancels_the_queued_deploy_naming_the_newer_sha(svc, github):
    older = await svc.push(SHA_A)
    newer = await svc.push(SHA_B)
    older = await svc.deploy(older.id)
    assert older.state is DeployState.CANCELLED and older.superseded_by == newer.id
    run = github.check_runs[older.reporting["github"]["check_run_id"]]
    assert run["status"] == "completed" and run["conclusion"] == "cancelled"
    assert run["output"]["title"] == "Deploy cancelled: superseded by bbbbbbb"
    assert run["output"]["summary"].startswith("Superseded by a newer deploy of commit bbbbbbb.")
    assert "actions" in run  # Redeploy brings it back if the newer one was a mistake
    status = github.deployment_statuses[older.reporting["github"]["deployment_id"]][-1]
    assert status["state"] == "inactive" and "bbbbbbb" in status["description"]
    newer_run = github.check_runs[(await svc.deploy(newer.id)).reporting["github"]["check_run_id"]]
    assert newer_run["status"] == "queued" and newer_run["head_sha"] == SHA_B


async def test_waiting_for_checks_then_cancelled_by_a_failed_suite(svc, github):
    deploy = await svc.push(SHA_A)
    await svc.advance(deploy.id, state=DeployState.WAITING, result={"waiting_for": ["CI", "Lint"]})
    body = github.requests("PATCH", r"/check-runs/\d+$")[-1].json
    assert body["status"] == "queued"
    assert body["output"]["title"] == "Waiting for other checks"
    assert body["output"]["summary"].startswith("Waiting for CI, Lint to pass before deploying aaaaaaa.")
    await svc.advance(deploy.id, state=DeployState.CANCELLED, result={"cancel_reason": "other checks did not pass: CI (failure)"})
    run = github.check_runs[(await svc.deploy(deploy.id)).reporting["github"]["check_run_id"]]
    assert run["conclusion"] == "cancelled"
    assert run["output"]["summary"].startswith("Cancelled: other checks did not pass: CI (failure).")


async def test_held_deploy_says_who_holds_the_lock(svc, github):
    deploy = await svc.push(SHA_A)
    await svc.advance(deploy.id, state=DeployState.HELD, result={"held_reason": "production is locked by @mona: release freeze"})
    body = github.requests("PATCH", r"/check-runs/\d+$")[-1].json
    assert body["status"] == "queued" and body["output"]["title"] == "Held: production is locked"
    assert body["output"]["summary"].startswith("Held: production is locked by @mona: release freeze.")
