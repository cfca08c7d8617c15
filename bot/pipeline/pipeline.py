"""run_pipeline: the deploy state machine (identity → source → build → release) over AwsSteps and git."""

from __future__ import annotations

import copy
import logging
import posixpath
from dataclasses import asdict
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from bot.pipeline import policies
from bot.pipeline.aws import (
    BUILD_NOT_FOUND,
    TAG_RELEASE_FP,
    TAG_RELEASE_TD,
    TAG_SCALING,
    AwsSteps,
    BuildInfo,
    BuildStatus,
    RolloutState,
    TaskSpec,
)
from bot.pipeline.config import AppConfig, AppConfigError, parse_app_config, resolve_secrets
from bot.pipeline.model import (
    DeployKind,
    DeployRequest,
    Failure,
    PipelineDeps,
    PipelineResult,
    ProgressSink,
    Stage,
    StageState,
    TenantIdentity,
)
from bot.pipeline.names import AppNames, app_names, app_url
from bot.pipeline.source import SourceError, ensure_dockerfile, sync_repository, validate_owner, validate_repo, validate_sha

log = logging.getLogger(__name__)

STAGE_ORDER = (Stage.IDENTITY, Stage.SOURCE, Stage.BUILD, Stage.RELEASE)
BUILD_MOUNT = "/mnt/repos"
BUILD_LOG_LINES = 30
RETRY_ADVICE = "This is usually temporary (AWS throttling or an outage): retry the deploy. If it keeps failing, tell the platform team and quote the deploy id."


class StageFailed(Exception):
    """An expected failure of a stage, carrying what to tell the person."""

    def __init__(self, summary: str, what_to_do: str, log_lines: list[str] | None = None):
        super().__init__(summary)
        self.summary = summary
        self.what_to_do = what_to_do
        self.log_lines = log_lines or []


def skipped_stages(kind: DeployKind) -> set[Stage]:
    """Stages a kind of deploy does not run."""
    if kind == DeployKind.BUILD_ONLY:
        return {Stage.RELEASE}
    if kind == DeployKind.ROLLBACK:
        return {Stage.SOURCE, Stage.BUILD}
    return set()


def new_stage() -> dict[str, Any]:
    """A pending stage record."""
    return {"state": StageState.PENDING.value, "started_at": None, "finished_at": None, "message": "", "outputs": {}}


def initial_stages(kind: DeployKind, resume: dict[str, dict] | None) -> dict[str, dict]:
    """Stage records for a run: the saved ones when resuming, pending ones otherwise."""
    stages = {}
    for stage in STAGE_ORDER:
        saved = (resume or {}).get(stage.value)
        record = {**new_stage(), **copy.deepcopy(saved)} if saved else new_stage()
        if stage in skipped_stages(kind):
            record["state"] = StageState.SKIPPED.value
        stages[stage.value] = record
    return stages


