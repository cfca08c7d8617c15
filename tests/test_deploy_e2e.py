"""End to end on the emulator: a signed push in, a service running the pushed image out."""

from __future__ import annotations

import uuid

import pytest

from bot.deploy_job import PipelineExtension
from bot.pipeline.model import PollPolicy
from bot.pipeline.names import app_names
from bot.pipeline.testing import FLASK_APP as SAMPLE_APP, commit_files
from tests.conftest import INSTALLATION_ID, load_webhook

FAST_POLL = PollPolicy(initial=0.01, maximum=0.05, factor=1.5)


def push_payload(owner: str, repo: str, sha: str, clone_url: str, installation_id: int = INSTALLATION_ID) -> dict:
    """GitHub's push example, re-pointed at our repository and commit."""
    payload = load_webhook("push")
    payload["ref"] = "refs/heads/main"
    payload["after"] = sha
    payload["deleted"] = False
    payload["installation"] = {"id": installation_id}
    repository = payload["repository"]
    repository.update(name=repo, full_name=f"{owner}/{repo}", clone_url=clone_url, default_branch="main", master_branch="main")
    repository["owner"] = {**repository["owner"], "login": owner, "name": owner}
    return payload


@pytest.fixture
async def deploying(start_service, github, moto_endpoint, tmp_path):
    """A service with the pipeline on the session's emulator, and a fresh sample repository."""
    svc = await start_service(
        extensions=[PipelineExtension(poll=FAST_POLL, max_attempts=2)],
        aws_endpoint_url=moto_endpoint, repos_root=tmp_path / "repos", rollout_timeout=10,
    )
    owner, repo = "octo-" + uuid.uuid4().hex[:6], "hello-web"
    source = tmp_path / "upstream" / owner / repo
    sha = commit_files(source, SAMPLE_APP)
    repo_json = {"id": abs(hash(owner)) % 10**8, "name": repo, "full_name": f"{owner}/{repo}", "owner": {"login": owner},
                 "default_branch": "main", "private": False}
    github.add_installation(INSTALLATION_ID, owner, [repo_json])
    svc.sample = (owner, repo, sha, f"file://{source}", source)  # type: ignore[attr-defined]
    return svc


async def deploys(svc) -> list[dict]:
    rows = await svc.services.store.fetchall("SELECT id, sha, state, result, stages FROM deploys ORDER BY created_at")
    return [dict(r) for r in rows]


async def test_push_deploys_the_pushed_sha_behind_a_host_rule(deploying):
    owner, repo, sha, url, _ = deploying.sample
    resp = await deploying.webhook("push", push_payload(owner, repo, sha, url))
    assert resp.status == 202
    await deploying.idle(timeout=60)
    [deploy] = await deploying.services.deploy_store.list_for_repo(owner, repo)
    assert deploy.state == "succeeded", deploy.result
    assert [deploy.stages[s]["state"] for s in ("identity", "source", "build", "release")] == ["succeeded"] * 4
    names = app_names(INSTALLATION_ID, owner, repo)
    clients = deploying.services.extras["aws_clients"]
    platform = deploying.services.extras["platform"]
    service = clients.ecs.describe_services(cluster=platform.cluster_name, services=[names.service])["services"][0]
    task_def = clients.ecs.describe_task_definition(taskDefinition=service["taskDefinition"])["taskDefinition"]
    assert task_def["containerDefinitions"][0]["image"].endswith(":" + sha)
    rules = clients.elbv2.describe_rules(ListenerArn=platform.alb_listener_arn)["Rules"]
    hosts = [v for r in rules for c in r["Conditions"] if c["Field"] == "host-header" for v in c["HostHeaderConfig"]["Values"]]
    assert f"{names.app}.apps.localhost" in hosts
    assert deploy.result["app_url"] == f"https://{names.app}.apps.localhost"


async def test_same_sha_twice_creates_nothing_twice(deploying):
    owner, repo, sha, url, _ = deploying.sample
    await deploying.webhook("push", push_payload(owner, repo, sha, url))
    await deploying.idle(timeout=60)
    clients = deploying.services.extras["aws_clients"]
    clients.calls.clear()
    await deploying.webhook("push", push_payload(owner, repo, sha, url))
    await deploying.idle(timeout=60)
    states = [d["state"] for d in await deploys(deploying)]
    assert states == ["succeeded", "succeeded"]
    creates = [c for c in clients.calls if ".Create" in c or c.endswith(".StartBuild") or ".Register" in c]
    assert creates == [], creates


async def test_commit_that_cannot_be_fetched_fails_the_deploy_clearly(deploying):
    owner, repo, _, url, _ = deploying.sample
    await deploying.webhook("push", push_payload(owner, repo, "0123456789abcdef0123456789abcdef01234567", url))
    await deploying.idle(timeout=60)
    [deploy] = await deploys(deploying)
    assert deploy["state"] == "failed"
    assert "source" in deploy["result"] and "fetch" in deploy["result"].lower()


