"""The whole product through its real endpoints: push → pipeline on moto → check run and deployment.

Every request the service makes to GitHub is validated against GitHub's REST description
(the autouse fixture in tests/conftest.py).
"""

from __future__ import annotations

import uuid

import pytest

from bot.deploy_job import PipelineExtension
from bot.pipeline.aws import BuildInfo, BuildStatus
from bot.pipeline.testing import FLASK_APP, commit_files
from bot.reporting.extension import GitHubReportingExtension
from tests.conftest import INSTALLATION_ID
from tests.test_deploy_e2e import FAST_POLL, push_payload


@pytest.fixture
async def product(start_service, github, moto_endpoint, tmp_path):
    """The service with the pipeline and GitHub reporting, and a fresh sample repository on GitHub."""
    svc = await start_service(
        extensions=[PipelineExtension(poll=FAST_POLL, max_attempts=2), GitHubReportingExtension(retry_base=0.05, retry_cap=0.3)],
        aws_endpoint_url=moto_endpoint, repos_root=tmp_path / "repos", rollout_timeout=10,
    )
    owner, repo = "acme-" + uuid.uuid4().hex[:6], "shop"
    source = tmp_path / "upstream" / owner / repo
    sha = commit_files(source, FLASK_APP)
    github.add_installation(INSTALLATION_ID, owner, [{"id": 99, "name": repo, "full_name": f"{owner}/{repo}",
                                                      "owner": {"login": owner}, "default_branch": "main"}])
    svc.sample = (owner, repo, sha, f"file://{source}", source)  # type: ignore[attr-defined]
    return svc  # every request it makes to GitHub is checked against GitHub's REST description (conftest)


def check_runs(github, sha: str) -> list[dict]:
    return [run for run in github.check_runs.values() if run["head_sha"] == sha]


async def test_push_reports_a_check_run_and_a_deployment_with_the_url(product, github):
    owner, repo, sha, url, _ = product.sample
    assert (await product.webhook("push", push_payload(owner, repo, sha, url))).status == 202
    await product.idle(timeout=60)
    [run] = check_runs(github, sha)
    assert run["name"] == "Easy Deploy" and run["status"] == "completed" and run["conclusion"] == "success"
    deploy = (await product.services.deploy_store.list_for_repo(owner, repo))[0]
    assert deploy.result["app_url"] in run["output"]["summary"]
    for stage in ("identity", "source", "build", "release"):
        assert stage in run["output"]["summary"]
    assert {a["identifier"] for a in run["actions"]} == {"redeploy", "rollback"}
    # The check run went through queued and in_progress on its way.
    statuses = [c.json.get("status") for c in github.requests(None, r"/check-runs") if c.json]
    assert statuses[0] == "queued" and "in_progress" in statuses
    [dep] = [d for d in github.deployments.values() if d["sha"] == sha]
    assert dep["environment"] == "production" and dep["payload"]["deploy_id"] == deploy.id
    states = [s["state"] for s in github.deployment_statuses[dep["id"]]]
    assert states[0] == "queued" and states[-1] == "success"
    assert github.deployment_statuses[dep["id"]][-1]["environment_url"] == deploy.result["app_url"]


async def test_failed_build_reports_failure_with_the_log_tail(product, github, monkeypatch):
    owner, repo, _, url, source = product.sample
    sha = commit_files(source, {"broken.txt": "x\n"})
    aws = product.services.extras["aws_steps"]

    async def failed(build_id: str) -> BuildInfo:
        return BuildInfo(build_id=build_id, status=BuildStatus.FAILED, phase="BUILD")

    async def tail(names, build, lines: int = 30) -> list[str]:
        return [f"step {i}" for i in range(80)] + ["ERROR: pip install failed: no matching distribution"]

    monkeypatch.setattr(aws, "get_build", failed)
    monkeypatch.setattr(aws, "build_log_tail", tail)
    await product.webhook("push", push_payload(owner, repo, sha, url))
    await product.idle(timeout=60)
    [run] = check_runs(github, sha)
    assert run["conclusion"] == "failure"
    assert "build" in run["output"]["summary"].lower()
    assert "ERROR: pip install failed" in run["output"]["text"]
    assert all(len(v) <= 65535 for v in run["output"].values() if isinstance(v, str))
    [dep] = [d for d in github.deployments.values() if d["sha"] == sha]
    assert github.deployment_statuses[dep["id"]][-1]["state"] == "failure"


