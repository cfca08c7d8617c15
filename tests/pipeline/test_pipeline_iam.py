"""Tenant identity: the IAM policies of two tenants grant neither access to the other's resources."""

from __future__ import annotations

import fnmatch
import json
from typing import Any, Iterator
from urllib.parse import unquote

import pytest
from moto import mock_aws

from bot.pipeline import ensure_tenant
from bot.pipeline.aws import BotoAwsSteps
from bot.pipeline.awsclients import AwsClients, make_clients
from bot.pipeline.names import app_names
from bot.pipeline.policies import ECR_PUSH_ACTIONS, LOG_WRITE_ACTIONS, app_build_logs_policy
from bot.pipeline.sandbox import provision_sandbox

REGION = "us-east-1"
ACCOUNT = "123456789012"
READ_ONLY_ON_STAR = {"ecr:GetAuthorizationToken", "ec2:DescribeDhcpOptions", "ec2:DescribeNetworkInterfaces",
                     "ec2:DescribeSecurityGroups", "ec2:DescribeSubnets", "ec2:DescribeVpcs"}
WRITE_ACTIONS = [*ECR_PUSH_ACTIONS, *LOG_WRITE_ACTIONS, "s3:PutObject", "s3:GetObject",
                 "elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _condition_holds(condition: dict[str, dict[str, Any]], context: dict[str, str]) -> bool:
    for operator, pairs in condition.items():
        for key, expected in pairs.items():
            actual = context.get(key)
            if actual is None:
                return False
            wanted = _as_list(expected)
            if operator in ("StringEquals", "ArnEquals"):
                ok = actual in wanted
            elif operator in ("StringLike", "ArnLike"):
                ok = any(fnmatch.fnmatchcase(actual, w) for w in wanted)
            else:
                return False  # unknown operators never grant
            if not ok:
                return False
    return True


def allows(documents: list[dict[str, Any]], action: str, resource: str, context: dict[str, str] | None = None) -> bool:
    """A small IAM evaluator: explicit Deny wins, otherwise any matching Allow grants."""
    allowed = False
    for doc in documents:
        for st in _as_list(doc["Statement"]):
            if "NotAction" in st or "NotResource" in st:
                raise AssertionError("tenant policies must not use NotAction/NotResource")
            if not any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in _as_list(st["Action"])):
                continue
            if not any(fnmatch.fnmatchcase(resource, r) for r in _as_list(st["Resource"])):
                continue
            if "Condition" in st and not _condition_holds(st["Condition"], context or {}):
                continue
            if st["Effect"] == "Deny":
                return False
            allowed = True
    return allowed


