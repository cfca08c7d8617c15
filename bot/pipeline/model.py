"""Plain data shared by the deploy pipeline and the worker that calls it."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Protocol

if TYPE_CHECKING:
    from bot.pipeline.aws import AwsSteps


class Stage(StrEnum):
    """The pipeline's stages, in the order they run."""

    IDENTITY = "identity"
    SOURCE = "source"
    BUILD = "build"
    RELEASE = "release"


class StageState(StrEnum):
    """Where a stage stands."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


class DeployKind(StrEnum):
    """What a deploy does: a full deploy, a PR build check, or a rollback."""

    DEPLOY = "deploy"
    # PR build check: identity, source, build; no release.
    BUILD_ONLY = "build"
    # Runs rollback_task_definition again; skips source and build.
    ROLLBACK = "rollback"


@dataclass(frozen=True)
class DeployRequest:
    """One deploy of one commit of one repository."""

    deploy_id: str
    installation_id: int
    owner: str
    repo: str
    sha: str
    ref: str
    default_branch: str
    clone_url: str
    environment: str = "production"
    kind: DeployKind = DeployKind.DEPLOY
    rollback_task_definition: str | None = None
    untrusted: bool = False


@dataclass
class Failure:
    """What broke, in one sentence, and what the person should do about it."""

    stage: Stage
    summary: str
    what_to_do: str
    log_lines: list[str] = field(default_factory=list)


@dataclass
class PipelineResult:
    """The outcome of run_pipeline; stages is the same dict the progress sink saw."""

    ok: bool
    stages: dict[str, dict]
    app_url: str | None = None
    image_uri: str | None = None
    task_definition_arn: str | None = None
    build_id: str | None = None
    build_logs_url: str | None = None
    failure: Failure | None = None


class ProgressSink(Protocol):
    """Called after every stage state change and output update."""

    async def __call__(self, stages: dict[str, dict], changed: Stage) -> None: ...


@dataclass(frozen=True)
class PollPolicy:
    """Backoff for status polling (builds, rollouts)."""

    initial: float = 2.0
    maximum: float = 30.0
    factor: float = 1.5

    def delays(self):
        """Yield successive sleep intervals, growing up to the maximum."""
        delay = self.initial
        while True:
            yield delay
            delay = min(delay * self.factor, self.maximum)


@dataclass(frozen=True)
class PlatformResources:
    """The shared platform resources (Terraform outputs in aws mode, the sandbox otherwise)."""

    region: str
    account_id: str
    cluster_name: str
    vpc_id: str
    private_subnet_ids: list[str]
    app_security_group_id: str
    build_security_group_id: str
    alb_listener_arn: str
    efs_file_system_id: str
    artifact_bucket: str
    task_execution_role_arn: str
    permissions_boundary_arn: str
    tenant_role_path: str = "/easydeploy/tenants/"


@dataclass(frozen=True)
class TenantIdentity:
    """A tenant's (installation's) roles and EFS access point."""

    installation_id: int
    owner: str
    build_role_arn: str
    task_role_arn: str
    access_point_id: str
    access_point_arn: str


@dataclass
class PipelineDeps:
    """Everything run_pipeline needs from the outside world."""

    aws: "AwsSteps"
    platform: PlatformResources
    repos_root: Path
    apps_domain: str
    buildspecs_dir: Path
    get_token: Callable[[], Awaitable[str]]
    rollout_timeout: float = 900.0
    build_timeout: float = 3600.0
    git_timeout: float = 300.0
    poll: PollPolicy = field(default_factory=PollPolicy)
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep
