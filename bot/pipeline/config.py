"""The `.easydeploy.yml` file: a strict pydantic model, read from the default branch only."""

from __future__ import annotations

import posixpath
import re
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError, field_validator, model_validator

CONFIG_FILE = ".easydeploy.yml"
MAX_CONFIG_BYTES = 64 * 1024
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# Reserved: the platform or the container runtime owns these.
RESERVED_ENV_PREFIXES = ("AWS_", "ECS_", "EASYDEPLOY_")
RESERVED_ENV_NAMES = {"PORT"}
# The health check path goes into the container health check command, so keep it to URL-safe characters.
HEALTH_PATH = re.compile(r"^/[A-Za-z0-9._~/%=&?+-]*$")
SSM_NAME = re.compile(r"^[A-Za-z0-9_./-]{1,900}$")

# Valid Fargate CPU units → allowed memory (MiB).
FARGATE_MEMORY: dict[int, range | tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: range(1024, 4096 + 1, 1024),
    1024: range(2048, 8192 + 1, 1024),
    2048: range(4096, 16384 + 1, 1024),
    4096: range(8192, 30720 + 1, 1024),
    8192: range(16384, 61440 + 1, 4096),
    16384: range(32768, 122880 + 1, 8192),
}


class AppConfigError(ValueError):
    """An invalid .easydeploy.yml; the message names the bad key."""

    def __init__(self, key: str, problem: str):
        self.key = key
        self.problem = problem
        super().__init__(f"{CONFIG_FILE}: `{key}` {problem}" if key else f"{CONFIG_FILE}: {problem}")


def _inside_repo(value: str, key: str) -> str:
    """Normalise a repo-relative path and refuse absolute paths or `..` escapes."""
    if "\x00" in value or "\\" in value:
        raise ValueError("must be a plain relative path")
    if value.startswith("/"):
        raise ValueError("must be relative to the repository root, not absolute")
    norm = posixpath.normpath(value)
    if norm == ".." or norm.startswith("../"):
        raise ValueError("must stay inside the repository (no `..`)")
    return norm


class AppConfig(BaseModel):
    """An app's deploy settings; every key is optional and unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    port: StrictInt = Field(8080, ge=1, le=65535)
    health_check_path: StrictStr = "/"
    cpu: StrictInt = 256
    memory: StrictInt = 512
    min_instances: StrictInt = Field(1, ge=1, le=20)
    max_instances: StrictInt = Field(2, ge=1, le=20)
    env: dict[StrictStr, StrictStr] = Field(default_factory=dict)
    # Env var name → SSM parameter name. A name without a leading "/" is taken relative to the
    # tenant's prefix /easydeploy/<installation_id>/; an absolute name must be under that prefix
    # (checked by resolve_secrets, which knows the installation). The shared task execution role
    # may read /easydeploy/*, so this prefix rule is what keeps one tenant off another's secrets.
    secrets: dict[StrictStr, StrictStr] = Field(default_factory=dict)
    root: StrictStr = "."
    dockerfile: StrictStr | None = None
    wait_for_checks: StrictBool = False

    @field_validator("health_check_path")
    @classmethod
    def _health_path(cls, value: str) -> str:
        if not HEALTH_PATH.match(value) or len(value) > 200:
            raise ValueError("must start with / and contain only URL-safe characters")
        return value

    @field_validator("cpu")
    @classmethod
    def _cpu(cls, value: int) -> int:
        if value not in FARGATE_MEMORY:
            raise ValueError(f"must be one of {sorted(FARGATE_MEMORY)} (Fargate CPU units)")
        return value

    @field_validator("env", "secrets")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not ENV_NAME.match(name):
                raise ValueError(f"has an invalid variable name {name!r} (letters, digits, _; not starting with a digit)")
            if name in RESERVED_ENV_NAMES or name.startswith(RESERVED_ENV_PREFIXES):
                raise ValueError(f"uses the reserved variable name {name!r}")
        return value

    @field_validator("secrets")
    @classmethod
    def _secret_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name, param in value.items():
            if not SSM_NAME.match(param) or ".." in param:
                raise ValueError(f"has an invalid SSM parameter name for {name}: {param!r}")
        return value

    @field_validator("root")
    @classmethod
    def _root(cls, value: str) -> str:
        return _inside_repo(value, "root")

    @field_validator("dockerfile")
    @classmethod
    def _dockerfile(cls, value: str | None) -> str | None:
        return None if value is None else _inside_repo(value, "dockerfile")

    @model_validator(mode="after")
    def _combinations(self) -> "AppConfig":
        if self.memory not in FARGATE_MEMORY[self.cpu]:
            allowed = FARGATE_MEMORY[self.cpu]
            shown = f"{allowed[0]}..{allowed[-1]}" if isinstance(allowed, range) else ", ".join(map(str, allowed))
            raise AppConfigError("memory", f"= {self.memory} is not valid with cpu {self.cpu} on Fargate (allowed: {shown})")
        if self.min_instances > self.max_instances:
            raise AppConfigError("min_instances", "must not be greater than max_instances")
        both = set(self.env) & set(self.secrets)
        if both:
            raise AppConfigError("secrets", f"repeats names already in env: {', '.join(sorted(both))}")
        return self


def _key(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


def parse_app_config(text: str | None) -> AppConfig:
    """Parse .easydeploy.yml (None or empty → defaults); raises AppConfigError naming the bad key."""
    if text is None or not text.strip():
        return AppConfig()
    if len(text.encode()) > MAX_CONFIG_BYTES:
        raise AppConfigError("", f"is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise AppConfigError("", f"is not valid YAML{where}") from None
    if data is None:
        return AppConfig()
    if not isinstance(data, dict):
        raise AppConfigError("", "must be a mapping of keys (port, env, ...)")
    try:
        return AppConfig.model_validate(data)
    except AppConfigError:
        raise
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err.get("loc", ()))
        if err.get("type") == "extra_forbidden":
            raise AppConfigError(_key(loc), "is not a known key (allowed: " + ", ".join(AppConfig.model_fields) + ")") from None
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, AppConfigError):
            raise cause from None
        message = err.get("msg", "is invalid").removeprefix("Value error, ")
        if err.get("type") in {"string_type", "int_type", "bool_type"} and loc and loc[0] == "env":
            message += " (quote the value in YAML)"
        raise AppConfigError(_key(loc), message) from None


def resolve_secrets(config: AppConfig, installation_id: int) -> dict[str, str]:
    """Env var → full SSM parameter name, refusing names outside /easydeploy/<installation_id>/."""
    prefix = f"/easydeploy/{installation_id}/"
    resolved = {}
    for name, param in config.secrets.items():
        full = param if param.startswith("/") else prefix + param
        if not full.startswith(prefix):
            raise AppConfigError(f"secrets.{name}", f"must name an SSM parameter under {prefix} (got {param!r})")
        resolved[name] = full
    return resolved
