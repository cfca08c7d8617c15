"""Sandbox mode: an embedded moto server and the platform resources the pipeline needs, created idempotently."""

from __future__ import annotations

import json
from typing import Any, Callable

from botocore.exceptions import ClientError

from bot.pipeline import policies
from bot.pipeline.awsclients import AwsClients
from bot.pipeline.model import PlatformResources
from bot.pipeline.names import TENANT_ROLE_PATH

SANDBOX_NAME = "easydeploy"
SANDBOX_TAGS = {"easydeploy:platform": "sandbox"}
VPC_CIDR = "10.42.0.0/16"
SUBNETS = {  # name → (cidr, az suffix, public)
    "easydeploy-private-a": ("10.42.0.0/20", "a", False),
    "easydeploy-private-b": ("10.42.16.0/20", "b", False),
    "easydeploy-public-a": ("10.42.128.0/20", "a", True),
    "easydeploy-public-b": ("10.42.144.0/20", "b", True),
}
EXECUTION_ROLE = "easydeploy-task-execution"
BOUNDARY_POLICY = "easydeploy-tenant-boundary"
PLATFORM_PATH = "/easydeploy/"


def start_embedded_moto() -> tuple[str, Callable[[], None]]:
    """Start moto on 127.0.0.1 with a free port; returns its endpoint URL and a stop function."""
    import logging

    from moto.server import ThreadedMotoServer  # imported here: only sandbox mode needs it

    # werkzeug logs every emulator request at INFO; the service's own logs matter more.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return f"http://{host}:{port}", server.stop


def _tags(extra: dict[str, str] | None = None) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in {**SANDBOX_TAGS, **(extra or {})}.items()]


def _by_name(items: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    for item in items:
        if {"Key": "Name", "Value": name} in (item.get("Tags") or []):
            return item
    return None


def _vpc(c: AwsClients) -> str:
    vpcs = c.ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": [SANDBOX_NAME]}])["Vpcs"]
    if vpcs:
        return vpcs[0]["VpcId"]
    vpc = c.ec2.create_vpc(CidrBlock=VPC_CIDR, TagSpecifications=[{"ResourceType": "vpc", "Tags": _tags({"Name": SANDBOX_NAME})}])["Vpc"]
    return vpc["VpcId"]


def _subnets(c: AwsClients, vpc_id: str, region: str) -> dict[str, str]:
    found = c.ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]
    ids = {}
    for name, (cidr, az, public) in SUBNETS.items():
        existing = _by_name(found, name)
        if existing is None:
            existing = c.ec2.create_subnet(
                VpcId=vpc_id, CidrBlock=cidr, AvailabilityZone=f"{region}{az}",
                TagSpecifications=[{"ResourceType": "subnet", "Tags": _tags({"Name": name, "easydeploy:tier": "public" if public else "private"})}],
            )["Subnet"]
        ids[name] = existing["SubnetId"]
    return ids


def _security_group(c: AwsClients, vpc_id: str, name: str, description: str) -> str:
    groups = c.ec2.describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "group-name", "Values": [name]}]
    )["SecurityGroups"]
    if groups:
        return groups[0]["GroupId"]
    return c.ec2.create_security_group(
        GroupName=name, Description=description, VpcId=vpc_id,
        TagSpecifications=[{"ResourceType": "security-group", "Tags": _tags({"Name": name})}],
    )["GroupId"]


def _cluster(c: AwsClients) -> str:
    clusters = c.ecs.describe_clusters(clusters=[SANDBOX_NAME]).get("clusters", [])
    if not any(cl.get("status") == "ACTIVE" for cl in clusters):
        c.ecs.create_cluster(clusterName=SANDBOX_NAME, tags=[{"key": k, "value": v} for k, v in SANDBOX_TAGS.items()])
    return SANDBOX_NAME


def _listener(c: AwsClients, public_subnets: list[str], alb_sg: str) -> str:
    try:
        lb = c.elbv2.describe_load_balancers(Names=[SANDBOX_NAME])["LoadBalancers"][0]
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("LoadBalancerNotFound", "LoadBalancerNotFoundException"):
            raise
        lb = c.elbv2.create_load_balancer(
            Name=SANDBOX_NAME, Subnets=public_subnets, SecurityGroups=[alb_sg], Scheme="internet-facing",
            Type="application", Tags=_tags(),
        )["LoadBalancers"][0]
    listeners = c.elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    if listeners:
        return listeners[0]["ListenerArn"]
    # HTTP is fine in the sandbox; the Terraform platform terminates HTTPS with an ACM certificate.
    return c.elbv2.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=80,
        DefaultActions=[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "404", "ContentType": "text/plain", "MessageBody": "no such app"}}],
    )["Listeners"][0]["ListenerArn"]


