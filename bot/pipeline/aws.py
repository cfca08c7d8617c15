"""The pipeline's narrow AWS interface (AwsSteps) and its boto3 implementation."""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from botocore.exceptions import ClientError

from bot.pipeline import policies
from bot.pipeline.awsclients import AwsClients
from bot.pipeline.model import PlatformResources, TenantIdentity
from bot.pipeline.names import (
    TAG_INSTALLATION,
    AppNames,
    build_role_name,
    resource_tags,
    task_role_name,
)

TAG_FINGERPRINT = "easydeploy:fingerprint"
TAG_ACCESS_POINT = "easydeploy:access-point"
TAG_RELEASE_FP = "easydeploy:release-fingerprint"
TAG_RELEASE_TD = "easydeploy:release-task-definition"
TAG_SCALING = "easydeploy:scaling"
TENANT_BUILD_POLICY = "tenant-build"
BUILD_IMAGE = "aws/codebuild/amazonlinux2-x86_64-standard:5.0"
LISTENER_PRIORITY_MAX = 50000
PRIORITY_PROBES = 64
LOG_RETENTION_DAYS = 30
CONTAINER_PORT_PROTOCOL = "tcp"
CPU_TARGET_PERCENT = 60.0
ECR_KEEP_IMAGES = 20
MAX_STOPPED_TASKS = 5
# Where the checkouts live on the file system; the service mounts this folder at /mnt/repos.
EFS_REPOS_DIR = "/repos"
# get_build's phase for a build AWS does not know (an emulator that restarted, a deleted project).
BUILD_NOT_FOUND = "build not found"


class BuildStatus(StrEnum):
    """CodeBuild's buildStatus values."""

    IN_PROGRESS = "IN_PROGRESS"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    FAULT = "FAULT"
    STOPPED = "STOPPED"
    TIMED_OUT = "TIMED_OUT"


class RolloutState(StrEnum):
    """How an ECS deployment of one task definition stands."""

    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


@dataclass(frozen=True)
class BuildInfo:
    """A CodeBuild build as the pipeline needs it."""

    build_id: str
    status: BuildStatus
    phase: str = ""
    log_group: str | None = None
    log_stream: str | None = None
    logs_url: str | None = None

    @property
    def done(self) -> bool:
        """Whether the build has ended."""
        return self.status != BuildStatus.IN_PROGRESS


@dataclass(frozen=True)
class ReleaseInfra:
    """The app's target group and its host-header rule on the shared listener."""

    target_group_arn: str
    rule_arn: str
    priority: int


@dataclass(frozen=True)
class ServiceInfo:
    """An existing ECS service."""

    arn: str
    task_definition_arn: str
    desired_count: int
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Rollout:
    """A rollout's state and ECS's reason for it."""

    state: RolloutState
    reason: str = ""


@dataclass(frozen=True)
class TaskSpec:
    """What goes into a task definition revision."""

    image_uri: str
    port: int
    cpu: int
    memory: int
    health_check_path: str
    env: dict[str, str]
    secrets: dict[str, str]  # env var name → full SSM parameter name
    task_role_arn: str


class AwsSteps(Protocol):
    """Stage-shaped AWS operations; each is idempotent and safe to call again after a crash."""

    async def ensure_tenant_identity(self, installation_id: int, owner: str) -> TenantIdentity:
        """Create or update the tenant's roles and EFS access point (cheap when nothing changed)."""
        ...

    async def find_image(self, names: AppNames, tag: str) -> str | None:
        """Ensure the app's ECR repository; return the image URI if `tag` was already pushed."""
        ...

    async def ensure_build_project(self, names: AppNames, identity: TenantIdentity, buildspec: str) -> str:
        """Ensure the app's log group, build-logs policy and CodeBuild project; return the project name."""
        ...

    async def start_build(self, project: str, env: dict[str, str], buildspec: str, idempotency_key: str) -> BuildInfo:
        """Start a build with our buildspec and variables."""
        ...

    async def stop_build(self, build_id: str) -> None:
        """Stop a running build; an already finished build is left as it is."""
        ...

    async def get_build(self, build_id: str) -> BuildInfo:
        """A build's current status (polled)."""
        ...

    async def build_log_tail(self, names: AppNames, build: BuildInfo, lines: int = 30) -> list[str]:
        """The last lines of a build's CloudWatch log."""
        ...

    async def ensure_release_infra(self, names: AppNames, host: str, port: int, health_check_path: str) -> ReleaseInfra:
        """Ensure the app log group, target group and host-header listener rule."""
        ...

    async def describe_service(self, names: AppNames) -> ServiceInfo | None:
        """The app's ECS service, or None if it does not exist."""
        ...

    async def register_task_definition(self, names: AppNames, spec: TaskSpec, fingerprint: str = "") -> str:
        """Register a new task definition revision (tagged with its fingerprint); return its ARN."""
        ...

    async def task_definition_settings(self, task_definition_arn: str) -> tuple[int, str]:
        """Port and health check path of an existing revision (for rollbacks)."""
        ...

    async def find_task_definition(self, names: AppNames, fingerprint: str) -> str | None:
        """The family's latest revision if it was registered with this fingerprint, else None."""
        ...

    async def deploy_service(
        self, names: AppNames, task_definition_arn: str, infra: ReleaseInfra, port: int,
        desired_count: int, current: ServiceInfo | None,
    ) -> str:
        """Create the service or point it at the revision; returns "created", "updated" or "unchanged"."""
        ...

    async def tag_service(self, names: AppNames, service_arn: str | None, tags: dict[str, str]) -> None:
        """Set bookkeeping tags on the service."""
        ...

    async def ensure_autoscaling(self, names: AppNames, min_count: int, max_count: int) -> None:
        """Target-tracking autoscaling on CPU between min and max tasks."""
        ...

    async def get_rollout(self, names: AppNames, task_definition_arn: str) -> Rollout:
        """How the rollout of this revision stands (polled)."""
        ...

    async def describe_failure(self, names: AppNames, target_group_arn: str | None) -> list[str]:
        """Stopped tasks' reasons, target health and the app's last log lines."""
        ...


