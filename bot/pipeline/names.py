"""AWS resource names for tenants and apps: pure, deterministic, valid everywhere they go."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

# Target group names allow 32 characters; "ed-" + app must fit, and the app is also a DNS label.
APP_SLUG_MAX = 19
APP_HASH_LEN = 8
APP_NAME_MAX = APP_SLUG_MAX + 1 + APP_HASH_LEN  # 28
TENANT_ROLE_PATH = "/easydeploy/tenants/"
TAG_OWNER = "easydeploy:owner"
TAG_REPO = "easydeploy:repo"
TAG_INSTALLATION = "easydeploy:installation"
DEFAULT_ENVIRONMENT = "production"

_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def app_name(owner: str, repo: str, environment: str = DEFAULT_ENVIRONMENT) -> str:
    """Readable slug plus a short hash of owner/repo(/environment); lowercase, [a-z0-9-], ≤28 chars."""
    # GitHub names are case-insensitive, so "Acme/API" and "acme/api" are the same app.
    key = f"{owner}/{repo}".lower()
    slug_source = f"{owner}-{repo}"
    if environment != DEFAULT_ENVIRONMENT:
        key += f"/{environment.lower()}"
        slug_source += f"-{environment}"
    slug = _NON_ALNUM.sub("-", slug_source.lower()).strip("-")[:APP_SLUG_MAX].strip("-") or "app"
    digest = hashlib.sha256(key.encode()).hexdigest()[:APP_HASH_LEN]
    return f"{slug}-{digest}"


@dataclass(frozen=True)
class AppNames:
    """Every AWS name that belongs to one app of one tenant."""

    installation_id: int
    owner: str
    repo: str
    app: str

    @property
    def ecr_repository(self) -> str:
        """ECR repository (lowercase, one per app, under the tenant's prefix)."""
        return f"easydeploy/{self.installation_id}/{self.app}"

    @property
    def codebuild_project(self) -> str:
        """CodeBuild project."""
        return f"ed-{self.app}"

    @property
    def build_log_group(self) -> str:
        """CloudWatch Logs group of the app's builds."""
        return f"/easydeploy/builds/{self.app}"

    @property
    def app_log_group(self) -> str:
        """CloudWatch Logs group of the app's containers."""
        return f"/easydeploy/apps/{self.app}"

    @property
    def service(self) -> str:
        """ECS service name."""
        return f"ed-{self.app}"

    @property
    def family(self) -> str:
        """ECS task definition family."""
        return f"ed-{self.app}"

    @property
    def target_group(self) -> str:
        """ALB target group name (≤32 chars)."""
        return f"ed-{self.app}"

    @property
    def container(self) -> str:
        """Container name inside the task definition."""
        return "app"

    @property
    def build_logs_policy(self) -> str:
        """Inline policy on the tenant build role that lets it write this app's build logs."""
        return f"app-{self.app}"

    def artifact_prefix(self, sha: str) -> str:
        """S3 key prefix of one build's artifacts."""
        return f"artifacts/{self.installation_id}/{self.app}/{sha}/"

    def host(self, apps_domain: str) -> str:
        """Host name routed to the app by the shared ALB."""
        return f"{self.app}.{apps_domain}"

    def tags(self) -> dict[str, str]:
        """Tags carried by every resource created for this app."""
        return resource_tags(self.installation_id, self.owner, self.repo)


def app_names(installation_id: int, owner: str, repo: str, environment: str = DEFAULT_ENVIRONMENT) -> AppNames:
    """All names of an app."""
    return AppNames(installation_id, owner, repo, app_name(owner, repo, environment))


def resource_tags(installation_id: int, owner: str, repo: str = "") -> dict[str, str]:
    """The easydeploy:* tags (repo is empty on tenant-wide resources)."""
    return {TAG_OWNER: owner, TAG_REPO: repo, TAG_INSTALLATION: str(installation_id)}


def build_role_name(installation_id: int) -> str:
    """The tenant's CodeBuild service role."""
    return f"ed-{installation_id}-build"


def task_role_name(installation_id: int) -> str:
    """The tenant's ECS task role (no permissions by default)."""
    return f"ed-{installation_id}-task"


def tenant_ecr_prefix(installation_id: int) -> str:
    """ECR repository prefix owned by a tenant."""
    return f"easydeploy/{installation_id}/"


def tenant_artifact_prefix(installation_id: int) -> str:
    """S3 key prefix owned by a tenant."""
    return f"artifacts/{installation_id}/"


def tenant_secret_prefix(installation_id: int) -> str:
    """SSM parameter prefix a tenant's secrets must live under."""
    return f"/easydeploy/{installation_id}/"


def app_url(app: str, apps_domain: str) -> str:
    """Public URL of an app."""
    return f"https://{app}.{apps_domain}"