async def test_wait_for_checks_holds_the_deploy_until_other_suites_pass(product, github):
    owner, repo, _, url, source = product.sample
    sha = commit_files(source, {".easydeploy.yml": "port: 8000\nhealth_check_path: /\nwait_for_checks: true\n"})
    github.add_file(f"{owner}/{repo}", ".easydeploy.yml", "port: 8000\nwait_for_checks: true\n", ref="main")
    suite = github.add_check_suite(f"{owner}/{repo}", sha, app_slug="ci", status="in_progress", conclusion=None)
    suite["latest_check_runs_count"] = 1
    await product.webhook("push", push_payload(owner, repo, sha, url))
    await product.idle(timeout=30)
    [deploy] = [d for d in await product.services.deploy_store.list_for_repo(owner, repo) if d.sha == sha]
    assert deploy.state == "waiting"
    [run] = check_runs(github, sha)
    assert run["status"] == "queued" and "ci" in run["output"]["summary"]
    # CI passes: GitHub sends check_suite.completed and the deploy goes ahead.
    suite.update(status="completed", conclusion="success")
    completed = {"action": "completed", "installation": {"id": INSTALLATION_ID},
                 "check_suite": {"id": suite["id"], "head_sha": sha, "head_branch": "main", "status": "completed",
                                 "conclusion": "success", "app": suite["app"]},
                 "repository": {"id": 99, "name": repo, "full_name": f"{owner}/{repo}", "owner": {"login": owner},
                                "default_branch": "main"}}
    await product.webhook("check_suite", completed)
    await product.idle(timeout=60)
    deploy = await product.services.deploy_store.get(deploy.id)
    assert deploy.state == "succeeded", deploy.result
    assert check_runs(github, sha)[0]["conclusion"] == "success"


async def test_failed_ci_cancels_the_waiting_deploy(product, github):
    owner, repo, _, url, source = product.sample
    sha = commit_files(source, {"x.txt": "y\n"})
    github.add_file(f"{owner}/{repo}", ".easydeploy.yml", "wait_for_checks: true\n", ref="main")
    suite = github.add_check_suite(f"{owner}/{repo}", sha, app_slug="ci", status="completed", conclusion="failure")
    suite["latest_check_runs_count"] = 1
    await product.webhook("push", push_payload(owner, repo, sha, url))
    await product.idle(timeout=30)
    [run] = check_runs(github, sha)
    assert run["conclusion"] == "cancelled" and "ci" in run["output"]["summary"]


async def test_push_to_a_locked_environment_is_held_then_released_by_unlock(product, github):
    from bot.locks import Locks

    owner, repo, _, url, source = product.sample
    sha = commit_files(source, {"held.txt": "1\n"})
    locks = Locks(product.services.store)
    got, _ = await locks.try_lock(owner, repo, "production", "alice", "release freeze until 5pm")
    assert got
    await product.webhook("push", push_payload(owner, repo, sha, url))
    await product.idle(timeout=30)
    [deploy] = [d for d in await product.services.deploy_store.list_for_repo(owner, repo) if d.sha == sha]
    assert deploy.state == "held"
    [run] = check_runs(github, sha)
    assert run["status"] == "queued" and "release freeze until 5pm" in run["output"]["summary"]
    # The holder unlocks (as `/deploy unlock` does): the newest held push runs.
    await locks.unlock(owner, repo, "production")
    await product.services.deploys.release_held(owner, repo, "production")
    await product.idle(timeout=60)
    assert (await product.services.deploy_store.get(deploy.id)).state == "succeeded"
    assert check_runs(github, sha)[0]["conclusion"] == "success"


