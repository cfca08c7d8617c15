"""The deploy job: runs the pipeline for one deploy record and keeps the record the truth.

Every stage change is saved before it is reported, so a worker that restarts
resumes from the saved stages (a started build is watched again, not started
twice) and a reporter that missed an update can catch up from the record.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.app import Extension, Services
from bot.deploys import Deploy, DeployState
from bot.github import GitHubError, NotFound
from bot.locks import LOCKS_SCHEMA, Locks, lock_holds_deploy
from bot.logs import current_deploy
from bot.pipeline.config import AppConfigError, parse_app_config
from bot.pipeline.model import (
    DeployKind,
    DeployRequest,
    PipelineDeps,
    PipelineResult,
    PlatformResources,
    PollPolicy,
    Stage,
)
from bot.pipeline.pipeline import StageFailed, ensure_tenant, run_pipeline
from bot.queue import Job, RetryLater
from bot.reporting.gates import Gate, checks_gate
from bot.settings import Settings

log = logging.getLogger(__name__)

BUILDSPECS_DIR = Path(__file__).resolve().parent.parent / "buildspecs"
WAIT_FOR_CHECKS_RECHECK = 60.0  # seconds between looks at other check suites while waiting
CONFIG_FILE = ".easydeploy.yml"


async def default_branch_config(github: Any, deploy: Deploy) -> Any:
    """The repository's `.easydeploy.yml` on its default branch (never an unmerged one), or None."""
    try:
        data = await github.request(deploy.installation_id, "GET", f"/repos/{deploy.owner}/{deploy.repo}/contents/{CONFIG_FILE}",
                                    params={"ref": deploy.default_branch})
    except NotFound:
        return None
    if not isinstance(data, dict) or data.get("type") != "file" or "content" not in data:
        return None
    try:
        return parse_app_config(base64.b64decode(data["content"]).decode("utf-8"))
    except (AppConfigError, UnicodeDecodeError, ValueError):
        return None  # the source stage reads it again and fails the deploy naming the bad key


async def wait_for_checks_gate(github: Any, deploy: Deploy) -> Gate | None:
    """For a push with `wait_for_checks: true`: the gate on the commit's other check suites, else None."""
    if deploy.kind != "deploy" or deploy.trigger != "push":
        return None
    config = await default_branch_config(github, deploy)
    if config is None or not config.wait_for_checks:
        return None
    return await checks_gate(github, deploy)


def platform_from_settings(settings: Settings, account_id: str) -> PlatformResources:
    """The shared platform's identifiers in `aws` mode (the Terraform outputs)."""
    return PlatformResources(
        region=settings.aws_region,
        account_id=account_id,
        cluster_name=settings.cluster_name or "",
        vpc_id=settings.vpc_id or "",
        private_subnet_ids=[s.strip() for s in (settings.private_subnet_ids or "").split(",") if s.strip()],
        app_security_group_id=settings.app_security_group_id or "",
        build_security_group_id=settings.build_security_group_id or "",
        alb_listener_arn=settings.alb_listener_arn or "",
        efs_file_system_id=settings.efs_file_system_id or "",
        artifact_bucket=settings.artifact_bucket or "",
        task_execution_role_arn=settings.task_execution_role_arn or "",
        permissions_boundary_arn=settings.permissions_boundary_arn or "",
        tenant_role_path=settings.tenant_role_path,
    )


def deploy_request(deploy: Deploy) -> DeployRequest:
    """The pipeline's view of a deploy record."""
    return DeployRequest(
        deploy_id=deploy.id, installation_id=deploy.installation_id, owner=deploy.owner, repo=deploy.repo,
        sha=deploy.sha, ref=deploy.ref, default_branch=deploy.default_branch, clone_url=deploy.clone_url,
        environment=deploy.environment, kind=DeployKind(deploy.kind),
        rollback_task_definition=deploy.rollback_task_definition, untrusted=deploy.untrusted,
    )


def result_record(result: PipelineResult) -> dict[str, Any]:
    """What a finished pipeline leaves on the deploy record."""
    return {
        "app_url": result.app_url,
        "image_uri": result.image_uri,
        "task_definition_arn": result.task_definition_arn,
        "build_id": result.build_id,
        "build_logs_url": result.build_logs_url,
        "failure": ({**asdict(result.failure), "stage": str(result.failure.stage)} if result.failure else None),
        "internal_error": False,
    }


def internal_error_record(deploy: Deploy, stages: dict[str, Any]) -> dict[str, Any]:
    """The result of a deploy that broke inside the service."""
    stage = next((name for name, s in stages.items() if s.get("state") == "running"), "identity")
    return {
        **deploy.result,
        "internal_error": True,
        "failure": {
            "stage": stage,
            "summary": f"internal error (deploy {deploy.id})",
            "what_to_do": "This is a fault in Easy Deploy, not in your code. Press Redeploy to try again; "
            f"if it happens again, report the deploy id {deploy.id}.",
            "log_lines": [],
        },
    }


