"""Typed settings: the operator's interface, read once at start-up."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "EASYDEPLOY_"

# Settings the service needs in `aws` mode; Terraform outputs exactly these.
AWS_PLATFORM_FIELDS = (
    "cluster_name",
    "vpc_id",
    "private_subnet_ids",
    "app_security_group_id",
    "build_security_group_id",
    "alb_listener_arn",
    "efs_file_system_id",
    "artifact_bucket",
    "task_execution_role_arn",
    "permissions_boundary_arn",
)


class AwsMode(StrEnum):
    """Where AWS calls go."""

    SANDBOX = "sandbox"
    AWS = "aws"


class Settings(BaseSettings):
    """Every knob of the service; names are the `EASYDEPLOY_*` environment variables."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
    )

    github_app_id: int | None = None
    github_private_key: SecretStr | None = None
    github_webhook_secret: SecretStr | None = None
    github_api_url: str = "https://api.github.com"
    github_web_url: str = "https://github.com"
    github_client_id: str | None = None
    github_client_secret: SecretStr | None = None

    slack_signing_secret: SecretStr | None = None
    slack_bot_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"

    aws_mode: AwsMode = AwsMode.SANDBOX
    # boto3's own variables, read without our prefix.
    aws_endpoint_url: str | None = Field(default=None, validation_alias="AWS_ENDPOINT_URL")
    aws_region: str = Field(default="us-east-1", validation_alias="AWS_REGION")

    repos_root: Path | None = None
    data_dir: Path = Path(".easydeploy")
    state_url: str | None = None
    apps_domain: str | None = None
    public_url: str = "http://127.0.0.1:3000"

    host: str = "127.0.0.1"
    port: int = Field(default=3000, ge=0, le=65535)
    workers: int = Field(default=4, ge=1, le=64)

    # Platform resources in `aws` mode (Terraform outputs).
    cluster_name: str | None = None
    vpc_id: str | None = None
    private_subnet_ids: str | None = None
    app_security_group_id: str | None = None
    build_security_group_id: str | None = None
    alb_listener_arn: str | None = None
    efs_file_system_id: str | None = None
    artifact_bucket: str | None = None
    task_execution_role_arn: str | None = None
    permissions_boundary_arn: str | None = None
    tenant_role_path: str = "/easydeploy/tenants/"
    queue_url: str | None = None
    events_queue_url: str | None = None

    # Operational limits.
    max_webhook_bytes: int = 25 * 1024 * 1024
    drain_timeout: float = Field(default=30.0, ge=0)
    rollout_timeout: float = Field(default=900.0, gt=0)

    @field_validator("github_api_url", "github_web_url", "slack_api_url", "public_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @field_validator("state_url")
    @classmethod
    def _state_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("sqlite://"):
            raise ValueError(
                "only sqlite:///<path> is built in (the DynamoDB store of the scale-out mode is not written yet)"
            )
        return value

    @field_validator("github_private_key")
    @classmethod
    def _pem_or_path(cls, value: SecretStr | None) -> SecretStr | None:
        """Accept the PEM text (with real or escaped newlines) or a path to the file."""
        if value is None:
            return None
        raw = value.get_secret_value().strip()
        if "-----BEGIN" not in raw:
            path = Path(raw).expanduser()
            if not path.is_file():
                raise ValueError("is neither a PEM key nor the path of a readable file")
            raw = path.read_text().strip()
        raw = raw.replace("\\n", "\n").strip()
        if "PRIVATE KEY-----" not in raw:
            raise ValueError("does not hold a PEM private key")
        return SecretStr(raw + "\n")

    @model_validator(mode="after")
    def _aws_mode_needs_platform(self) -> "Settings":
        if self.aws_mode is AwsMode.AWS:
            missing = [ENV_PREFIX + name.upper() for name in AWS_PLATFORM_FIELDS if not getattr(self, name)]
            if self.apps_domain is None:
                missing.append(ENV_PREFIX + "APPS_DOMAIN")
            for name in ("github_app_id", "github_private_key", "github_webhook_secret"):
                if getattr(self, name) is None:
                    missing.append(ENV_PREFIX + name.upper())
            if missing:
                raise ValueError("aws mode needs " + ", ".join(missing) + " (the Terraform outputs and the GitHub App credentials)")
        return self

    @property
    def sandbox(self) -> bool:
        """True when AWS is the embedded emulator or a local endpoint."""
        return self.aws_mode is AwsMode.SANDBOX

    @property
    def effective_repos_root(self) -> Path:
        """Where checkouts live: `/mnt/repos` on AWS, under the data dir in the sandbox."""
        if self.repos_root is not None:
            return self.repos_root
        return self.data_dir / "repos" if self.sandbox else Path("/mnt/repos")

    @property
    def effective_apps_domain(self) -> str:
        """Apps are served at `https://<app>.<domain>`."""
        return self.apps_domain or "apps.localhost"

    @property
    def effective_state_url(self) -> str:
        """The state store URL; a SQLite file in the data dir unless set."""
        return self.state_url or f"sqlite:///{self.data_dir / 'state.db'}"

    def masked(self) -> dict[str, str]:
        """The effective configuration with every secret masked, for `doctor` and logs."""
        out: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            env = {"aws_endpoint_url": "AWS_ENDPOINT_URL", "aws_region": "AWS_REGION"}.get(
                name, ENV_PREFIX + name.upper()
            )
            if isinstance(value, SecretStr):
                out[env] = "********"
            elif value is None:
                out[env] = "(unset)"
            else:
                out[env] = str(value.value if isinstance(value, StrEnum) else value)
        return out


def _variable_name(loc: tuple) -> str:
    field = str(loc[0]) if loc else "?"
    if field in ("AWS_ENDPOINT_URL", "AWS_REGION"):
        return field
    return ENV_PREFIX + field.upper() if field != "__root__" else "settings"


def load_settings(**overrides: object) -> Settings:
    """Load and validate settings; on error print what is wrong, naming the variable, and exit 2."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = _variable_name(err.get("loc", ()))
            msg = err.get("msg", "invalid")
            lines.append(f"{where}: {msg}" if err.get("loc") else msg.removeprefix("Value error, "))
        print("easydeploy: invalid configuration:\n  " + "\n  ".join(lines), file=sys.stderr)
        raise SystemExit(2) from None