@pytest.mark.parametrize("name", ["..", "evil;rm -rf ~", "--upload-pack=touch pwned", "a" * 101])
async def test_hostile_repository_names_fail_cleanly_and_touch_nothing(product, github, tmp_path, name):
    owner, _, sha, url, _ = product.sample
    payload = push_payload(owner, name, sha, url)
    github.installations[INSTALLATION_ID].repositories.append(
        {"id": 7, "name": name, "full_name": f"{owner}/{name}", "owner": {"login": owner}})
    assert (await product.webhook("push", payload)).status == 202
    await product.idle(timeout=30)
    # GitHub never sends such names; if something does, nothing is created and nothing is called.
    assert await product.count("SELECT COUNT(*) FROM deploys") == 0
    assert await product.count("SELECT COUNT(*) FROM jobs WHERE state = 'done' AND kind = 'webhook'") == 1
    assert not [c for c in github.calls if name in c.path or "/repos/" in c.path]
    repos_root = tmp_path / "repos"
    created = [p for p in repos_root.rglob("*")] if repos_root.exists() else []
    assert all(p.resolve().is_relative_to(repos_root.resolve()) for p in created)
    assert not (tmp_path / "pwned").exists() and not any(tmp_path.rglob("pwned"))


async def test_a_running_deploy_does_not_hold_up_webhooks(start_service, github, moto_endpoint, tmp_path, monkeypatch):
    import asyncio

    from tests.test_deploy_e2e import _hold_builds_in_progress

    svc = await start_service(
        extensions=[PipelineExtension(poll=FAST_POLL, max_attempts=2), GitHubReportingExtension(retry_base=0.05, retry_cap=0.3)],
        aws_endpoint_url=moto_endpoint, repos_root=tmp_path / "repos", workers=1,
    )
    owner = "busy-" + uuid.uuid4().hex[:6]
    repos = []
    for name in ("first", "second"):
        source = tmp_path / "upstream" / owner / name
        repos.append((name, commit_files(source, FLASK_APP), f"file://{source}"))
    github.add_installation(INSTALLATION_ID, owner, [{"id": i, "name": n, "full_name": f"{owner}/{n}", "owner": {"login": owner},
                                                      "default_branch": "main"} for i, (n, _, _) in enumerate(repos)])
    await _hold_builds_in_progress(svc, monkeypatch)  # the first deploy's build never ends
    (first, sha1, url1), (second, sha2, url2) = repos
    await svc.webhook("push", push_payload(owner, first, sha1, url1))
    for _ in range(500):
        if check_runs(github, sha1) and check_runs(github, sha1)[0]["status"] == "in_progress":
            break
        await asyncio.sleep(0.02)
    await svc.webhook("push", push_payload(owner, second, sha2, url2))
    for _ in range(250):
        if check_runs(github, sha2):
            break
        await asyncio.sleep(0.02)
    assert check_runs(github, sha2), "the second push waited for the first deploy"
    assert check_runs(github, sha1)[0]["status"] == "in_progress"


async def test_a_bug_inside_the_service_ends_the_check_run_as_internal_error(product, github, monkeypatch):
    owner, repo, _, url, source = product.sample
    sha = commit_files(source, {"bug.txt": "1\n"})
    aws = product.services.extras["aws_steps"]

    async def broken(*args, **kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr(aws, "find_image", broken)
    await product.webhook("push", push_payload(owner, repo, sha, url))
    await product.idle(timeout=60)
    [deploy] = [d for d in await product.services.deploy_store.list_for_repo(owner, repo) if d.sha == sha]
    [run] = check_runs(github, sha)
    assert run["status"] == "completed" and run["conclusion"] == "failure"
    assert "internal error" in run["output"]["summary"] and deploy.id in run["output"]["summary"]
    [dep] = [d for d in github.deployments.values() if d["sha"] == sha]
    assert github.deployment_statuses[dep["id"]][-1]["state"] == "error"