def tenant_resources(iid: int, owner: str, repo: str, ap_arn: str, bucket: str, fs: str) -> dict[str, tuple[str, dict[str, str]]]:
    names = app_names(iid, owner, repo)
    return {
        "ecr": (f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{names.ecr_repository}", {}),
        "logs": (f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{names.build_log_group}:log-stream:abc", {}),
        "s3": (f"arn:aws:s3:::{bucket}/{names.artifact_prefix('a' * 40)}image.json", {}),
        "efs": (f"arn:aws:elasticfilesystem:{REGION}:{ACCOUNT}:file-system/{fs}", {"elasticfilesystem:AccessPointArn": ap_arn}),
    }


@pytest.fixture(scope="module")
def tenants(monkeypatch_module) -> Iterator[dict[str, Any]]:
    with mock_aws():
        clients: AwsClients = make_clients(REGION, None, max_attempts=1, retry_mode="standard", static_credentials=("testing", "testing"))
        platform = provision_sandbox(clients, REGION)
        steps = BotoAwsSteps(clients, platform, emulator=True)
        import asyncio

        async def setup():
            out = {}
            for iid, owner, repo in ((101, "alice", "shop"), (202, "bob", "blog")):
                identity = await ensure_tenant(steps, iid, owner)
                # The per-app build-logs grant, as ensure_build_project puts it.
                clients.iam.put_role_policy(
                    RoleName=f"ed-{iid}-build", PolicyName=app_names(iid, owner, repo).build_logs_policy,
                    PolicyDocument=json.dumps(app_build_logs_policy(platform, app_names(iid, owner, repo))),
                )
                out[iid] = (identity, owner, repo)
            before = len(clients.calls)
            again = await ensure_tenant(steps, 101, "alice")
            out["again_calls"] = clients.calls[before:]
            out["again"] = again
            return out

        made = asyncio.run(setup())
        yield {"clients": clients, "platform": platform, **made}


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def role_documents(clients: AwsClients, role: str) -> list[dict[str, Any]]:
    docs = []
    for name in clients.iam.list_role_policies(RoleName=role)["PolicyNames"]:
        doc = clients.iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
        docs.append(json.loads(unquote(doc)) if isinstance(doc, str) else doc)
    for attached in clients.iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]:
        raise AssertionError(f"unexpected managed policy {attached}")
    return docs


def test_each_tenant_reaches_only_its_own_resources(tenants):
    clients, platform = tenants["clients"], tenants["platform"]
    resources = {
        iid: tenant_resources(iid, owner, repo, identity.access_point_arn, platform.artifact_bucket, platform.efs_file_system_id)
        for iid, (identity, owner, repo) in ((k, v) for k, v in tenants.items() if isinstance(k, int))
    }
    for me, other in ((101, 202), (202, 101)):
        docs = role_documents(clients, f"ed-{me}-build")
        for kind, (arn, context) in resources[me].items():
            assert any(allows(docs, a, arn, context) for a in WRITE_ACTIONS), f"tenant {me} cannot use its own {kind}"
        for kind, (arn, context) in resources[other].items():
            for action in WRITE_ACTIONS:
                assert not allows(docs, action, arn, context), f"tenant {me} may {action} on tenant {other}'s {kind}"
        # Its own file system grant only holds through its own access point.
        fs_arn, _ = resources[me]["efs"]
        assert not allows(docs, "elasticfilesystem:ClientMount", fs_arn, resources[other]["efs"][1])
        assert role_documents(clients, f"ed-{me}-task") == []  # task role: no permissions


def test_tenant_policies_have_no_wildcard_admin_and_roles_have_boundaries(tenants):
    clients, platform = tenants["clients"], tenants["platform"]
    for iid in (101, 202):
        for role in (f"ed-{iid}-build", f"ed-{iid}-task"):
            got = clients.iam.get_role(RoleName=role)["Role"]
            assert got["Path"] == "/easydeploy/tenants/"
            assert got["PermissionsBoundary"]["PermissionsBoundaryArn"] == platform.permissions_boundary_arn
            assert {t["Key"] for t in got["Tags"]} >= {"easydeploy:owner", "easydeploy:repo", "easydeploy:installation"}
            for doc in role_documents(clients, role):
                for st in doc["Statement"]:
                    actions = _as_list(st["Action"])
                    assert "*" not in actions and not any(a.endswith(":*") for a in actions)
                    if "*" in _as_list(st["Resource"]):
                        assert set(actions) <= READ_ONLY_ON_STAR, st
    assert clients.iam.list_users()["Users"] == []  # roles only, so no access keys anywhere


def test_ensuring_a_tenant_again_is_cheap_and_creates_nothing(tenants):
    assert tenants["again_calls"] == ["iam.GetRole", "iam.GetRole"]
    assert tenants["again"] == tenants[101][0]


def test_access_points_root_each_tenant_in_its_own_folder(tenants):
    clients, platform = tenants["clients"], tenants["platform"]
    aps = clients.efs.describe_access_points(FileSystemId=platform.efs_file_system_id)["AccessPoints"]
    roots = sorted(ap["RootDirectory"]["Path"] for ap in aps)
    assert roots == ["/repos/alice", "/repos/bob"]  # the service mounts /repos at /mnt/repos


def test_the_evaluator_itself_denies_and_matches_wildcards():
    doc = {"Statement": [
        {"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/artifacts/1/*"},
        {"Effect": "Deny", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::b/artifacts/1/secret"},
    ]}
    assert allows([doc], "s3:PutObject", "arn:aws:s3:::b/artifacts/1/x")
    assert not allows([doc], "s3:PutObject", "arn:aws:s3:::b/artifacts/1/secret")
    assert not allows([doc], "s3:PutObject", "arn:aws:s3:::b/artifacts/11/x")
