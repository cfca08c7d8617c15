"""IAM policy documents for tenants and the platform: pure functions over names and ARNs."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from bot.pipeline.model import PlatformResources
from bot.pipeline.names import AppNames, tenant_artifact_prefix, tenant_ecr_prefix

PARTITION = "aws"
# Pushing and pulling images; GetAuthorizationToken is separate because it only accepts "*".
ECR_PUSH_ACTIONS = [
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:CompleteLayerUpload",
    "ecr:DescribeImages",
    "ecr:GetDownloadUrlForLayer",
    "ecr:InitiateLayerUpload",
    "ecr:PutImage",
    "ecr:UploadLayerPart",
]
LOG_WRITE_ACTIONS = ["logs:CreateLogStream", "logs:PutLogEvents"]
# CodeBuild in a VPC creates an ENI per build with the service role's rights.
EC2_DESCRIBE_ACTIONS = [
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSubnets",
    "ec2:DescribeVpcs",
]


def document(*statements: dict[str, Any]) -> dict[str, Any]:
    """A policy document."""
    return {"Version": "2012-10-17", "Statement": list(statements)}


def fingerprint(*parts: Any) -> str:
    """Short stable hash of JSON-able parts (stored in tags to skip unchanged updates)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def trust_policy(service: str) -> dict[str, Any]:
    """Trust policy letting one AWS service assume the role."""
    return document({"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"})


def ecr_repository_arn(platform: PlatformResources, name: str) -> str:
    """ARN of an ECR repository (name may end in a wildcard)."""
    return f"arn:{PARTITION}:ecr:{platform.region}:{platform.account_id}:repository/{name}"


def log_group_arn(platform: PlatformResources, group: str) -> str:
    """ARN of a log group and its streams."""
    return f"arn:{PARTITION}:logs:{platform.region}:{platform.account_id}:log-group:{group}:*"


def file_system_arn(platform: PlatformResources) -> str:
    """ARN of the shared EFS file system."""
    return f"arn:{PARTITION}:elasticfilesystem:{platform.region}:{platform.account_id}:file-system/{platform.efs_file_system_id}"


def _vpc_statements(platform: PlatformResources) -> list[dict[str, Any]]:
    subnet_arns = [f"arn:{PARTITION}:ec2:{platform.region}:{platform.account_id}:subnet/{s}" for s in platform.private_subnet_ids]
    eni_arn = f"arn:{PARTITION}:ec2:{platform.region}:{platform.account_id}:network-interface/*"
    return [
        {"Sid": "DescribeNetwork", "Effect": "Allow", "Action": EC2_DESCRIBE_ACTIONS, "Resource": "*"},
        {
            "Sid": "BuildNetworkInterfaces",
            "Effect": "Allow",
            "Action": ["ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface"],
            "Resource": [
                eni_arn,
                *subnet_arns,
                f"arn:{PARTITION}:ec2:{platform.region}:{platform.account_id}:security-group/{platform.build_security_group_id}",
            ],
        },
        {
            "Sid": "BuildNetworkInterfacePermission",
            "Effect": "Allow",
            "Action": "ec2:CreateNetworkInterfacePermission",
            "Resource": eni_arn,
            "Condition": {
                "StringEquals": {"ec2:AuthorizedService": "codebuild.amazonaws.com"},
                "ArnEquals": {"ec2:Subnet": subnet_arns},
            },
        },
    ]


