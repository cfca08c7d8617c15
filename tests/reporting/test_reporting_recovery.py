"""Nothing is left spinning: GitHub outages while reporting, and restarts with reports out of step."""

from __future__ import annotations

import time

from bot.deploys import DeployState
from bot.reporting.github import REPORT_JOB
from tests.reporting.conftest import SHA_A, stages_done

FAILURE = {"stage": "release", "summary": "The new tasks never became healthy.", "what_to_do": "Check /health.",
           "log_lines": ["boom"]}


async def report_jobs(svc) -> list[dict]:
    return [dict(r) for r in await svc.services.store.fetchall("SELECT * FROM jobs WHERE kind = ?", (REPORT_JOB,))]


async def test_github_5xx_while_a_stage_changes_is_retried_until_the_final_state_is_shown(svc, github):
    deploy = await svc.push(SHA_A)
    run_id = next(iter(github.check_runs))
    # More 502s than the client retries: the update is left to the durable retry job.
    github.fail("PATCH", rf"/check-runs/{run_id}$", 502, times=5)
    await svc.advance(deploy.id, state=DeployState.RUNNING, stages=stages_done(running="identity"))
    await svc.advance(deploy.id, state=DeployState.FAILED, stages=stages_done("identity", "source", "build", failed="release"),
                      result={"failure": FAILURE, "internal_error": False})
    await svc.idle()
    run = github.check_runs[run_id]
    assert run["status"] == "completed" and run["conclusion"] == "failure"
    assert run["output"]["summary"].startswith("The new tasks never became healthy.")
    assert any(c.status == 502 for c in github.requests("PATCH", r"/check-runs/"))
    jobs = await report_jobs(svc)
    assert jobs and all(j["state"] == "done" for j in jobs)
    assert (await svc.deploy(deploy.id)).reporting["github"]["state"] == "failed"


async def test_a_rate_limit_when_creating_the_check_run_is_retried_and_creates_exactly_one(svc, github):
    github.fail("POST", r"/check-runs$", 429, times=4, headers={"Retry-After": "0"}, message="secondary rate limit")
    deploy = await svc.push(SHA_A)
    await svc.idle()
    assert len(github.check_runs) == 1
    [run] = github.check_runs.values()
    assert run["external_id"] == deploy.id and run["status"] == "queued"
    await svc.advance(deploy.id, state=DeployState.SUCCEEDED, stages=stages_done("identity", "source", "build", "release"),
                      result={"app_url": "https://hello-world.apps.localhost"})
    assert github.check_runs[run["id"]]["conclusion"] == "success"
    assert len(github.check_runs) == 1


async def test_a_deployment_status_lost_to_an_outage_still_arrives(svc, github):
    deploy = await svc.push(SHA_A)
    github.fail("POST", r"/deployments/\d+/statuses$", 503, times=6)
    await svc.advance(deploy.id, state=DeployState.SUCCEEDED, stages=stages_done("identity", "source", "build", "release"),
                      result={"app_url": "https://hello-world.apps.localhost"})
    await svc.idle()
    dep_id = (await svc.deploy(deploy.id)).reporting["github"]["deployment_id"]
    assert github.deployment_statuses[dep_id][-1]["state"] == "success"
    assert github.deployment_statuses[dep_id][-1]["environment_url"] == "https://hello-world.apps.localhost"


async def test_a_restart_brings_a_check_run_left_in_progress_up_to_date(start_reporting, github):
    svc = await start_reporting()
    deploy = await svc.push(SHA_A)
    await svc.advance(deploy.id, state=DeployState.RUNNING, stages=stages_done(running="build"))
    run_id = next(iter(github.check_runs))
    assert github.check_runs[run_id]["status"] == "in_progress"
    # The process dies after the deploy job recorded the end but before it was reported.
    await svc.services.deploy_store.update(deploy.id, state=DeployState.FAILED, finished_at=time.time(),
                                           result={"internal_error": True, "failure": {"summary": f"internal error (deploy {deploy.id})"}})
    await svc.stop()

    again = await start_reporting()
    await again.idle()
    run = github.check_runs[run_id]
    assert run["status"] == "completed" and run["conclusion"] == "failure"
    assert deploy.id in run["output"]["title"]
    assert len(github.check_runs) == 1
    dep_id = (await again.deploy(deploy.id)).reporting["github"]["deployment_id"]
    assert github.deployment_statuses[dep_id][-1]["state"] == "error"


async def test_a_restart_after_creating_but_before_remembering_never_makes_a_second_check_run(start_reporting, github):
    svc = await start_reporting()
    deploy = await svc.push(SHA_A)
    run_id = next(iter(github.check_runs))
    # As if the process died between GitHub's answer and the UPDATE that stores the id.
    await svc.services.store.execute(
        "UPDATE deploys SET reporting = json_remove(reporting, '$.github.check_run_id', '$.github.deployment_id',"
        " '$.github.state') WHERE id = ?", (deploy.id,))
    await svc.stop()

    again = await start_reporting()
    await again.idle()
    assert list(github.check_runs) == [run_id]
    assert len(github.deployments) == 1
    record = (await again.deploy(deploy.id)).reporting["github"]
    assert record["check_run_id"] == run_id and record["deployment_id"] == next(iter(github.deployments))
    assert github.requests("GET", r"/commits/a{40}/check-runs$") and github.requests("GET", r"/deployments$")


async def test_a_restart_with_everything_reported_sends_nothing(start_reporting, github):
    svc = await start_reporting()
    deploy = await svc.push(SHA_A)
    await svc.advance(deploy.id, state=DeployState.SUCCEEDED, stages=stages_done("identity", "source", "build", "release"))
    await svc.stop()
    sent = len(github.requests(pattern=r"^/repos/"))
    again = await start_reporting()
    await again.idle()
    assert len(github.requests(pattern=r"^/repos/")) == sent


async def test_other_reporters_keys_in_the_reporting_column_survive(svc, github):
    deploy = await svc.push(SHA_A)
    await svc.services.store.execute(
        "UPDATE deploys SET reporting = json_set(reporting, '$.slack', json('{\"ts\": \"1.2\"}')) WHERE id = ?", (deploy.id,))
    await svc.advance(deploy.id, state=DeployState.RUNNING, stages=stages_done(running="identity"))
    reporting = (await svc.deploy(deploy.id)).reporting
    assert reporting["slack"] == {"ts": "1.2"} and reporting["github"]["state"] == "running"