async def test_pipeline_bug_ends_the_deploy_as_internal_error(deploying, monkeypatch):
    owner, repo, sha, url, _ = deploying.sample
    aws = deploying.services.extras["aws_steps"]

    async def broken(*args, **kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr(aws, "ensure_tenant_identity", broken)
    await deploying.webhook("push", push_payload(owner, repo, sha, url))
    await deploying.idle(timeout=60)
    [deploy] = await deploying.services.deploy_store.list_for_repo(owner, repo)
    assert deploy.state == "failed"
    assert deploy.result["internal_error"] is True
    assert deploy.result["failure"]["summary"] == f"internal error (deploy {deploy.id})"


async def test_installation_provisions_the_tenant_identity(deploying):
    created = load_webhook("installation", "01.created.json")
    created["installation"]["id"] = 31337
    await deploying.webhook("installation", created)
    await deploying.idle(timeout=60)
    iam = deploying.services.extras["aws_clients"].iam
    role = iam.get_role(RoleName="ed-31337-build")["Role"]
    assert role["Path"] == "/easydeploy/tenants/"
    assert role["PermissionsBoundary"]["PermissionsBoundaryArn"].endswith("easydeploy-tenant-boundary")


async def _hold_builds_in_progress(svc, monkeypatch) -> list[str]:
    """Make every build stay IN_PROGRESS (moto's never do); return the ids that get stopped."""
    from bot.pipeline.aws import BuildInfo, BuildStatus

    aws = svc.services.extras["aws_steps"]
    stopped: list[str] = []

    async def in_progress(build_id: str) -> BuildInfo:
        return BuildInfo(build_id=build_id, status=BuildStatus.IN_PROGRESS, phase="BUILD")

    async def stop_build(build_id: str) -> None:
        stopped.append(build_id)

    monkeypatch.setattr(aws, "get_build", in_progress)
    monkeypatch.setattr(aws, "stop_build", stop_build)
    return stopped


async def test_cancelling_a_running_deploy_stops_its_build(deploying, monkeypatch):
    import asyncio

    from bot.pipeline.testing import commit_files

    owner, repo, _, url, source = deploying.sample
    sha = commit_files(source, {"README.md": "new build\n"})  # not built before: a real build starts
    stopped = await _hold_builds_in_progress(deploying, monkeypatch)
    await deploying.webhook("push", push_payload(owner, repo, sha, url))
    store = deploying.services.deploy_store
    for _ in range(500):
        deploys_now = await store.list_for_repo(owner, repo)
        if deploys_now and deploys_now[0].stages.get("build", {}).get("outputs", {}).get("build_id"):
            break
        await asyncio.sleep(0.02)
    [deploy] = deploys_now
    assert deploy.state == "running"
    await deploying.services.deploys.cancel(deploy.id, "the pull request was closed")
    await deploying.idle(timeout=30)
    deploy = await store.get(deploy.id)
    assert deploy.state == "cancelled" and deploy.result["cancel_reason"] == "the pull request was closed"
    assert stopped == [deploy.stages["build"]["outputs"]["build_id"]]


async def test_restart_mid_build_resumes_without_a_second_build(deploying, monkeypatch, start_service, moto_endpoint, tmp_path):
    import asyncio

    from bot.pipeline.testing import commit_files

    owner, repo, _, url, source = deploying.sample
    sha = commit_files(source, {"README.md": "resume me\n"})
    await _hold_builds_in_progress(deploying, monkeypatch)
    await deploying.webhook("push", push_payload(owner, repo, sha, url))
    store = deploying.services.deploy_store
    for _ in range(500):
        found = await store.list_for_repo(owner, repo)
        if found and found[0].stages.get("build", {}).get("outputs", {}).get("build_id"):
            break
        await asyncio.sleep(0.02)
    build_id = found[0].stages["build"]["outputs"]["build_id"]
    # The process dies: workers stop without finishing (the job stays `running`).
    await deploying.services.workers.stop(drain_timeout=0)
    clients = deploying.services.extras["aws_clients"]
    before = clients.counts()["codebuild.StartBuild"]
    # A new process on the same store picks the deploy up where it was.
    again = await start_service(
        extensions=[PipelineExtension(poll=FAST_POLL, max_attempts=2)], aws_endpoint_url=moto_endpoint,
        repos_root=tmp_path / "repos", rollout_timeout=10,
    )
    await again.idle(timeout=60)
    [deploy] = await again.services.deploy_store.list_for_repo(owner, repo)
    assert deploy.state == "succeeded", deploy.result
    assert deploy.stages["build"]["outputs"]["build_id"] == build_id
    assert again.services.extras["aws_clients"].counts()["codebuild.StartBuild"] == 0
    assert clients.counts()["codebuild.StartBuild"] == before
