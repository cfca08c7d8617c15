"""boto3 clients for the pipeline, with adaptive retries and a per-operation call counter."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config

SERVICES = ("iam", "sts", "ecr", "codebuild", "logs", "s3", "ecs", "elbv2", "application-autoscaling", "efs", "ec2", "ssm")


@dataclass
class AwsClients:
    """One boto3 client per service the pipeline uses, and the log of operations they called."""

    iam: Any
    sts: Any
    ecr: Any
    codebuild: Any
    logs: Any
    s3: Any
    ecs: Any
    elbv2: Any
    autoscaling: Any
    efs: Any
    ec2: Any
    ssm: Any
    region: str
    # "service.Operation" per API call (once per call, not per retry attempt).
    calls: list[str] = field(default_factory=list)

    def counts(self) -> Counter[str]:
        """Calls per operation so far."""
        return Counter(self.calls)

    def all(self) -> list[Any]:
        """Every client."""
        return [self.iam, self.sts, self.ecr, self.codebuild, self.logs, self.s3, self.ecs, self.elbv2, self.autoscaling, self.efs, self.ec2, self.ssm]


def make_clients(
    region: str, endpoint_url: str | None, *, max_attempts: int = 5, retry_mode: str = "adaptive",
    static_credentials: tuple[str, str] | None = None,
) -> AwsClients:
    """Build the clients (endpoint_url points them all at an emulator; None means real AWS).

    static_credentials is for the emulator only; against AWS the default credential chain
    (the service's IAM role) is used.
    """
    config = Config(
        region_name=region,
        # total_max_attempts counts the first try too (botocore's "max_attempts" would count only retries).
        retries={"total_max_attempts": max_attempts, "mode": retry_mode},
        connect_timeout=10,
        read_timeout=60,
    )
    if static_credentials is not None:
        session = boto3.session.Session(
            region_name=region, aws_access_key_id=static_credentials[0], aws_secret_access_key=static_credentials[1]
        )
    else:
        session = boto3.session.Session(region_name=region)
    made = {
        name: session.client(name, region_name=region, endpoint_url=endpoint_url, config=config)
        for name in SERVICES
    }
    clients = AwsClients(
        iam=made["iam"], sts=made["sts"], ecr=made["ecr"], codebuild=made["codebuild"], logs=made["logs"],
        s3=made["s3"], ecs=made["ecs"], elbv2=made["elbv2"], autoscaling=made["application-autoscaling"],
        efs=made["efs"], ec2=made["ec2"], ssm=made["ssm"], region=region,
    )

    def count(event_name: str, **_: Any) -> None:
        # event_name is "before-call.<service-id>.<Operation>"
        _, service, operation = event_name.split(".", 2)
        clients.calls.append(f"{service}.{operation}")

    for client in clients.all():
        client.meta.events.register("before-call.*.*", count)
    return clients