def _code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def _tag_list(tags: dict[str, str], key: str = "Key", value: str = "Value") -> list[dict[str, str]]:
    return [{key: k, value: v} for k, v in tags.items()]


def _tag_dict(tags: list[dict[str, str]] | None) -> dict[str, str]:
    out = {}
    for tag in tags or []:
        out[tag.get("Key", tag.get("key", ""))] = tag.get("Value", tag.get("value", ""))
    return out


def _priority_start(app: str) -> int:
    """Deterministic first-choice listener priority for an app (probing resolves collisions)."""
    return 1 + int(hashlib.sha256(app.encode()).hexdigest()[:8], 16) % LISTENER_PRIORITY_MAX


def health_check_command(port: int, path: str) -> list[str]:
    """Container health check that works in slim images without curl (path is validated URL-safe)."""
    url = f"http://localhost:{port}{path}"
    return [
        "CMD-SHELL",
        f"curl -fsS -o /dev/null '{url}' || wget -q -O /dev/null '{url}' || "
        f"python3 -c \"import urllib.request;urllib.request.urlopen('{url}',timeout=4)\" || "
        f"node -e \"fetch('{url}').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))\" || exit 1",
    ]


class BotoAwsSteps:
    """AwsSteps over boto3; each public method runs its blocking calls in a worker thread."""

    def __init__(self, clients: AwsClients, platform: PlatformResources, *, emulator: bool = False):
        self.c = clients
        self.p = platform
        # moto runs no tasks and never adds deployments on update_service; see _rollout.
        self.emulator = emulator

    # -- identity ---------------------------------------------------------------------------

    async def ensure_tenant_identity(self, installation_id: int, owner: str) -> TenantIdentity:
        """Create or update the tenant's roles and EFS access point (two get_role calls when unchanged)."""
        return await asyncio.to_thread(self._ensure_tenant_identity, installation_id, owner)

    def _get_role(self, name: str) -> dict[str, Any] | None:
        try:
            return self.c.iam.get_role(RoleName=name)["Role"]
        except ClientError as exc:
            if _code(exc) == "NoSuchEntity":
                return None
            raise

    def _access_point(self, installation_id: int, owner: str) -> tuple[str, str]:
        fs = self.p.efs_file_system_id
        for ap in self.c.efs.describe_access_points(FileSystemId=fs).get("AccessPoints", []):
            if _tag_dict(ap.get("Tags")).get(TAG_INSTALLATION) == str(installation_id):
                return ap["AccessPointId"], ap["AccessPointArn"]
        ap = self.c.efs.create_access_point(
            # The client token makes a retried create return the same access point.
            ClientToken=f"ed-{installation_id}",
            FileSystemId=fs,
            # The tenant sees only its owner folder: /mnt/repos/<owner>/<repo> on the service side,
            # which mounts the file system's /repos (terraform/efs.tf, the service access point).
            RootDirectory={"Path": f"{EFS_REPOS_DIR}/{owner}", "CreationInfo": {"OwnerUid": 1000, "OwnerGid": 1000, "Permissions": "0755"}},
            PosixUser={"Uid": 1000, "Gid": 1000},
            Tags=_tag_list({"Name": f"ed-{installation_id}", **resource_tags(installation_id, owner)}),
        )
        return ap["AccessPointId"], ap["AccessPointArn"]

    def _ensure_role(self, name: str, service: str, tags: dict[str, str]) -> tuple[dict[str, Any], bool]:
        role = self._get_role(name)
        if role is not None:
            boundary = (role.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn")
            if boundary != self.p.permissions_boundary_arn:
                self.c.iam.put_role_permissions_boundary(RoleName=name, PermissionsBoundary=self.p.permissions_boundary_arn)
            return role, False
        try:
            role = self.c.iam.create_role(
                RoleName=name,
                Path=self.p.tenant_role_path,
                AssumeRolePolicyDocument=json.dumps(policies.trust_policy(service)),
                PermissionsBoundary=self.p.permissions_boundary_arn,
                Description="Easy Deploy tenant role",
                MaxSessionDuration=3600,
                Tags=_tag_list(tags),
            )["Role"]
            return role, True
        except ClientError as exc:
            if _code(exc) != "EntityAlreadyExists":  # a concurrent deploy of the same tenant won
                raise
            return self._get_role(name) or {}, False

    def _ensure_tenant_identity(self, installation_id: int, owner: str) -> TenantIdentity:
        tags = resource_tags(installation_id, owner)
        build_name = build_role_name(installation_id)
        build, _ = self._ensure_role(build_name, "codebuild.amazonaws.com", tags)
        build_tags = _tag_dict(build.get("Tags"))
        ap_id = build_tags.get(TAG_ACCESS_POINT)
        if ap_id:
            ap_arn = f"arn:aws:elasticfilesystem:{self.p.region}:{self.p.account_id}:access-point/{ap_id}"
        else:
            ap_id, ap_arn = self._access_point(installation_id, owner)
        doc = policies.tenant_build_policy(self.p, installation_id, ap_arn)
        wanted = policies.fingerprint(doc)
        if build_tags.get(TAG_FINGERPRINT) != wanted or build_tags.get(TAG_ACCESS_POINT) != ap_id:
            self.c.iam.put_role_policy(RoleName=build_name, PolicyName=TENANT_BUILD_POLICY, PolicyDocument=json.dumps(doc))
            # Tagged after the policy is in place, so a crash in between is repaired next time.
            self.c.iam.tag_role(RoleName=build_name, Tags=_tag_list({TAG_FINGERPRINT: wanted, TAG_ACCESS_POINT: ap_id}))
        task, _ = self._ensure_role(task_role_name(installation_id), "ecs-tasks.amazonaws.com", tags)
        return TenantIdentity(
            installation_id=installation_id, owner=owner, build_role_arn=build["Arn"], task_role_arn=task["Arn"],
            access_point_id=ap_id, access_point_arn=ap_arn,
        )

    # -- build ------------------------------------------------------------------------------

    def image_uri(self, names: AppNames, tag: str) -> str:
        """Registry URI of an app image."""
        return f"{self.p.account_id}.dkr.ecr.{self.p.region}.amazonaws.com/{names.ecr_repository}:{tag}"

    async def find_image(self, names: AppNames, tag: str) -> str | None:
        """Ensure the app's ECR repository; return the image URI if `tag` was already pushed."""
        return await asyncio.to_thread(self._find_image, names, tag)

    def _find_image(self, names: AppNames, tag: str) -> str | None:
        try:
            found = self.c.ecr.describe_images(repositoryName=names.ecr_repository, imageIds=[{"imageTag": tag}])
            return self.image_uri(names, tag) if found.get("imageDetails") else None
        except ClientError as exc:
            code = _code(exc)
            if code == "ImageNotFoundException":
                return None
            if code != "RepositoryNotFoundException":
                raise
        try:
            self.c.ecr.create_repository(
                repositoryName=names.ecr_repository,
                imageTagMutability="IMMUTABLE",
                imageScanningConfiguration={"scanOnPush": True},
                encryptionConfiguration={"encryptionType": "AES256"},
                tags=_tag_list(names.tags()),
            )
        except ClientError as exc:
            if _code(exc) != "RepositoryAlreadyExistsException":
                raise
        lifecycle = {
            "rules": [
                {
                    "rulePriority": 1,
                    "description": f"keep the last {ECR_KEEP_IMAGES} images",
                    "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": ECR_KEEP_IMAGES},
                    "action": {"type": "expire"},
                }
            ]
        }
        self.c.ecr.put_lifecycle_policy(repositoryName=names.ecr_repository, lifecyclePolicyText=json.dumps(lifecycle))
        return None

    def _ensure_log_group(self, group: str, tags: dict[str, str]) -> None:
        try:
            self.c.logs.create_log_group(logGroupName=group, tags=tags)
        except ClientError as exc:
            if _code(exc) != "ResourceAlreadyExistsException":
                raise
        self.c.logs.put_retention_policy(logGroupName=group, retentionInDays=LOG_RETENTION_DAYS)

    async def ensure_build_project(self, names: AppNames, identity: TenantIdentity, buildspec: str) -> str:
        """Ensure the app's log group, build-logs policy and CodeBuild project; return the project name."""
        return await asyncio.to_thread(self._ensure_build_project, names, identity, buildspec)

    def _project_spec(self, names: AppNames, identity: TenantIdentity, buildspec: str) -> dict[str, Any]:
        owner = names.owner
        return {
            "name": names.codebuild_project,
            "description": f"Easy Deploy builds of {names.owner}/{names.repo}",
            # moto insists on a location even for NO_SOURCE; AWS ignores it. The buildspec is ours,
            # and start_build overrides it again with the current one.
            "source": {"type": "NO_SOURCE", "location": "efs", "buildspec": buildspec},
            "artifacts": {"type": "NO_ARTIFACTS"},
            "environment": {
                "type": "LINUX_CONTAINER",
                "image": BUILD_IMAGE,
                "computeType": "BUILD_GENERAL1_SMALL",
                "privilegedMode": True,  # docker build needs the Docker daemon
                "imagePullCredentialsType": "CODEBUILD",
            },
            "serviceRole": identity.build_role_arn,
            "timeoutInMinutes": 30,
            "queuedTimeoutInMinutes": 60,
            "logsConfig": {
                "cloudWatchLogs": {"status": "ENABLED", "groupName": names.build_log_group},
                "s3Logs": {"status": "DISABLED"},
            },
            "vpcConfig": {
                "vpcId": self.p.vpc_id,
                "subnets": list(self.p.private_subnet_ids),
                "securityGroupIds": [self.p.build_security_group_id],
            },
            # CodeBuild mounts EFS over NFS and takes no access point option: the location names the
            # tenant's folder, which is also its access point's root, mounted so that the checkout
            # keeps its service-side path /mnt/repos/<owner>/<repo>.
            "fileSystemLocations": [
                {
                    "type": "EFS",
                    "location": f"{self.p.efs_file_system_id}.efs.{self.p.region}.amazonaws.com:{EFS_REPOS_DIR}/{owner}",
                    "mountPoint": f"/mnt/repos/{owner}",
                    "identifier": "repos",
                    "mountOptions": "nfsvers=4.1,rsize=1048576,wsize=1048576,hard,timeo=600,retrans=2",
                }
            ],
            "tags": _tag_list(names.tags(), "key", "value"),
        }

    def _ensure_build_project(self, names: AppNames, identity: TenantIdentity, buildspec: str) -> str:
        spec = self._project_spec(names, identity, buildspec)
        wanted = policies.fingerprint(spec)
        spec["tags"].append({"key": TAG_FINGERPRINT, "value": wanted})
        found = self.c.codebuild.batch_get_projects(names=[names.codebuild_project]).get("projects", [])
        if found and _tag_dict(found[0].get("tags")).get(TAG_FINGERPRINT) == wanted:
            return names.codebuild_project
        # Everything the project needs exists before the project does, so "project up to date"
        # means "all of it is" on the next deploy.
        self._ensure_log_group(names.build_log_group, names.tags())
        self.c.iam.put_role_policy(
            RoleName=build_role_name(names.installation_id),
            PolicyName=names.build_logs_policy,
            PolicyDocument=json.dumps(policies.app_build_logs_policy(self.p, names)),
        )
        if not found:
            try:
                self.c.codebuild.create_project(**spec)
                return names.codebuild_project
            except ClientError as exc:
                if _code(exc) != "ResourceAlreadyExistsException":
                    raise
        try:
            self.c.codebuild.update_project(**spec)
        except ClientError:
            # moto does not implement UpdateProject; recreate the project there.
            if not self.emulator:
                raise
            self.c.codebuild.delete_project(name=names.codebuild_project)
            self.c.codebuild.create_project(**spec)
        return names.codebuild_project

    async def start_build(self, project: str, env: dict[str, str], buildspec: str, idempotency_key: str) -> BuildInfo:
        """Start a build with our buildspec and variables."""
        return await asyncio.to_thread(self._start_build, project, env, buildspec, idempotency_key)

    def _start_build(self, project: str, env: dict[str, str], buildspec: str, idempotency_key: str) -> BuildInfo:
        build = self.c.codebuild.start_build(
            projectName=project,
            buildspecOverride=buildspec,
            environmentVariablesOverride=[{"name": k, "value": v, "type": "PLAINTEXT"} for k, v in env.items()],
            # A retried StartBuild with the same token (valid 5 minutes) returns the same build.
            idempotencyToken=hashlib.sha256(idempotency_key.encode()).hexdigest()[:32],
        )["build"]
        if self.emulator:
            self._emulate_push(env.get("IMAGE_URI", ""))
        return self._build_info(build)

    def _emulate_push(self, image_uri: str) -> None:
        # moto's CodeBuild runs nothing; record the image the build would push so ECR looks as it
        # would on AWS (a second deploy of the same SHA then finds it).
        repository, _, tag = image_uri.split("/", 1)[-1].rpartition(":")
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 2, "digest": "sha256:" + hashlib.sha256(image_uri.encode()).hexdigest()},
            "layers": [],
        }
        try:
            self.c.ecr.put_image(repositoryName=repository, imageTag=tag, imageManifest=json.dumps(manifest))
        except ClientError as exc:
            if _code(exc) not in ("ImageAlreadyExistsException", "ImageTagAlreadyExistsException"):
                raise

    @staticmethod
    def _build_info(build: dict[str, Any]) -> BuildInfo:
        logs = build.get("logs") or {}
        try:
            status = BuildStatus(build.get("buildStatus", "IN_PROGRESS"))
        except ValueError:
            status = BuildStatus.FAULT
        return BuildInfo(
            build_id=build["id"],
            status=status,
            phase=build.get("currentPhase", ""),
            log_group=logs.get("groupName"),
            log_stream=logs.get("streamName"),
            logs_url=logs.get("deepLink"),
        )

    async def get_build(self, build_id: str) -> BuildInfo:
        """A build's current status (polled)."""
        return await asyncio.to_thread(self._get_build, build_id)

    def _get_build(self, build_id: str) -> BuildInfo:
        builds = self.c.codebuild.batch_get_builds(ids=[build_id]).get("builds", [])
        if not builds:
            return BuildInfo(build_id=build_id, status=BuildStatus.FAULT, phase=BUILD_NOT_FOUND)
        return self._build_info(builds[0])

    async def stop_build(self, build_id: str) -> None:
        """Stop a running build (a cancelled deploy, a closed pull request)."""
        await asyncio.to_thread(self.c.codebuild.stop_build, id=build_id)

    async def build_log_tail(self, names: AppNames, build: BuildInfo, lines: int = 30) -> list[str]:
        """The last lines of a build's CloudWatch log."""
        return await asyncio.to_thread(self._build_log_tail, names, build, lines)

    def _build_log_tail(self, names: AppNames, build: BuildInfo, lines: int) -> list[str]:
        # CodeBuild names the stream after the build's UUID (the part after "project:").
        group = build.log_group or names.build_log_group
        stream = build.log_stream or build.build_id.split(":", 1)[-1]
        try:
            events = self.c.logs.get_log_events(logGroupName=group, logStreamName=stream, limit=lines, startFromHead=False)
        except ClientError as exc:
            if _code(exc) == "ResourceNotFoundException":
                return []
            raise
        return [e["message"].rstrip("\n") for e in events.get("events", [])][-lines:]

    # -- release ----------------------------------------------------------------------------

    async def ensure_release_infra(self, names: AppNames, host: str, port: int, health_check_path: str) -> ReleaseInfra:
        """Ensure the app log group, target group and host-header listener rule."""
        return await asyncio.to_thread(self._ensure_release_infra, names, host, port, health_check_path)

    def _ensure_target_group(self, names: AppNames, port: int, health_check_path: str) -> str:
        try:
            groups = self.c.elbv2.describe_target_groups(Names=[names.target_group])["TargetGroups"]
        except ClientError as exc:
            if _code(exc) not in ("TargetGroupNotFound", "TargetGroupNotFoundException"):
                raise
            groups = []
        if groups:
            group = groups[0]
            if group.get("HealthCheckPath") != health_check_path:
                self.c.elbv2.modify_target_group(TargetGroupArn=group["TargetGroupArn"], HealthCheckPath=health_check_path)
            return group["TargetGroupArn"]
        # The app log group comes first: an existing target group means it exists too.
        self._ensure_log_group(names.app_log_group, names.tags())
        # CreateTargetGroup returns the existing group when called again with the same settings.
        group = self.c.elbv2.create_target_group(
            Name=names.target_group,
            Protocol="HTTP",
            Port=port,
            VpcId=self.p.vpc_id,
            TargetType="ip",
            HealthCheckProtocol="HTTP",
            HealthCheckPath=health_check_path,
            HealthCheckIntervalSeconds=15,
            HealthyThresholdCount=2,
            UnhealthyThresholdCount=3,
            Matcher={"HttpCode": "200-399"},
            Tags=_tag_list(names.tags()),
        )["TargetGroups"][0]
        self.c.elbv2.modify_target_group_attributes(
            TargetGroupArn=group["TargetGroupArn"],
            Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "30"}],
        )
        return group["TargetGroupArn"]

    def _rules(self) -> list[dict[str, Any]]:
        rules, marker = [], None
        while True:
            kwargs: dict[str, Any] = {"ListenerArn": self.p.alb_listener_arn, "PageSize": 400}
            if marker:
                kwargs["Marker"] = marker
            page = self.c.elbv2.describe_rules(**kwargs)
            rules.extend(page.get("Rules", []))
            marker = page.get("NextMarker")
            if not marker:
                return rules

    @staticmethod
    def _rule_hosts(rule: dict[str, Any]) -> set[str]:
        hosts: set[str] = set()
        for cond in rule.get("Conditions", []):
            if cond.get("Field") == "host-header":
                hosts.update(cond.get("Values") or [])
                hosts.update((cond.get("HostHeaderConfig") or {}).get("Values") or [])
        return hosts

    def _find_rule(self, rules: list[dict[str, Any]], host: str) -> dict[str, Any] | None:
        return next((r for r in rules if host in self._rule_hosts(r)), None)

    def _ensure_release_infra(self, names: AppNames, host: str, port: int, health_check_path: str) -> ReleaseInfra:
        tg_arn = self._ensure_target_group(names, port, health_check_path)
        forward = [{"Type": "forward", "TargetGroupArn": tg_arn}]
        rules = self._rules()
        taken = {int(r["Priority"]) for r in rules if str(r.get("Priority", "")).isdigit()}
        priority = _priority_start(names.app)
        for _ in range(PRIORITY_PROBES):
            rule = self._find_rule(rules, host)
            if rule is not None:
                actions = rule.get("Actions", [])
                if not actions or actions[0].get("TargetGroupArn") != tg_arn:
                    self.c.elbv2.modify_rule(RuleArn=rule["RuleArn"], Actions=forward)
                return ReleaseInfra(tg_arn, rule["RuleArn"], int(rule["Priority"]))
            while priority in taken:
                priority = priority % LISTENER_PRIORITY_MAX + 1
            try:
                created = self.c.elbv2.create_rule(
                    ListenerArn=self.p.alb_listener_arn,
                    Priority=priority,
                    Conditions=[{"Field": "host-header", "HostHeaderConfig": {"Values": [host]}}],
                    Actions=forward,
                    Tags=_tag_list(names.tags()),
                )["Rules"][0]
                return ReleaseInfra(tg_arn, created["RuleArn"], priority)
            except ClientError as exc:
                if _code(exc) != "PriorityInUse":
                    raise
                # A concurrent deploy took this priority (maybe for this very host): look again.
                rules = self._rules()
                taken = {int(r["Priority"]) for r in rules if str(r.get("Priority", "")).isdigit()} | {priority}
        raise RuntimeError(f"no free listener rule priority found for {host} after {PRIORITY_PROBES} attempts")

    async def describe_service(self, names: AppNames) -> ServiceInfo | None:
        """The app's ECS service, or None if it does not exist."""
        return await asyncio.to_thread(self._describe_service, names)

    def _service_raw(self, names: AppNames, include_tags: bool = False) -> dict[str, Any] | None:
        kwargs: dict[str, Any] = {"cluster": self.p.cluster_name, "services": [names.service]}
        if include_tags:
            kwargs["include"] = ["TAGS"]
        services = self.c.ecs.describe_services(**kwargs).get("services", [])
        active = [s for s in services if s.get("status") in ("ACTIVE", "DRAINING")]
        return active[0] if active else None

    def _describe_service(self, names: AppNames) -> ServiceInfo | None:
        svc = self._service_raw(names, include_tags=True)
        if svc is None:
            return None
        return ServiceInfo(
            arn=svc["serviceArn"], task_definition_arn=svc["taskDefinition"],
            desired_count=svc.get("desiredCount", 0), tags=_tag_dict(svc.get("tags")),
        )

    async def register_task_definition(self, names: AppNames, spec: TaskSpec, fingerprint: str = "") -> str:
        """Register a new task definition revision (tagged with its fingerprint); return its ARN."""
        return await asyncio.to_thread(self._register_task_definition, names, spec, fingerprint)

    async def find_task_definition(self, names: AppNames, fingerprint: str) -> str | None:
        """The family's latest revision if it was registered with this fingerprint, else None."""
        return await asyncio.to_thread(self._find_task_definition, names, fingerprint)

    def _find_task_definition(self, names: AppNames, fingerprint: str) -> str | None:
        try:
            found = self.c.ecs.describe_task_definition(taskDefinition=names.family, include=["TAGS"])
        except ClientError as exc:
            if _code(exc) in ("ClientException", "InvalidParameterException"):  # no such family yet
                return None
            raise
        if _tag_dict(found.get("tags")).get(TAG_RELEASE_FP) == fingerprint:
            return found["taskDefinition"]["taskDefinitionArn"]
        return None

    def ssm_parameter_arn(self, name: str) -> str:
        """ARN of an SSM parameter given its full name (starting with /)."""
        return f"arn:aws:ssm:{self.p.region}:{self.p.account_id}:parameter{name}"

    def _register_task_definition(self, names: AppNames, spec: TaskSpec, fingerprint: str) -> str:
        container = {
            "name": names.container,
            "image": spec.image_uri,
            "essential": True,
            "portMappings": [{"containerPort": spec.port, "protocol": CONTAINER_PORT_PROTOCOL}],
            "environment": [{"name": k, "value": v} for k, v in sorted({**spec.env, "PORT": str(spec.port)}.items())],
            # By reference: ECS resolves the values with the execution role when a task starts.
            "secrets": [{"name": k, "valueFrom": self.ssm_parameter_arn(v)} for k, v in sorted(spec.secrets.items())],
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {
                    "awslogs-group": names.app_log_group,
                    "awslogs-region": self.p.region,
                    "awslogs-stream-prefix": "app",
                },
            },
            "healthCheck": {
                "command": health_check_command(spec.port, spec.health_check_path),
                "interval": 30,
                "timeout": 5,
                "retries": 3,
                "startPeriod": 60,
            },
        }
        td = self.c.ecs.register_task_definition(
            family=names.family,
            requiresCompatibilities=["FARGATE"],
            networkMode="awsvpc",
            cpu=str(spec.cpu),
            memory=str(spec.memory),
            executionRoleArn=self.p.task_execution_role_arn,
            taskRoleArn=spec.task_role_arn,
            runtimePlatform={"operatingSystemFamily": "LINUX", "cpuArchitecture": "X86_64"},
            containerDefinitions=[container],
            tags=_tag_list({**names.tags(), **({TAG_RELEASE_FP: fingerprint} if fingerprint else {})}, "key", "value"),
        )
        return td["taskDefinition"]["taskDefinitionArn"]

    async def task_definition_settings(self, task_definition_arn: str) -> tuple[int, str]:
        """Port and health check path of an existing revision (for rollbacks)."""
        return await asyncio.to_thread(self._task_definition_settings, task_definition_arn)

    def _task_definition_settings(self, task_definition_arn: str) -> tuple[int, str]:
        td = self.c.ecs.describe_task_definition(taskDefinition=task_definition_arn)["taskDefinition"]
        container = td["containerDefinitions"][0]
        port = container["portMappings"][0]["containerPort"]
        path = "/"
        command = (container.get("healthCheck") or {}).get("command") or []
        marker = f"http://localhost:{port}"
        for part in command:
            if marker in part:
                path = part.split(marker, 1)[1].split("'", 1)[0] or "/"
                break
        return port, path

    async def deploy_service(
        self, names: AppNames, task_definition_arn: str, infra: ReleaseInfra, port: int,
        desired_count: int, current: ServiceInfo | None,
    ) -> str:
        """Create the service or point it at the revision; returns "created", "updated" or "unchanged"."""
        return await asyncio.to_thread(self._deploy_service, names, task_definition_arn, infra, port, desired_count, current)

    def _deploy_service(
        self, names: AppNames, td: str, infra: ReleaseInfra, port: int, desired: int, current: ServiceInfo | None,
    ) -> str:
        deployment = {
            "deploymentCircuitBreaker": {"enable": True, "rollback": True},
            "maximumPercent": 200,
            "minimumHealthyPercent": 100,
        }
        if current is None:
            try:
                self.c.ecs.create_service(
                    cluster=self.p.cluster_name,
                    serviceName=names.service,
                    taskDefinition=td,
                    desiredCount=desired,
                    launchType="FARGATE",
                    networkConfiguration={
                        "awsvpcConfiguration": {
                            "subnets": list(self.p.private_subnet_ids),
                            "securityGroups": [self.p.app_security_group_id],
                            "assignPublicIp": "DISABLED",
                        }
                    },
                    loadBalancers=[{"targetGroupArn": infra.target_group_arn, "containerName": names.container, "containerPort": port}],
                    healthCheckGracePeriodSeconds=60,
                    deploymentConfiguration=deployment,
                    enableECSManagedTags=True,
                    propagateTags="SERVICE",
                    tags=_tag_list(names.tags(), "key", "value"),
                )
                return "created"
            except ClientError as exc:
                # A concurrent or crashed earlier create already made it ("not idempotent").
                if _code(exc) != "InvalidParameterException" or "idempotent" not in str(exc):
                    raise
        elif current.task_definition_arn == td:
            return "unchanged"
        self.c.ecs.update_service(
            cluster=self.p.cluster_name, service=names.service, taskDefinition=td, deploymentConfiguration=deployment,
        )
        return "updated"

    async def tag_service(self, names: AppNames, service_arn: str | None, tags: dict[str, str]) -> None:
        """Set bookkeeping tags on the service."""
        await asyncio.to_thread(self._tag_service, names, service_arn, tags)

    def _tag_service(self, names: AppNames, service_arn: str | None, tags: dict[str, str]) -> None:
        arn = service_arn or f"arn:aws:ecs:{self.p.region}:{self.p.account_id}:service/{self.p.cluster_name}/{names.service}"
        self.c.ecs.tag_resource(resourceArn=arn, tags=_tag_list(tags, "key", "value"))

    async def ensure_autoscaling(self, names: AppNames, min_count: int, max_count: int) -> None:
        """Target-tracking autoscaling on CPU between min and max tasks."""
        await asyncio.to_thread(self._ensure_autoscaling, names, min_count, max_count)

    def _ensure_autoscaling(self, names: AppNames, min_count: int, max_count: int) -> None:
        resource_id = f"service/{self.p.cluster_name}/{names.service}"
        # Both calls create or update, so calling them again is harmless.
        self.c.autoscaling.register_scalable_target(
            ServiceNamespace="ecs",
            ResourceId=resource_id,
            ScalableDimension="ecs:service:DesiredCount",
            MinCapacity=min_count,
            MaxCapacity=max_count,
        )
        self.c.autoscaling.put_scaling_policy(
            PolicyName="cpu-target",
            ServiceNamespace="ecs",
            ResourceId=resource_id,
            ScalableDimension="ecs:service:DesiredCount",
            PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration={
                "TargetValue": CPU_TARGET_PERCENT,
                "PredefinedMetricSpecification": {"PredefinedMetricType": "ECSServiceAverageCPUUtilization"},
                "ScaleInCooldown": 120,
                "ScaleOutCooldown": 60,
            },
        )

    async def get_rollout(self, names: AppNames, task_definition_arn: str) -> Rollout:
        """How the rollout of this revision stands (polled)."""
        return await asyncio.to_thread(self._get_rollout, names, task_definition_arn)

    def _get_rollout(self, names: AppNames, td: str) -> Rollout:
        svc = self._service_raw(names)
        if svc is None:
            return Rollout(RolloutState.FAILED, "the service no longer exists")
        return rollout_from_service(svc, td, emulator=self.emulator)

    async def describe_failure(self, names: AppNames, target_group_arn: str | None) -> list[str]:
        """Stopped tasks' reasons, target health and the app's last log lines (best effort)."""
        return await asyncio.to_thread(self._describe_failure, names, target_group_arn)

    def _describe_failure(self, names: AppNames, target_group_arn: str | None) -> list[str]:
        lines: list[str] = []
        try:
            arns = self.c.ecs.list_tasks(cluster=self.p.cluster_name, serviceName=names.service, desiredStatus="STOPPED").get("taskArns", [])
            if arns:
                tasks = self.c.ecs.describe_tasks(cluster=self.p.cluster_name, tasks=arns[:MAX_STOPPED_TASKS]).get("tasks", [])
                for task in tasks:
                    line = f"task {task['taskArn'].rsplit('/', 1)[-1][:12]} stopped: {task.get('stoppedReason', 'no reason given')}"
                    for c in task.get("containers", []):
                        if c.get("reason") or c.get("exitCode") is not None:
                            line += f"; container {c.get('name')}: {c.get('reason', '')} exit code {c.get('exitCode')}"
                    lines.append(line)
        except ClientError as exc:
            lines.append(f"(could not list stopped tasks: {_code(exc)})")
        if target_group_arn:
            try:
                health = self.c.elbv2.describe_target_health(TargetGroupArn=target_group_arn).get("TargetHealthDescriptions", [])
                for t in health:
                    th = t.get("TargetHealth", {})
                    target = t.get("Target", {})
                    lines.append(
                        f"target {target.get('Id')}:{target.get('Port')} {th.get('State')}"
                        + (f" ({th.get('Reason')}: {th.get('Description')})" if th.get("Reason") else "")
                    )
            except ClientError as exc:
                lines.append(f"(could not read target health: {_code(exc)})")
        try:
            streams = self.c.logs.describe_log_streams(
                logGroupName=names.app_log_group, orderBy="LastEventTime", descending=True, limit=1
            ).get("logStreams", [])
            if streams:
                events = self.c.logs.get_log_events(
                    logGroupName=names.app_log_group, logStreamName=streams[0]["logStreamName"], limit=20, startFromHead=False
                ).get("events", [])
                lines.extend(e["message"].rstrip("\n") for e in events)
        except ClientError as exc:
            lines.append(f"(could not read app logs: {_code(exc)})")
        return lines