def _file_system(c: AwsClients, private_subnets: list[str], app_sg: str) -> str:
    systems = c.efs.describe_file_systems(CreationToken=SANDBOX_NAME).get("FileSystems", [])
    if systems:
        fs_id = systems[0]["FileSystemId"]
    else:
        fs_id = c.efs.create_file_system(CreationToken=SANDBOX_NAME, Encrypted=True, Tags=_tags({"Name": SANDBOX_NAME}))["FileSystemId"]
    mounted = {m["SubnetId"] for m in c.efs.describe_mount_targets(FileSystemId=fs_id).get("MountTargets", [])}
    for subnet in private_subnets:
        if subnet not in mounted:
            c.efs.create_mount_target(FileSystemId=fs_id, SubnetId=subnet, SecurityGroups=[app_sg])
    return fs_id


def _bucket(c: AwsClients, account_id: str, region: str) -> str:
    name = f"easydeploy-artifacts-{account_id}-{region}"
    try:
        c.s3.head_bucket(Bucket=name)
    except ClientError:
        kwargs: dict[str, Any] = {"Bucket": name}
        if region != "us-east-1":  # us-east-1 refuses an explicit LocationConstraint
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        c.s3.create_bucket(**kwargs)
    return name


def _role(c: AwsClients, name: str, service: str, policy: dict[str, Any]) -> str:
    try:
        return c.iam.get_role(RoleName=name)["Role"]["Arn"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "NoSuchEntity":
            raise
    arn = c.iam.create_role(
        RoleName=name, Path=PLATFORM_PATH, AssumeRolePolicyDocument=json.dumps(policies.trust_policy(service)), Tags=_tags(),
    )["Role"]["Arn"]
    c.iam.put_role_policy(RoleName=name, PolicyName="platform", PolicyDocument=json.dumps(policy))
    return arn


def _boundary(c: AwsClients, account_id: str, doc: dict[str, Any]) -> str:
    arn = f"arn:aws:iam::{account_id}:policy{PLATFORM_PATH}{BOUNDARY_POLICY}"
    try:
        c.iam.get_policy(PolicyArn=arn)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "NoSuchEntity":
            raise
        arn = c.iam.create_policy(PolicyName=BOUNDARY_POLICY, Path=PLATFORM_PATH, PolicyDocument=json.dumps(doc), Tags=_tags())["Policy"]["Arn"]
    return arn


def provision_sandbox(clients: AwsClients, region: str) -> PlatformResources:
    """Create (or find) the platform's shared resources in the emulator; a second call creates nothing."""
    c = clients
    account_id = c.sts.get_caller_identity()["Account"]
    vpc_id = _vpc(c)
    subnets = _subnets(c, vpc_id, region)
    private = [subnets["easydeploy-private-a"], subnets["easydeploy-private-b"]]
    public = [subnets["easydeploy-public-a"], subnets["easydeploy-public-b"]]
    alb_sg = _security_group(c, vpc_id, "easydeploy-alb", "Easy Deploy load balancer")
    app_sg = _security_group(c, vpc_id, "easydeploy-apps", "Easy Deploy app tasks")
    build_sg = _security_group(c, vpc_id, "easydeploy-builds", "Easy Deploy builds")
    cluster = _cluster(c)
    listener = _listener(c, public, alb_sg)
    fs_id = _file_system(c, private, app_sg)
    bucket = _bucket(c, account_id, region)
    execution_role = _role(c, EXECUTION_ROLE, "ecs-tasks.amazonaws.com", policies.task_execution_policy(region, account_id))
    boundary = _boundary(c, account_id, policies.permissions_boundary_policy(region, account_id, bucket, fs_id))
    return PlatformResources(
        region=region,
        account_id=account_id,
        cluster_name=cluster,
        vpc_id=vpc_id,
        private_subnet_ids=private,
        app_security_group_id=app_sg,
        build_security_group_id=build_sg,
        alb_listener_arn=listener,
        efs_file_system_id=fs_id,
        artifact_bucket=bucket,
        task_execution_role_arn=execution_role,
        permissions_boundary_arn=boundary,
        tenant_role_path=TENANT_ROLE_PATH,
    )
