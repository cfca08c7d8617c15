"""Shared helpers for the infrastructure checks: the parsed Terraform, the repo paths."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest

REPO = Path(__file__).resolve().parents[2]
TERRAFORM = REPO / "terraform"

# The settings the service reads in aws mode (bot/settings.py); Terraform
# outputs exactly these (output name = the variable in lower case).
SERVICE_SETTINGS = (
    "EASYDEPLOY_AWS_MODE",
    "AWS_REGION",
    "EASYDEPLOY_APPS_DOMAIN",
    "EASYDEPLOY_PUBLIC_URL",
    "EASYDEPLOY_REPOS_ROOT",
    "EASYDEPLOY_CLUSTER_NAME",
    "EASYDEPLOY_VPC_ID",
    "EASYDEPLOY_PRIVATE_SUBNET_IDS",
    "EASYDEPLOY_APP_SECURITY_GROUP_ID",
    "EASYDEPLOY_BUILD_SECURITY_GROUP_ID",
    "EASYDEPLOY_ALB_LISTENER_ARN",
    "EASYDEPLOY_EFS_FILE_SYSTEM_ID",
    "EASYDEPLOY_ARTIFACT_BUCKET",
    "EASYDEPLOY_TASK_EXECUTION_ROLE_ARN",
    "EASYDEPLOY_PERMISSIONS_BOUNDARY_ARN",
    "EASYDEPLOY_TENANT_ROLE_PATH",
    "EASYDEPLOY_QUEUE_URL",
    "EASYDEPLOY_STATE_URL",
    "EASYDEPLOY_EVENTS_QUEUE_URL",
)

SERVICE_SECRETS = (
    "EASYDEPLOY_GITHUB_APP_ID",
    "EASYDEPLOY_GITHUB_PRIVATE_KEY",
    "EASYDEPLOY_GITHUB_WEBHOOK_SECRET",
    "EASYDEPLOY_GITHUB_CLIENT_ID",
    "EASYDEPLOY_GITHUB_CLIENT_SECRET",
    "EASYDEPLOY_SLACK_SIGNING_SECRET",
    "EASYDEPLOY_SLACK_BOT_TOKEN",
)


def _unquote(value: Any) -> Any:
    """Normalise python-hcl2 output across versions: 8.x keeps the quotes and adds __meta__ keys."""
    if isinstance(value, str):
        if len(value) >= 2 and value[0] == value[-1] == '"':
            return value[1:-1]
        return value
    if isinstance(value, list):
        return [_unquote(v) for v in value]
    if isinstance(value, dict):
        return {_unquote(k): _unquote(v) for k, v in value.items() if not str(k).startswith("__")}
    return value


def parse_hcl(path: Path) -> dict[str, Any]:
    """Parse one .tf file with python-hcl2 into plain dicts and lists."""
    import hcl2

    with path.open() as handle:
        options = getattr(hcl2, "SerializationOptions", None)
        if options is not None:  # python-hcl2 >= 8
            parsed = hcl2.load(handle, serialization_options=options(with_comments=False, strip_string_quotes=True))
        else:
            parsed = hcl2.load(handle)
    return _unquote(parsed)


@dataclass(frozen=True)
class Block:
    """One resource or data block."""

    kind: str
    name: str
    body: dict[str, Any]
    file: str

    @property
    def address(self) -> str:
        return f"{self.kind}.{self.name}"


@dataclass
class Terraform:
    """The parsed root module (or any module directory)."""

    files: dict[str, dict[str, Any]]
    resources: list[Block] = field(default_factory=list)
    data: list[Block] = field(default_factory=list)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    locals: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, directory: Path) -> "Terraform":
        files = {p.name: parse_hcl(p) for p in sorted(directory.glob("*.tf"))}
        model = cls(files=files)
        for fname, parsed in files.items():
            for key, target in (("resource", model.resources), ("data", model.data)):
                for entry in parsed.get(key, []):
                    for kind, named in entry.items():
                        for name, body in named.items():
                            target.append(Block(kind, name, body, fname))
            for entry in parsed.get("output", []):
                model.outputs.update(entry)
            for entry in parsed.get("variable", []):
                model.variables.update(entry)
            for entry in parsed.get("locals", []):
                model.locals.update(entry)
        return model

    def of(self, kind: str) -> list[Block]:
        """Every resource of one type."""
        return [b for b in self.resources if b.kind == kind]

    def resource(self, kind: str, name: str) -> dict[str, Any]:
        """The body of one resource."""
        for block in self.resources:
            if block.kind == kind and block.name == name:
                return block.body
        raise KeyError(f"{kind}.{name}")

    def data_block(self, kind: str, name: str) -> dict[str, Any]:
        for block in self.data:
            if block.kind == kind and block.name == name:
                return block.body
        raise KeyError(f"data.{kind}.{name}")

    def policy_documents(self) -> Iterator[tuple[str, list[dict[str, Any]]]]:
        """Every aws_iam_policy_document and its statements."""
        for block in self.data:
            if block.kind == "aws_iam_policy_document":
                yield block.name, block.body.get("statement", [])


def one(value: Any) -> Any:
    """A nested block parses as a one-item list; give the item."""
    if isinstance(value, list):
        assert len(value) == 1, value
        return value[0]
    return value


def refers_to(value: Any, address: str) -> bool:
    """True if an expression references the given resource address."""
    return isinstance(value, str) and re.search(r"\b" + re.escape(address) + r"\b", value) is not None


@pytest.fixture(scope="session")
def tf() -> Terraform:
    """The platform's root module, parsed."""
    return Terraform.load(TERRAFORM)


@pytest.fixture(scope="session")
def tf_bootstrap() -> Terraform:
    """The state bootstrap module, parsed."""
    return Terraform.load(TERRAFORM / "bootstrap")