def rollout_from_service(svc: dict[str, Any], td: str, *, emulator: bool = False) -> Rollout:
    """Decide a rollout's state from a DescribeServices entry; pure, so both AWS and moto shapes are tested."""
    deployments = svc.get("deployments") or []
    primary = next((d for d in deployments if d.get("status") == "PRIMARY"), None)
    mine = next((d for d in deployments if d.get("taskDefinition") == td), None)
    if mine is not None:
        state = mine.get("rolloutState", "")
        reason = mine.get("rolloutStateReason", "")
        if state == "FAILED":
            return Rollout(RolloutState.FAILED, reason or "the deployment failed")
        if mine.get("status") != "PRIMARY" and primary is not None and primary.get("taskDefinition") != td:
            # The circuit breaker rolled back: a newer PRIMARY runs the previous revision.
            return Rollout(RolloutState.FAILED, reason or "ECS rolled the deployment back")
        if state == "COMPLETED":
            return Rollout(RolloutState.COMPLETED, reason)
        if emulator and mine.get("failedTasks", 0) == 0:
            # moto starts no tasks (runningCount stays 0) unless MOTO_ECS_SERVICE_RUNNING is set.
            return Rollout(RolloutState.COMPLETED, "emulator: the service runs this revision")
        running, desired = mine.get("runningCount", 0), mine.get("desiredCount", 0)
        return Rollout(RolloutState.IN_PROGRESS, reason or f"{running}/{desired} tasks running")
    if svc.get("taskDefinition") == td:
        # AWS adds the new PRIMARY deployment synchronously in UpdateService, so this shape only
        # occurs in moto, which updates the service but keeps its original deployment record.
        if primary is None or primary.get("rolloutState") == "COMPLETED" or emulator:
            return Rollout(RolloutState.COMPLETED, "the service runs this revision")
        return Rollout(RolloutState.IN_PROGRESS, primary.get("rolloutStateReason", ""))
    return Rollout(RolloutState.FAILED, f"the service runs {svc.get('taskDefinition', '?').rsplit('/', 1)[-1]} instead (rolled back or superseded)")