class DeployRunner:
    """Runs deploy jobs; knows which pipelines run in this process so they can be cancelled."""

    def __init__(self, services: Services, deps_for: Any, locks: Any = None, gate: Any = None) -> None:
        self.services = services
        self.deps_for = deps_for  # (Deploy) -> PipelineDeps
        self.locks = locks
        self.gate = gate  # async (Deploy) -> bot.reporting.gates.Gate | None
        self.running: dict[str, asyncio.Task] = {}
        self.cancel_reasons: dict[str, tuple[str, str | None]] = {}

    async def run_job(self, job: Job) -> None:
        """The `deploy` job handler."""
        deploy_id = job.payload["deploy_id"]
        token = current_deploy.set(deploy_id)
        try:
            await self._run(deploy_id)
        finally:
            current_deploy.reset(token)

    async def _run(self, deploy_id: str) -> None:
        store = self.services.deploy_store
        deploy = await store.get(deploy_id)
        if deploy is None or deploy.state.finished or deploy.state is DeployState.HELD:
            return
        if deploy.kind != "build" and self.locks is not None:
            lock = await self.locks.get(deploy.owner, deploy.repo, deploy.environment)
            if lock is not None and lock_holds_deploy(lock, deploy.trigger, deploy.actor):
                reason = f"{deploy.environment} is locked by {lock.holder}" + (f": {lock.reason}" if lock.reason else "")
                await store.update(deploy.id, state=DeployState.HELD, result={**deploy.result, "held_reason": reason})
                await self._report(deploy.id)
                return
        if self.gate is not None and deploy.state is not DeployState.RUNNING:
            gate = await self.gate(deploy)
            if gate is not None and gate.decision == "wait":
                await store.update(deploy.id, state=DeployState.WAITING,
                                   result={**deploy.result, "waiting_for": gate.waiting_for, "waiting_reason": gate.reason})
                await self._report(deploy.id)
                # check_suite.completed queues it again at once; this re-check covers a missed event.
                raise RetryLater(gate.reason, delay=WAIT_FOR_CHECKS_RECHECK)
            if gate is not None and gate.decision == "cancel":
                await self._finish(deploy, DeployState.CANCELLED, {**deploy.result, "cancel_reason": gate.reason})
                return
        await store.update(deploy.id, state=DeployState.RUNNING)
        await self._report(deploy.id)
        task = asyncio.create_task(self._pipeline(deploy))
        self.running[deploy.id] = task
        try:
            result = await task
        except asyncio.CancelledError:
            if deploy.id not in self.cancel_reasons:
                raise  # shutdown: the job runs again at the next start and resumes
            reason, newer = self.cancel_reasons.pop(deploy.id)
            await self._stop_build(deploy.id)
            latest = await store.get(deploy.id) or deploy
            await self._finish(latest, DeployState.CANCELLED, {**latest.result, "cancel_reason": reason}, superseded_by=newer)
            return
        except Exception:  # noqa: BLE001 - a bug must still end the deploy
            log.exception("deploy %s failed inside the service", deploy.id)
            latest = await store.get(deploy.id) or deploy
            await self._finish(latest, DeployState.FAILED, internal_error_record(latest, latest.stages))
            return
        finally:
            self.running.pop(deploy.id, None)
        latest = await store.get(deploy.id) or deploy
        state = DeployState.SUCCEEDED if result.ok else DeployState.FAILED
        await self._finish(latest, state, {**latest.result, **result_record(result)}, stages=result.stages)

    async def _pipeline(self, deploy: Deploy) -> PipelineResult:
        async def progress(stages: dict[str, dict], changed: Stage) -> None:
            await self.services.deploy_store.update(deploy.id, stages=stages)
            await self._report(deploy.id)

        deps = self.deps_for(deploy)
        return await run_pipeline(deploy_request(deploy), deps, progress, resume=deploy.stages or None)

    async def _finish(self, deploy: Deploy, state: DeployState, result: dict[str, Any], *,
                      stages: dict | None = None, superseded_by: str | None = None) -> None:
        fields: dict[str, Any] = {"state": state, "result": result, "finished_at": time.time()}
        if stages is not None:
            fields["stages"] = stages
        if superseded_by:
            fields["superseded_by"] = superseded_by
        await self.services.deploy_store.update(deploy.id, **fields)
        self.services.metrics.deploys.labels(outcome=state.value).inc()
        log.info("deploy %s of %s@%s ended %s", deploy.id, deploy.full_name, deploy.sha[:7], state.value)
        await self._report(deploy.id)

    async def _report(self, deploy_id: str) -> None:
        deploy = await self.services.deploy_store.get(deploy_id)
        if deploy is not None:
            await self.services.deploys.report(deploy)

    async def _stop_build(self, deploy_id: str) -> None:
        deploy = await self.services.deploy_store.get(deploy_id)
        build_id = ((deploy.stages.get("build") or {}).get("outputs") or {}).get("build_id") if deploy else None
        aws = self.services.extras.get("aws_steps")
        if build_id and aws is not None:
            try:
                await aws.stop_build(build_id)
            except Exception:  # noqa: BLE001 - the build ends by itself at worst
                log.warning("could not stop build %s of cancelled deploy %s", build_id, deploy_id)

    async def cancel(self, deploy_id: str, reason: str, superseded_by: str | None = None) -> bool:
        """Cancel a deploy running in this process; False if it is not running here."""
        task = self.running.get(deploy_id)
        if task is None or task.done():
            return False
        self.cancel_reasons[deploy_id] = (reason, superseded_by)
        task.cancel()
        return True


