"""The platform's GitHub Actions workflows: valid, least-privilege, and calling make targets that exist.

actionlint cannot be installed here (its PyPI package downloads the binary from GitHub at build
time), so this parses the YAML and checks the structure and the Makefile instead.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from conftest import REPO

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.y*ml"))
MAKEFILE = REPO / "Makefile"


def _load(path: Path) -> dict:
    doc = yaml.safe_load(path.read_text())
    # YAML 1.1 reads the key `on` as True.
    if True in doc:
        doc["on"] = doc.pop(True)
    return doc


def _steps(doc: dict):
    for job_id, job in doc["jobs"].items():
        for step in job.get("steps", []):
            yield job_id, job, step


def _make_targets() -> set[str]:
    return set(re.findall(r"^([A-Za-z0-9_.-]+):(?!=)", MAKEFILE.read_text(), re.MULTILINE))


def test_there_are_workflows() -> None:
    assert WORKFLOWS, ".github/workflows/ is empty"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_structure(path: Path) -> None:
    doc = _load(path)
    assert doc["name"] and doc["on"] and doc["jobs"]
    for job_id, job in doc["jobs"].items():
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", job_id)
        assert "runs-on" in job and job.get("timeout-minutes"), job_id
        for need in job.get("needs", []):
            assert need in doc["jobs"], f"{job_id} needs unknown job {need}"
        for step in job["steps"]:
            assert ("uses" in step) != ("run" in step), f"{job_id}: a step either uses an action or runs a command"
    ids = [s["id"] for _, _, s in _steps(doc) if "id" in s]
    assert len(ids) == len(set(ids))
    for _, job, step in _steps(doc):
        for ref in re.findall(r"steps\.([\w-]+)\.outputs", yaml.safe_dump(step)):
            assert ref in {s.get("id") for s in job["steps"]}, f"steps.{ref} is not a step of this job"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_calls_only_existing_make_targets(path: Path) -> None:
    calls = set()
    for _, _, step in _steps(_load(path)):
        calls |= set(re.findall(r"\bmake\s+([A-Za-z0-9_.-]+)", step.get("run", "")))
    if not MAKEFILE.exists():
        pytest.skip("no Makefile yet to check the make targets against")
    missing = calls - _make_targets()
    assert not missing, f"{path.name} calls make targets the Makefile lacks: {sorted(missing)}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_is_least_privilege_and_injection_safe(path: Path) -> None:
    doc = _load(path)
    assert doc["permissions"] == {"contents": "read"}, "top-level token is read-only"
    text = path.read_text()
    assert "aws-access-key-id" not in text and "AWS_SECRET_ACCESS_KEY" not in text, "OIDC only, no stored keys"
    for job_id, job, step in _steps(doc):
        if "uses" in step:
            action, _, version = step["uses"].partition("@")
            assert version and version not in {"main", "master", "latest"}, f"{job_id}: pin {action}"
        # Untrusted event fields must reach a script through env, never be spliced into it.
        assert "github.event." not in step.get("run", ""), f"{job_id}: script injection risk"
        if "aws-actions/configure-aws-credentials" in step.get("uses", ""):
            assert job.get("permissions", {}).get("id-token") == "write", job_id
            assert step["with"]["role-to-assume"].startswith("${{ vars.")


def test_ci_tests_builds_pushes_and_rolls_the_service() -> None:
    doc = _load(REPO / ".github" / "workflows" / "ci.yml")
    runs = "\n".join(step.get("run", "") for _, _, step in _steps(doc))
    uses = {step.get("uses", "").split("@")[0] for _, _, step in _steps(doc)}
    assert "make test" in runs and "make infra-check" in runs
    assert "docker build" in runs and "docker push" in runs
    assert "aws-actions/amazon-ecr-login" in uses
    assert "aws-actions/configure-aws-credentials" in uses
    assert "aws-actions/amazon-ecs-deploy-task-definition" in uses or "update-service" in runs
    deploy = doc["jobs"]["deploy"]
    assert "refs/heads/main" in deploy["if"] and "push" in deploy["if"]
    assert set(deploy["needs"]) >= {"test", "infra-check"}


def test_ci_names_match_terraform() -> None:
    """The workflow's ECR repository, cluster, service and family are the ones Terraform creates."""
    env = _load(REPO / ".github" / "workflows" / "ci.yml")["env"]
    terraform = "\n".join(p.read_text() for p in (REPO / "terraform").glob("*.tf"))
    assert 'default     = "easydeploy"' in terraform
    assert env["ECR_REPOSITORY"] == "easydeploy-service" and 'name                 = "${var.name}-service"' in terraform
    assert env["ECS_CLUSTER"] == "easydeploy"
    assert env["ECS_SERVICE"] == env["TASK_FAMILY"] == "easydeploy-service"
    assert 'service_container = "easydeploy"' in terraform and env["CONTAINER_NAME"] == "easydeploy"