def tenant_build_policy(platform: PlatformResources, installation_id: int, access_point_arn: str) -> dict[str, Any]:
    """The tenant build role's policy: its own ECR repos, S3 prefix and EFS access point, nothing else."""
    return document(
        {"Sid": "EcrLogin", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
        {
            "Sid": "PushOwnImages",
            "Effect": "Allow",
            "Action": ECR_PUSH_ACTIONS,
            "Resource": ecr_repository_arn(platform, tenant_ecr_prefix(installation_id) + "*"),
        },
        {
            "Sid": "WriteOwnArtifacts",
            "Effect": "Allow",
            "Action": ["s3:PutObject", "s3:GetObject"],
            "Resource": f"arn:{PARTITION}:s3:::{platform.artifact_bucket}/{tenant_artifact_prefix(installation_id)}*",
        },
        {
            "Sid": "MountOwnAccessPoint",
            "Effect": "Allow",
            "Action": ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"],
            "Resource": file_system_arn(platform),
            "Condition": {"StringEquals": {"elasticfilesystem:AccessPointArn": access_point_arn}},
        },
        *_vpc_statements(platform),
    )


def app_build_logs_policy(platform: PlatformResources, names: AppNames) -> dict[str, Any]:
    """Inline policy (one per app) letting the tenant build role write that app's build log group."""
    # Log group names carry the app, not the tenant, so a tenant-wide wildcard is impossible:
    # each app's group is granted by name when its build project is created.
    return document(
        {
            "Sid": "WriteBuildLogs",
            "Effect": "Allow",
            "Action": LOG_WRITE_ACTIONS,
            "Resource": log_group_arn(platform, names.build_log_group),
        }
    )


def permissions_boundary_policy(region: str, account_id: str, artifact_bucket: str, efs_file_system_id: str) -> dict[str, Any]:
    """The boundary on every tenant role: the most any tenant role could ever do."""
    return document(
        {"Sid": "EcrLogin", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
        {
            "Sid": "TenantImages",
            "Effect": "Allow",
            "Action": ECR_PUSH_ACTIONS,
            "Resource": f"arn:{PARTITION}:ecr:{region}:{account_id}:repository/easydeploy/*",
        },
        {
            "Sid": "TenantLogs",
            "Effect": "Allow",
            "Action": LOG_WRITE_ACTIONS,
            "Resource": f"arn:{PARTITION}:logs:{region}:{account_id}:log-group:/easydeploy/*",
        },
        {
            "Sid": "TenantArtifacts",
            "Effect": "Allow",
            "Action": ["s3:PutObject", "s3:GetObject"],
            "Resource": f"arn:{PARTITION}:s3:::{artifact_bucket}/artifacts/*",
        },
        {
            "Sid": "TenantFiles",
            "Effect": "Allow",
            "Action": ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"],
            "Resource": f"arn:{PARTITION}:elasticfilesystem:{region}:{account_id}:file-system/{efs_file_system_id}",
        },
        {"Sid": "DescribeNetwork", "Effect": "Allow", "Action": EC2_DESCRIBE_ACTIONS, "Resource": "*"},
        {
            "Sid": "BuildNetworkInterfaces",
            "Effect": "Allow",
            "Action": ["ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface", "ec2:CreateNetworkInterfacePermission"],
            "Resource": [
                f"arn:{PARTITION}:ec2:{region}:{account_id}:network-interface/*",
                f"arn:{PARTITION}:ec2:{region}:{account_id}:subnet/*",
                f"arn:{PARTITION}:ec2:{region}:{account_id}:security-group/*",
            ],
        },
    )


def task_execution_policy(region: str, account_id: str) -> dict[str, Any]:
    """The shared task execution role: pull tenant images, write app logs, read tenant secrets."""
    return document(
        {"Sid": "EcrLogin", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
        {
            "Sid": "PullImages",
            "Effect": "Allow",
            "Action": ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
            "Resource": f"arn:{PARTITION}:ecr:{region}:{account_id}:repository/easydeploy/*",
        },
        {
            "Sid": "AppLogs",
            "Effect": "Allow",
            "Action": LOG_WRITE_ACTIONS,
            "Resource": f"arn:{PARTITION}:logs:{region}:{account_id}:log-group:/easydeploy/apps/*",
        },
        {
            "Sid": "TenantSecrets",
            "Effect": "Allow",
            "Action": ["ssm:GetParameters"],
            "Resource": f"arn:{PARTITION}:ssm:{region}:{account_id}:parameter/easydeploy/*",
        },
    )