class PipelineExtension(Extension):
    """Adds the `deploy` job: AWS clients, the sandbox platform, the pipeline."""

    def __init__(self, *, poll: PollPolicy | None = None, aws_steps: Any = None, platform: PlatformResources | None = None,
                 max_attempts: int = 5) -> None:
        self.poll = poll
        self.aws_steps = aws_steps
        self.platform = platform
        self.max_attempts = max_attempts
        self._stop_emulator: Any = None
        self.runner: DeployRunner | None = None

    def schema(self, store: Any) -> None:
        store.add_schema(LOCKS_SCHEMA)  # deploys are held while their environment is locked

    async def setup(self, services: Services) -> None:
        settings = services.settings
        if self.aws_steps is None:
            await asyncio.to_thread(self._make_aws, services)
        services.extras["aws_steps"] = self.aws_steps
        services.extras["platform"] = self.platform

        def deps_for(deploy: Deploy) -> PipelineDeps:
            async def get_token() -> str:
                try:
                    return await services.github.installation_token(deploy.installation_id)
                except GitHubError as exc:
                    raise StageFailed(
                        f"GitHub refused an access token for the repository ({exc.status or 'no answer'})",
                        "Check that the Easy Deploy app is still installed on the repository, then redeploy.",
                    ) from exc

            values: dict[str, Any] = dict(
                aws=self.aws_steps, platform=self.platform, repos_root=settings.effective_repos_root.resolve(),
                apps_domain=settings.effective_apps_domain, buildspecs_dir=BUILDSPECS_DIR, get_token=get_token,
                rollout_timeout=settings.rollout_timeout,
            )
            if self.poll is not None:
                values["poll"] = self.poll
            elif settings.sandbox:
                values["poll"] = PollPolicy(initial=0.1, maximum=1.0, factor=1.5)
            return PipelineDeps(**values)

        locks = Locks(services.store)
        async def gate(deploy: Deploy) -> Any:
            return await wait_for_checks_gate(services.github, deploy)

        self.runner = DeployRunner(services, deps_for, locks=locks, gate=gate)
        services.extras["deploy_runner"] = self.runner
        services.job_handlers["deploy"] = self.runner.run_job
        services.deploys.runner = self.runner

        async def provision(installation_id: int, owner: str) -> None:
            await ensure_tenant(self.aws_steps, installation_id, owner)

        services.deploys.set_provisioner(provision)

    def _make_aws(self, services: Services) -> None:
        from bot.pipeline.aws import BotoAwsSteps
        from bot.pipeline.awsclients import make_clients
        from bot.pipeline.sandbox import provision_sandbox, start_embedded_moto

        settings = services.settings
        endpoint = settings.aws_endpoint_url
        creds = None
        if settings.sandbox:
            if endpoint is None:
                endpoint, self._stop_emulator = start_embedded_moto()
            creds = ("sandbox", "sandbox")  # the emulator takes any credentials
        services.extras["aws_endpoint"] = endpoint
        clients = make_clients(settings.aws_region, endpoint, max_attempts=self.max_attempts, static_credentials=creds)
        if self.platform is None:
            if settings.sandbox:
                self.platform = provision_sandbox(clients, settings.aws_region)
            else:
                account = clients.sts.get_caller_identity()["Account"]
                self.platform = platform_from_settings(settings, account)
        services.extras["aws_clients"] = clients
        self.aws_steps = BotoAwsSteps(clients, self.platform, emulator=settings.sandbox)

    def routes(self, app: web.Application, services: Services) -> None:
        return None

    async def close(self, services: Services) -> None:
        if self._stop_emulator is not None:
            await asyncio.to_thread(self._stop_emulator)
            self._stop_emulator = None