def aws_failure_text(exc: Exception) -> tuple[str, str]:
    """Summary and advice for an AWS error that survived the retries."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = err.get("Code", "Error")
        summary = f"AWS {exc.operation_name} failed: {code}: {err.get('Message', '')}".rstrip(": ")
        if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation"):
            return summary, "The platform's AWS permissions are missing something: tell the platform team and quote the deploy id."
        return summary, RETRY_ADVICE
    return f"AWS could not be reached: {exc}", RETRY_ADVICE


class _Run:
    """One execution of the pipeline for one request."""

    def __init__(self, req: DeployRequest, deps: PipelineDeps, progress: ProgressSink, resume: dict[str, dict] | None):
        self.req = req
        self.deps = deps
        self.aws: AwsSteps = deps.aws
        self.progress = progress
        self.stages = initial_stages(req.kind, resume)
        self.names: AppNames = app_names(req.installation_id, req.owner, req.repo, req.environment)

    def out(self, stage: Stage) -> dict[str, Any]:
        return self.stages[stage.value]["outputs"]

    async def report(self, stage: Stage) -> None:
        await self.progress(copy.deepcopy(self.stages), stage)

    async def set_state(self, stage: Stage, state: StageState, message: str | None = None) -> None:
        record = self.stages[stage.value]
        record["state"] = state.value
        now = self.deps.wall_clock()
        if state == StageState.RUNNING and record.get("started_at") is None:
            record["started_at"] = now
        if state in (StageState.SUCCEEDED, StageState.FAILED, StageState.CANCELLED):
            record["finished_at"] = now
        if message is not None:
            record["message"] = message
        await self.report(stage)

    async def put(self, stage: Stage, message: str | None = None, **outputs: Any) -> None:
        record = self.stages[stage.value]
        record["outputs"].update(outputs)
        if message is not None:
            record["message"] = message
        await self.report(stage)

    # -- the state machine ------------------------------------------------------------------

    async def run(self) -> PipelineResult:
        try:
            validate_owner(self.req.owner)
            validate_repo(self.req.repo)
            if self.req.kind != DeployKind.ROLLBACK:
                validate_sha(self.req.sha)
            elif not self.req.rollback_task_definition:
                raise ValueError("a rollback needs the previous task definition")
        except ValueError as exc:
            return await self.fail(Stage.IDENTITY, Failure(Stage.IDENTITY, str(exc), "Check the repository name and commit and try again."))
        steps = {
            Stage.IDENTITY: self.identity,
            Stage.SOURCE: self.source,
            Stage.BUILD: self.build,
            Stage.RELEASE: self.release,
        }
        for stage in STAGE_ORDER:
            state = self.stages[stage.value]["state"]
            if state in (StageState.SUCCEEDED.value, StageState.SKIPPED.value):
                continue
            await self.set_state(stage, StageState.RUNNING)
            try:
                message = await steps[stage]()
            except StageFailed as exc:
                return await self.fail(stage, Failure(stage, exc.summary, exc.what_to_do, exc.log_lines))
            except (ClientError, BotoCoreError) as exc:
                summary, advice = aws_failure_text(exc)
                log.warning("deploy %s: %s stage: %s", self.req.deploy_id, stage.value, summary)
                return await self.fail(stage, Failure(stage, summary, advice))
            await self.set_state(stage, StageState.SUCCEEDED, message)
        return self.result(ok=True, failure=None)

    async def fail(self, stage: Stage, failure: Failure) -> PipelineResult:
        await self.set_state(stage, StageState.FAILED, failure.summary)
        for later in STAGE_ORDER[STAGE_ORDER.index(stage) + 1:]:
            if self.stages[later.value]["state"] in (StageState.PENDING.value, StageState.RUNNING.value):
                await self.set_state(later, StageState.CANCELLED)
        return self.result(ok=False, failure=failure)

    def result(self, ok: bool, failure: Failure | None) -> PipelineResult:
        build = self.out(Stage.BUILD)
        release = self.out(Stage.RELEASE)
        return PipelineResult(
            ok=ok,
            stages=self.stages,
            app_url=release.get("app_url"),
            image_uri=build.get("image_uri"),
            task_definition_arn=release.get("task_definition_arn"),
            build_id=build.get("build_id"),
            build_logs_url=build.get("logs_url"),
            failure=failure,
        )

    def identity_outputs(self) -> TenantIdentity:
        return TenantIdentity(**self.out(Stage.IDENTITY))

    # -- stages -----------------------------------------------------------------------------

    async def identity(self) -> str:
        identity = await self.aws.ensure_tenant_identity(self.req.installation_id, self.req.owner)
        await self.put(Stage.IDENTITY, **asdict(identity))
        return f"tenant roles ready for installation {self.req.installation_id}"

    async def source(self) -> str:
        req = self.req
        token = await self.deps.get_token()
        try:
            synced = await sync_repository(
                self.deps.repos_root, req.owner, req.repo, req.sha, req.default_branch, req.clone_url, token,
                timeout=self.deps.git_timeout,
            )
        except SourceError as exc:
            raise StageFailed(exc.summary, exc.what_to_do, exc.log_lines) from None
        except ValueError as exc:
            raise StageFailed(str(exc), "Check the repository, branch and commit and try again.") from None
        try:
            config = parse_app_config(synced.config_text)
            resolve_secrets(config, req.installation_id)
        except AppConfigError as exc:
            raise StageFailed(str(exc), f"Fix .easydeploy.yml on the {req.default_branch} branch and push again.") from None
        try:
            framework = ensure_dockerfile(synced.path, config, self.deps.buildspecs_dir / "dockerfiles")
        except SourceError as exc:
            raise StageFailed(exc.summary, exc.what_to_do, exc.log_lines) from None
        except ValueError as exc:
            raise StageFailed(str(exc), "Fix `root` or `dockerfile` in .easydeploy.yml.") from None
        await self.put(
            Stage.SOURCE,
            path=str(synced.path),
            config=config.model_dump(),
            config_found=synced.config_text is not None,
            generated_dockerfile=framework,
        )
        detail = f"; generated a {framework} Dockerfile" if framework else ""
        return f"checked out {req.sha[:12]}{detail}"

    def config(self) -> AppConfig:
        return AppConfig.model_validate(self.out(Stage.SOURCE)["config"])

    def build_env(self, image_uri: str) -> dict[str, str]:
        req, names, config = self.req, self.names, self.config()
        checkout = f"{BUILD_MOUNT}/{req.owner}/{req.repo}"
        app_dir = posixpath.normpath(posixpath.join(checkout, config.root))
        dockerfile = posixpath.join(checkout, config.dockerfile) if config.dockerfile else posixpath.join(app_dir, "Dockerfile")
        # Only these variables: never the app's env or secrets (a fork PR's build must get none).
        return {
            "IMAGE_URI": image_uri,
            "IMAGE_TAG": req.sha,
            "ECR_REGISTRY": image_uri.split("/", 1)[0],
            "APP_DIR": app_dir,
            "DOCKERFILE": dockerfile,
            "ARTIFACT_BUCKET": self.deps.platform.artifact_bucket,
            "ARTIFACT_PREFIX": names.artifact_prefix(req.sha),
        }

    def image_uri(self) -> str:
        p = self.deps.platform
        return f"{p.account_id}.dkr.ecr.{p.region}.amazonaws.com/{self.names.ecr_repository}:{self.req.sha}"

    async def build(self) -> str:
        outputs = self.out(Stage.BUILD)
        build_id = outputs.get("build_id")
        info = None
        if build_id:
            # A worker restarted mid-build: watch the build it started instead of starting another.
            info = await self.aws.get_build(build_id)
            if info.status == BuildStatus.FAULT and info.phase == BUILD_NOT_FOUND:
                # AWS has no such build (in the sandbox: the emulator restarted with the service).
                log.warning("deploy %s: build %s is gone; starting a new one", self.req.deploy_id, build_id)
                info = None
        if info is None:
            existing = await self.aws.find_image(self.names, self.req.sha)
            if existing:
                await self.put(Stage.BUILD, image_uri=existing, reused_image=True)
                return f"image for {self.req.sha[:12]} already built"
            buildspec = (self.deps.buildspecs_dir / "buildspec.yml").read_text()
            project = await self.aws.ensure_build_project(self.names, self.identity_outputs(), buildspec)
            image_uri = self.image_uri()
            info = await self.aws.start_build(project, self.build_env(image_uri), buildspec, idempotency_key=self.req.deploy_id)
            await self.put(
                Stage.BUILD, f"build {info.build_id} started",
                build_id=info.build_id, logs_url=info.logs_url, image_uri=image_uri, untrusted=self.req.untrusted,
            )
        info = await self.watch_build(info)
        if info.status != BuildStatus.SUCCEEDED:
            lines = await self.aws.build_log_tail(self.names, info, BUILD_LOG_LINES)
            where = f" in phase {info.phase}" if info.phase and info.phase != "COMPLETED" else ""
            raise StageFailed(
                f"the build {info.status.value.lower().replace('_', ' ')}{where}",
                "Read the build log lines below, fix the Dockerfile or the code, and push again.",
                lines,
            )
        return f"built {outputs.get('image_uri', '')}"

    async def watch_build(self, info: BuildInfo) -> BuildInfo:
        deadline = self.deps.clock() + self.deps.build_timeout
        delays = self.deps.poll.delays()
        last_phase = None
        while not info.done:
            if self.deps.clock() > deadline:
                raise StageFailed(
                    f"the build did not finish within {self.deps.build_timeout / 60:.0f} minutes",
                    "Retry the deploy; if builds keep timing out, make the build faster or tell the platform team.",
                )
            if info.phase != last_phase:
                last_phase = info.phase
                await self.put(Stage.BUILD, f"build {info.phase.lower() or 'queued'}", phase=info.phase)
            await self.deps.sleep(next(delays))
            info = await self.aws.get_build(info.build_id)
        if info.logs_url and not self.out(Stage.BUILD).get("logs_url"):
            await self.put(Stage.BUILD, logs_url=info.logs_url)
        return info

    async def release(self) -> str:
        req, names, aws = self.req, self.names, self.aws
        outputs = self.out(Stage.RELEASE)
        host = names.host(self.deps.apps_domain)
        rollback = req.kind == DeployKind.ROLLBACK
        config: AppConfig | None = None
        if rollback:
            port, health_path = await aws.task_definition_settings(req.rollback_task_definition or "")
        else:
            config = self.config()
            port, health_path = config.port, config.health_check_path
        infra = await aws.ensure_release_infra(names, host, port, health_path)
        await self.put(Stage.RELEASE, target_group_arn=infra.target_group_arn, rule_arn=infra.rule_arn, priority=infra.priority)
        current = await aws.describe_service(names)

        wanted_tags: dict[str, str] = {}
        td = outputs.get("task_definition_arn")
        if rollback:
            td = req.rollback_task_definition
        elif config is not None:
            spec = TaskSpec(
                image_uri=self.out(Stage.BUILD)["image_uri"],
                port=config.port,
                cpu=config.cpu,
                memory=config.memory,
                health_check_path=config.health_check_path,
                env={} if req.untrusted else dict(config.env),
                secrets={} if req.untrusted else resolve_secrets(config, req.installation_id),
                task_role_arn=self.identity_outputs().task_role_arn,
            )
            fp = policies.fingerprint(asdict(spec), names.app, self.deps.platform.task_execution_role_arn)
            if not td and current is not None and current.tags.get(TAG_RELEASE_FP) == fp and current.tags.get(TAG_RELEASE_TD):
                td = current.tags[TAG_RELEASE_TD]  # the same release was registered before
            if not td and current is None:
                # No service yet (first deploy, or its creation failed): reuse a matching revision.
                td = await aws.find_task_definition(names, fp)
            if not td:
                td = await aws.register_task_definition(names, spec, fp)
            wanted_tags[TAG_RELEASE_FP] = fp
            # The release tags keep naming the latest build's revision, so deploying that build
            # again after a rollback moves the service forward without registering anything.
            wanted_tags[TAG_RELEASE_TD] = td
        assert td is not None
        await self.put(Stage.RELEASE, "rolling out", task_definition_arn=td, app_url=app_url(names.app, self.deps.apps_domain))

        desired = config.min_instances if config else max(current.desired_count if current else 1, 1)
        action = await aws.deploy_service(names, td, infra, port, desired, current)
        if config is not None:
            scaling = f"{config.min_instances}-{config.max_instances}"
            if current is None or current.tags.get(TAG_SCALING) != scaling:
                await aws.ensure_autoscaling(names, config.min_instances, config.max_instances)
                wanted_tags[TAG_SCALING] = scaling
        known = current.tags if current is not None and action != "created" else {}
        if any(known.get(k) != v for k, v in wanted_tags.items()):
            await aws.tag_service(names, current.arn if current else None, wanted_tags)
        await self.put(Stage.RELEASE, f"service {action}", service_action=action)
        await self.wait_rollout(td, infra.target_group_arn)
        return f"{host} serves {td.rsplit('/', 1)[-1]}"

    async def wait_rollout(self, td: str, target_group_arn: str) -> None:
        deadline = self.deps.clock() + self.deps.rollout_timeout
        delays = self.deps.poll.delays()
        revision = td.rsplit("/", 1)[-1]
        while True:
            rollout = await self.aws.get_rollout(self.names, td)
            if rollout.state == RolloutState.COMPLETED:
                return
            if rollout.state == RolloutState.FAILED:
                lines = await self.aws.describe_failure(self.names, target_group_arn)
                raise StageFailed(
                    f"the rollout of {revision} failed: {rollout.reason}",
                    "ECS rolled back to the previous revision, which keeps serving. Read the reasons below, fix the app and push again.",
                    lines,
                )
            if self.deps.clock() > deadline:
                lines = await self.aws.describe_failure(self.names, target_group_arn)
                raise StageFailed(
                    f"the rollout of {revision} did not finish within {self.deps.rollout_timeout / 60:.0f} minutes",
                    "The new tasks never became healthy. Check the health check path and port in .easydeploy.yml and the reasons below.",
                    lines,
                )
            await self.put(Stage.RELEASE, f"rolling out: {rollout.reason}" if rollout.reason else "rolling out")
            await self.deps.sleep(next(delays))


async def run_pipeline(
    req: DeployRequest, deps: PipelineDeps, progress: ProgressSink, resume: dict[str, dict] | None = None,
) -> PipelineResult:
    """Run (or resume) a deploy; expected failures come back as ok=False with a Failure, never as exceptions."""
    return await _Run(req, deps, progress, resume).run()


async def ensure_tenant(aws: AwsSteps, installation_id: int, owner: str) -> TenantIdentity:
    """Provision a tenant's identity (called when the App is installed, and again before each deploy)."""
    validate_owner(owner)
    return await aws.ensure_tenant_identity(installation_id, owner)
