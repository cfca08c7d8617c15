"""The platform's Terraform, read as data: the properties a security review looks for."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from conftest import (
    REPO,
    SERVICE_SECRETS,
    SERVICE_SETTINGS,
    TERRAFORM,
    Terraform,
    one,
    parse_hcl,
    refers_to,
)

# Actions that have no resource-level permissions in IAM, so Resource "*" is
# the only way to grant them. Any other action on "*" is a failure.
UNSCOPABLE_ACTIONS = {
    "ecr:GetAuthorizationToken",
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeVpcs",
    "ecs:RegisterTaskDefinition",
    "ecs:DescribeTaskDefinition",
    "ecs:ListTaskDefinitions",
    "elasticloadbalancing:DescribeListeners",
    "elasticloadbalancing:DescribeRules",
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeTargetHealth",
    "elasticloadbalancing:DescribeTags",
    "application-autoscaling:DescribeScalableTargets",
    "application-autoscaling:DescribeScalingPolicies",
}

# The one bucket that may not use the platform key: ALB access logs can only be
# delivered to an SSE-S3 bucket (terraform/s3.tf).
SSE_S3_BUCKETS = {"logs"}


def _as_list(value: object) -> list:
    """An attribute is a list literal or one expression (e.g. "${concat(...)}")."""
    return value if isinstance(value, list) else [value]


def _statements(tf: Terraform):
    for doc, statements in tf.policy_documents():
        for st in statements:
            st = dict(st)
            for key in ("actions", "resources"):
                if key in st:
                    st[key] = _as_list(st[key])
            yield doc, st


def _is_allow(st: dict) -> bool:
    return st.get("effect", "Allow") == "Allow"


def _conditions(st: dict) -> list[dict]:
    """Static and dynamic condition blocks of a statement."""
    found = list(st.get("condition", []))
    for dyn in st.get("dynamic", []):
        if "condition" in dyn:
            found.extend(one(dyn["condition"]).get("content", []))
    return found


def _service_task(tf: Terraform) -> list[dict]:
    return dict(tf.policy_documents())["service_task"]


# --- files -------------------------------------------------------------------


def test_every_terraform_file_parses() -> None:
    files = sorted(TERRAFORM.rglob("*.tf"))
    assert len(files) >= 15
    for path in files:
        assert isinstance(parse_hcl(path), dict), path


def test_terraform_fmt_is_clean() -> None:
    binary = shutil.which("terraform")
    if binary is None:
        pytest.skip("the terraform binary is not installed; scripts/infra-checks.sh runs fmt where it is")
    result = subprocess.run(
        [binary, "fmt", "-check", "-recursive", "-diff", str(TERRAFORM)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_backend_is_a_partial_s3_configuration(tf: Terraform) -> None:
    backend = one(one(tf.files["backend.tf"]["terraform"])["backend"])
    s3 = backend["s3"]
    assert s3 == {"encrypt": True}, "bucket/key/table come from -backend-config, never from the repo"
    assert (TERRAFORM / "README.md").read_text().count("backend.hcl") >= 2


def test_state_bootstrap_is_versioned_encrypted_and_locked(tf_bootstrap: Terraform) -> None:
    versioning = tf_bootstrap.resource("aws_s3_bucket_versioning", "state")
    assert one(versioning["versioning_configuration"])["status"] == "Enabled"
    sse = one(one(tf_bootstrap.resource("aws_s3_bucket_server_side_encryption_configuration", "state")["rule"])["apply_server_side_encryption_by_default"])
    assert sse["sse_algorithm"] == "aws:kms"
    pab = tf_bootstrap.resource("aws_s3_bucket_public_access_block", "state")
    assert all(pab[k] is True for k in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"))
    lock = tf_bootstrap.resource("aws_dynamodb_table", "lock")
    assert lock["hash_key"] == "LockID"
    assert one(lock["point_in_time_recovery"])["enabled"] is True


# --- IAM ---------------------------------------------------------------------


def test_every_iam_policy_is_a_policy_document(tf: Terraform) -> None:
    """So the statement checks below see every statement there is."""
    kinds = ("aws_iam_role_policy", "aws_iam_policy", "aws_s3_bucket_policy", "aws_sqs_queue_policy", "aws_efs_file_system_policy", "aws_kms_key")
    for kind in kinds:
        for block in tf.of(kind):
            policy = block.body.get("policy")
            if kind == "aws_kms_key":
                assert policy is not None, block.address
            assert re.fullmatch(r"\$\{data\.aws_iam_policy_document\.\w+\.json\}", policy), block.address
    for block in tf.of("aws_iam_role"):
        assert re.fullmatch(r"\$\{data\.aws_iam_policy_document\.\w+\.json\}", block.body["assume_role_policy"]), block.address
    assert not tf.of("aws_iam_user"), "no IAM users, no long-lived keys"
    assert not tf.of("aws_iam_access_key")


def test_no_statement_allows_star_actions(tf: Terraform) -> None:
    for doc, st in _statements(tf):
        if not _is_allow(st):
            continue
        assert "*" not in st.get("actions", []), (doc, st.get("sid"))
        assert "not_actions" not in st, (doc, st.get("sid"))
        assert "not_resources" not in st, (doc, st.get("sid"))


def test_no_identity_policy_allows_actions_on_star_resources_beyond_unscopable(tf: Terraform) -> None:
    """Resource "*" only where IAM offers nothing narrower; never "*" actions on "*"."""
    for doc, st in _statements(tf):
        if not _is_allow(st) or "principals" in st:
            continue  # resource policies: Resource is the resource itself
        if "*" in st.get("resources", []):
            broad = set(st["actions"]) - UNSCOPABLE_ACTIONS
            assert not broad, f"{doc}/{st.get('sid')}: {sorted(broad)} on Resource '*'"


def test_resource_policies_with_star_give_it_only_to_the_account_or_a_service(tf: Terraform) -> None:
    for doc, st in _statements(tf):
        if not _is_allow(st) or "principals" not in st:
            continue
        for principal in st["principals"]:
            if "*" in principal["identifiers"]:
                # Anyone only through a narrowing condition (EFS: only via a mount target).
                assert _conditions(st), f"{doc}/{st.get('sid')} allows anyone unconditionally"
                assert not any(a.endswith(":*") or a == "*" for a in st["actions"]), (doc, st.get("sid"))
        if any(a.endswith(":*") for a in st["actions"]):
            root = [p for p in st["principals"] if p["type"] == "AWS"]
            assert root and all(i.endswith(":root") for p in root for i in p["identifiers"]), (doc, st.get("sid"))


def test_tenant_roles_are_created_only_with_the_boundary_under_the_tenant_path(tf: Terraform) -> None:
    statements = _service_task(tf)
    iam_actions = {a for st in statements for a in st["actions"] if a.startswith("iam:")}
    assert iam_actions == {
        "iam:CreateRole",
        "iam:PutRolePolicy",
        "iam:AttachRolePolicy",
        "iam:PutRolePermissionsBoundary",
        "iam:TagRole",
        "iam:GetRole",
        "iam:GetRolePolicy",
        "iam:ListRolePolicies",
        "iam:ListAttachedRolePolicies",
        "iam:PassRole",
        "iam:CreateServiceLinkedRole",
    }
    prefix = tf.locals["tenant_role_arn_prefix"]
    assert prefix.endswith(":role/easydeploy/tenants/ed-")
    assert tf.locals["tenant_role_path"] == "/easydeploy/tenants/"
    for st in statements:
        writes = {"iam:CreateRole", "iam:PutRolePolicy", "iam:AttachRolePolicy", "iam:PutRolePermissionsBoundary"} & set(st["actions"])
        if writes:
            assert st["resources"] == ["${local.tenant_role_arn_prefix}*"], st["sid"]
            cond = [c for c in _conditions(st) if c["variable"] == "iam:PermissionsBoundary"]
            assert cond and cond[0]["test"] == "StringEquals"
            assert cond[0]["values"] == ["${aws_iam_policy.tenant_boundary.arn}"]
        if any(a in st["actions"] for a in ("iam:TagRole", "iam:GetRole")):
            assert all(r.startswith("${local.tenant_role_arn_prefix}") for r in st["resources"]), st["sid"]


def test_pass_role_only_for_tenant_roles_and_the_shared_execution_role(tf: Terraform) -> None:
    passes = [st for st in _service_task(tf) if "iam:PassRole" in st["actions"]]
    assert len(passes) == 2
    allowed = {
        "codebuild.amazonaws.com": {"${local.tenant_role_arn_prefix}*-build"},
        "ecs-tasks.amazonaws.com": {"${local.tenant_role_arn_prefix}*-task", "${aws_iam_role.task_execution.arn}"},
    }
    for st in passes:
        assert st["actions"] == ["iam:PassRole"]
        cond = [c for c in _conditions(st) if c["variable"] == "iam:PassedToService"]
        assert len(cond) == 1 and cond[0]["test"] == "StringEquals"
        (service,) = cond[0]["values"]
        assert set(st["resources"]) == allowed[service]


def test_pipeline_creations_require_the_tenant_tags(tf: Terraform) -> None:
    tag_keys = tf.locals["tenant_tag_keys"]
    assert tag_keys == ["easydeploy:owner", "easydeploy:repo", "easydeploy:installation"]
    creating = {
        "ecr:CreateRepository",
        "codebuild:CreateProject",
        "ecs:RegisterTaskDefinition",
        "ecs:CreateService",
        "elasticloadbalancing:CreateTargetGroup",
        "elasticfilesystem:CreateAccessPoint",
    }
    seen = set()
    for st in _service_task(tf):
        hit = creating & set(st["actions"])
        if not hit:
            continue
        seen |= hit
        tag_conditions = [c for c in _conditions(st) if c["variable"].startswith("aws:RequestTag/")]
        assert tag_conditions, st["sid"]
        assert all(c["test"] == "Null" and c["values"] == ["false"] for c in tag_conditions)
    assert seen == creating


def test_service_task_role_is_scoped_to_the_pipeline_names(tf: Terraform) -> None:
    loc = tf.locals
    assert loc["tenant_ecr_arn"].endswith(":repository/easydeploy/*/*")
    assert loc["tenant_codebuild_arn"].endswith(":project/ed-*")
    assert loc["tenant_log_group_arns"][0].endswith(":log-group:/easydeploy/builds/*")
    assert loc["tenant_log_group_arns"][1].endswith(":log-group:/easydeploy/apps/*")
    assert loc["tenant_artifacts_arn"] == "${aws_s3_bucket.artifacts.arn}/artifacts/*"
    assert loc["tenant_ssm_arn"].endswith(":parameter/easydeploy/*")
    assert loc["tenant_ecs_service_arn"].endswith("service/${aws_ecs_cluster.main.name}/ed-*")
    assert loc["tenant_target_group_arn"].endswith(":targetgroup/ed-*/*")
    by_sid = {st["sid"]: st for st in _service_task(tf)}
    assert set(by_sid["RunTenantBuilds"]["actions"]) == {
        "codebuild:UpdateProject",
        "codebuild:BatchGetProjects",
        "codebuild:StartBuild",
        "codebuild:BatchGetBuilds",
        "codebuild:StopBuild",
    }
    assert by_sid["TenantArtifacts"]["actions"] == ["s3:PutObject", "s3:GetObject"]
    assert by_sid["CreateRulesOnSharedListener"]["resources"] == ["${aws_lb_listener.https.arn}"]
    assert by_sid["ReadTenantParameters"]["actions"] == ["ssm:GetParameters"]
    # nothing destructive on tenant resources
    actions = {a for st in _service_task(tf) for a in st["actions"]}
    tenant_services = ("iam:", "ecr:", "codebuild:", "ecs:", "elasticloadbalancing:", "logs:", "elasticfilesystem:", "s3:")
    destructive = {a for a in actions if a.startswith(tenant_services) and re.search(r":(Delete|Detach|Remove|Deregister)", a)}
    assert not destructive


def test_permissions_boundary_caps_tenants(tf: Terraform) -> None:
    statements = dict(tf.policy_documents())["tenant_boundary"]
    services = {a.split(":")[0] for st in statements for a in st["actions"]}
    assert services == {"ecr", "logs", "s3", "kms", "elasticfilesystem", "ssm", "ec2"}
    assert not any(a.startswith("iam:") or a.startswith("sts:") for st in statements for a in st["actions"])
    by_sid = {st["sid"]: st for st in statements}
    assert by_sid["EcrPushPullTenantRepositories"]["resources"] == ["${local.tenant_ecr_arn}"]
    assert by_sid["WriteTenantLogs"]["resources"] == "${local.tenant_log_group_arns}"
    assert by_sid["TenantArtifacts"]["resources"] == ["${local.tenant_artifacts_arn}"]
    assert set(by_sid["MountRepos"]["actions"]) == {"elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"}
    eni = by_sid["CodeBuildVpcEniPermission"]
    assert eni["actions"] == ["ec2:CreateNetworkInterfacePermission"]
    variables = {c["variable"]: c["values"] for c in _conditions(eni)}
    assert variables["ec2:AuthorizedService"] == ["codebuild.amazonaws.com"]
    assert "ec2:Subnet" in variables
    assert "*" not in _as_list(by_sid["CodeBuildVpcCreateEni"]["resources"])
    assert "*" not in _as_list(by_sid["CodeBuildVpcDeleteEni"]["resources"])
    boundary = tf.resource("aws_iam_policy", "tenant_boundary")
    assert boundary["policy"] == "${data.aws_iam_policy_document.tenant_boundary.json}"


def test_ci_deploys_with_oidc_from_one_repository_and_ref(tf: Terraform) -> None:
    trust = one(dict(tf.policy_documents())["github_deploy_assume"])
    assert trust["actions"] == ["sts:AssumeRoleWithWebIdentity"]
    conditions = {c["variable"]: c for c in _conditions(trust)}
    assert conditions["token.actions.githubusercontent.com:aud"]["values"] == ["sts.amazonaws.com"]
    sub = conditions["token.actions.githubusercontent.com:sub"]
    assert sub["test"] == "StringEquals"
    assert sub["values"] == ["repo:${var.github_repository}:ref:${var.github_deploy_ref}"]


# --- network -----------------------------------------------------------------


def _ports(tf: Terraform, body: dict) -> set[int]:
    """Ports of a rule, resolving for_each over a local set of port strings."""
    if isinstance(body.get("from_port"), int):
        return set(range(body["from_port"], body["to_port"] + 1))
    match = re.fullmatch(r"\$\{local\.(\w+)\}", body.get("for_each", ""))
    assert match, f"cannot resolve ports of {body}"
    values = tf.locals[match.group(1)]
    inner = re.fullmatch(r"\$\{toset\((\[.*\])\)\}", values)
    assert inner, values
    return {int(p) for p in re.findall(r"\d+", inner.group(1))}


def test_only_the_alb_is_open_to_the_internet_and_only_on_80_and_443(tf: Terraform) -> None:
    open_ports: set[int] = set()
    for block in tf.of("aws_vpc_security_group_ingress_rule"):
        if block.body.get("cidr_ipv4") == "0.0.0.0/0" or block.body.get("cidr_ipv6") == "::/0":
            assert block.body["security_group_id"] == "${aws_security_group.alb.id}", block.address
            assert block.body["ip_protocol"] == "tcp"
            open_ports |= _ports(tf, block.body)
        assert "prefix_list_id" not in block.body
    assert open_ports == {80, 443}
    for block in tf.of("aws_security_group_rule"):
        if block.body.get("type") == "ingress":
            assert "0.0.0.0/0" not in block.body.get("cidr_blocks", []), block.address
            assert "::/0" not in block.body.get("ipv6_cidr_blocks", []), block.address
    for block in tf.of("aws_security_group"):
        for ingress in block.body.get("ingress", []):
            assert "0.0.0.0/0" not in ingress.get("cidr_blocks", []), block.address
            assert "::/0" not in ingress.get("ipv6_cidr_blocks", []), block.address
    assert tf.of("aws_default_security_group") and "ingress" not in tf.of("aws_default_security_group")[0].body


def test_app_tasks_accept_traffic_only_from_the_alb(tf: Terraform) -> None:
    rules = [b for b in tf.of("aws_vpc_security_group_ingress_rule") if b.body["security_group_id"] == "${aws_security_group.app.id}"]
    assert len(rules) == 1
    assert rules[0].body["referenced_security_group_id"] == "${aws_security_group.alb.id}"


def test_nfs_is_open_only_to_the_service_builds_and_ecs_hosts(tf: Terraform) -> None:
    rules = [b for b in tf.of("aws_vpc_security_group_ingress_rule") if b.body["security_group_id"] == "${aws_security_group.efs.id}"]
    assert len(rules) == 1
    body = rules[0].body
    assert body["from_port"] == body["to_port"] == 2049
    assert body["referenced_security_group_id"] == "${each.value}"
    assert set(body["for_each"]) == {"service", "build", "ecs_instances"}


def test_network_spans_zones_with_nat_per_zone_endpoints_acls_and_flow_logs(tf: Terraform) -> None:
    assert tf.variables["az_count"]["default"] >= 2
    assert tf.variables["single_nat_gateway"]["default"] is False
    assert "var.single_nat_gateway ? 1 : var.az_count" in tf.locals["nat_count"]
    assert tf.resource("aws_nat_gateway", "main")["count"] == "${local.nat_count}"
    for kind in ("aws_subnet", "aws_route_table"):
        assert {b.name for b in tf.of(kind)} >= {"public", "private"}
    assert tf.of("aws_internet_gateway")
    assert {b.name for b in tf.of("aws_network_acl")} == {"public", "private"}
    interface = set(tf.variables["interface_endpoints"]["default"])
    assert interface >= {"ecr.api", "ecr.dkr", "logs", "ssm", "sqs"}
    assert "s3" in tf.resource("aws_vpc_endpoint", "gateway")["for_each"]
    assert "dynamodb" in tf.resource("aws_vpc_endpoint", "gateway")["for_each"]
    assert tf.resource("aws_flow_log", "vpc")["vpc_id"] == "${aws_vpc.main.id}"
    assert tf.of("aws_ec2_instance_connect_endpoint")
    assert tf.resource("aws_subnet", "public")["map_public_ip_on_launch"] is False


def test_alb_redirects_http_drops_invalid_headers_and_logs(tf: Terraform) -> None:
    alb = tf.resource("aws_lb", "shared")
    assert alb["drop_invalid_header_fields"] is True
    assert one(alb["access_logs"])["enabled"] is True
    http = tf.resource("aws_lb_listener", "http")
    action = one(http["default_action"])
    assert action["type"] == "redirect" and one(action["redirect"])["protocol"] == "HTTPS"
    https = tf.resource("aws_lb_listener", "https")
    assert https["protocol"] == "HTTPS" and https["port"] == 443
    assert "TLS13" in tf.variables["alb_ssl_policy"]["default"]
    cert = tf.resource("aws_acm_certificate", "apps")
    assert cert["domain_name"] == "*.${var.apps_domain}"
    assert tf.of("aws_wafv2_web_acl_association")


# --- compute -----------------------------------------------------------------


def test_cluster_has_insights_and_the_three_capacity_providers(tf: Terraform) -> None:
    cluster = tf.resource("aws_ecs_cluster", "main")
    assert {"name": "containerInsights", "value": "enabled"} in cluster["setting"]
    providers = tf.resource("aws_ecs_cluster_capacity_providers", "main")["capacity_providers"]
    assert "FARGATE" in providers and "FARGATE_SPOT" in providers
    assert "${aws_ecs_capacity_provider.ec2.name}" in providers
    template = tf.resource("aws_launch_template", "ecs")
    assert one(template["metadata_options"])["http_tokens"] == "required"
    assert "/mnt/repos" in str(template["user_data"]) or tf.locals["repos_mount_path"] == "/mnt/repos"
    user_data = (TERRAFORM / "templates" / "ecs-instance-user-data.sh.tftpl").read_text()
    assert "${mount_path}" in user_data and "tls,iam" in user_data


def test_service_runs_two_tasks_behind_the_alb_with_efs_and_secrets(tf: Terraform) -> None:
    assert tf.variables["service_desired_count"]["default"] == 2
    service = tf.resource("aws_ecs_service", "service")
    assert service["desired_count"] == "${var.service_desired_count}"
    assert one(service["network_configuration"])["assign_public_ip"] is False
    assert one(service["deployment_circuit_breaker"]) == {"enable": True, "rollback": True}
    td = tf.resource("aws_ecs_task_definition", "service")
    volume = one(td["volume"])
    efs = one(volume["efs_volume_configuration"])
    assert efs["transit_encryption"] == "ENABLED"
    assert one(efs["authorization_config"])["iam"] == "ENABLED"
    containers = td["container_definitions"]
    assert "local.repos_mount_path" in containers and "/healthz" in containers
    assert "aws_secretsmanager_secret.service[k].arn" in containers
    assert td["execution_role_arn"] == "${aws_iam_role.service_execution.arn}"
    assert td["task_role_arn"] == "${aws_iam_role.service_task.arn}"
    tg = tf.resource("aws_lb_target_group", "service")
    assert one(tg["health_check"])["path"] == "/healthz"
    assert tf.locals["service_port"] == 3000
    rule = tf.resource("aws_lb_listener_rule", "service")
    assert one(one(rule["condition"])["host_header"])["values"] == ["${local.service_host}"]


def test_secrets_are_the_service_secrets(tf: Terraform) -> None:
    names = tf.locals["service_secret_names"]
    assert set(re.findall(r"EASYDEPLOY_\w+", names)) == set(SERVICE_SECRETS)
    secret = tf.resource("aws_secretsmanager_secret", "service")
    assert "secret_string" not in secret
    assert not tf.of("aws_secretsmanager_secret_version"), "values never live in Terraform state"


# --- data at rest --------------------------------------------------------------


def _is_platform_key(value: object) -> bool:
    return refers_to(value, "aws_kms_key.platform")


def test_platform_key_rotates(tf: Terraform) -> None:
    key = tf.resource("aws_kms_key", "platform")
    assert key["enable_key_rotation"] is True


def test_efs_is_encrypted_backed_up_and_mounted_in_every_private_subnet(tf: Terraform) -> None:
    fs = tf.resource("aws_efs_file_system", "repos")
    assert fs["encrypted"] is True and _is_platform_key(fs["kms_key_id"])
    backup = tf.resource("aws_efs_backup_policy", "repos")
    assert one(backup["backup_policy"])["status"] == "ENABLED"
    mount = tf.resource("aws_efs_mount_target", "repos")
    assert mount["count"] == "${var.az_count}"
    assert mount["subnet_id"] == "${aws_subnet.private[count.index].id}"
    policy = dict(tf.policy_documents())["efs_repos"]
    granted = {a for st in policy if _is_allow(st) for a in st["actions"]}
    assert granted == {"elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"}, "no ClientRootAccess: root is squashed"
    assert all(_conditions(st)[0]["variable"] == "elasticfilesystem:AccessedViaMountTarget" for st in policy)
    access_point = tf.resource("aws_efs_access_point", "service")
    assert one(access_point["posix_user"]) == {"uid": 1000, "gid": 1000}
    assert one(access_point["root_directory"])["path"] == "/repos"


def test_every_bucket_is_encrypted_versioned_private_and_expires(tf: Terraform) -> None:
    buckets = {b.name for b in tf.of("aws_s3_bucket")}
    assert buckets == {"artifacts", "logs"}

    def by_bucket(kind: str) -> dict[str, dict]:
        return {b.body["bucket"].split(".")[1]: b.body for b in tf.of(kind)}

    sse = by_bucket("aws_s3_bucket_server_side_encryption_configuration")
    versioning = by_bucket("aws_s3_bucket_versioning")
    pab = by_bucket("aws_s3_bucket_public_access_block")
    lifecycle = by_bucket("aws_s3_bucket_lifecycle_configuration")
    policies = by_bucket("aws_s3_bucket_policy")
    for name in buckets:
        rule = one(one(sse[name]["rule"])["apply_server_side_encryption_by_default"])
        if name in SSE_S3_BUCKETS:
            assert rule["sse_algorithm"] == "AES256"
        else:
            assert rule["sse_algorithm"] == "aws:kms" and _is_platform_key(rule["kms_master_key_id"]), name
        assert one(versioning[name]["versioning_configuration"])["status"] == "Enabled", name
        assert all(pab[name][k] is True for k in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"))
        assert any("expiration" in r for r in lifecycle[name]["rule"]), name
        assert name in policies, f"{name} needs the TLS-only policy"


def test_queues_are_encrypted_with_dead_letter_queues(tf: Terraform) -> None:
    queues = {b.name: b.body for b in tf.of("aws_sqs_queue")}
    assert set(queues) == {"jobs", "jobs_dlq", "events", "events_dlq"}
    for name, body in queues.items():
        assert _is_platform_key(body["kms_master_key_id"]), name
    assert queues["jobs"]["fifo_queue"] is True and queues["jobs"]["name"].endswith(".fifo")
    assert "aws_sqs_queue.jobs_dlq.arn" in queues["jobs"]["redrive_policy"]
    assert "aws_sqs_queue.events_dlq.arn" in queues["events"]["redrive_policy"]


def test_tables_are_encrypted_with_point_in_time_recovery(tf: Terraform) -> None:
    table = tf.resource("aws_dynamodb_table", "state")
    sse = one(table["server_side_encryption"])
    assert sse["enabled"] is True and _is_platform_key(sse["kms_key_arn"])
    assert one(table["point_in_time_recovery"])["enabled"] is True


def test_every_log_group_is_encrypted_and_expires(tf: Terraform) -> None:
    groups = tf.of("aws_cloudwatch_log_group")
    assert len(groups) >= 4
    for block in groups:
        assert _is_platform_key(block.body.get("kms_key_id")), block.address
        assert block.body["retention_in_days"] == "${var.log_retention_days}", block.address
    assert tf.variables["log_retention_days"]["default"] >= 365


def test_other_stores_use_the_platform_key(tf: Terraform) -> None:
    assert _is_platform_key(tf.resource("aws_secretsmanager_secret", "service")["kms_key_id"])
    assert _is_platform_key(tf.resource("aws_sns_topic", "alarms")["kms_master_key_id"])
    repo = tf.resource("aws_ecr_repository", "service")
    assert one(repo["encryption_configuration"])["encryption_type"] == "KMS"
    assert repo["image_tag_mutability"] == "IMMUTABLE"
    assert one(repo["image_scanning_configuration"])["scan_on_push"] is True


# --- scale-out mode and alarms ---------------------------------------------------


def test_eventbridge_sends_codebuild_and_ecs_changes_to_the_events_queue(tf: Terraform) -> None:
    patterns = tf.locals["pipeline_event_patterns"]
    sources = {re.sub(r"\W", "", str(p["source"])) for p in patterns.values()}
    assert sources == {"awscodebuild", "awsecs"}
    target = tf.resource("aws_cloudwatch_event_target", "pipeline")
    assert target["arn"] == "${aws_sqs_queue.events.arn}"


def test_alarms_on_5xx_and_dead_letters(tf: Terraform) -> None:
    metrics = {b.body["metric_name"] for b in tf.of("aws_cloudwatch_metric_alarm")}
    assert {"HTTPCode_ELB_5XX_Count", "HTTPCode_Target_5XX_Count", "ApproximateNumberOfMessagesVisible"} <= metrics
    dlq = tf.resource("aws_cloudwatch_metric_alarm", "dlq")
    assert "aws_sqs_queue.jobs_dlq.name" in str(dlq["for_each"]) and "aws_sqs_queue.events_dlq.name" in str(dlq["for_each"])


# --- outputs: the service's settings ---------------------------------------------


def test_outputs_are_exactly_the_service_settings(tf: Terraform) -> None:
    setting_outputs = {name for name in tf.outputs if name.startswith("easydeploy_") or name == "aws_region"}
    assert setting_outputs == {s.lower() for s in SERVICE_SETTINGS}
    for setting in SERVICE_SETTINGS:
        assert tf.outputs[setting.lower()]["value"] == f'${{local.service_environment["{setting}"]}}'
    assert set(tf.locals["service_environment"]) == set(SERVICE_SETTINGS)
    assert tf.outputs["service_environment"]["value"] == "${local.service_environment}"
    env = tf.locals["service_environment"]
    assert env["EASYDEPLOY_AWS_MODE"] == "aws"
    assert env["EASYDEPLOY_REPOS_ROOT"] == "${local.repos_mount_path}" and tf.locals["repos_mount_path"] == "/mnt/repos"
    assert env["EASYDEPLOY_TENANT_ROLE_PATH"] == "${local.tenant_role_path}"
    assert env["EASYDEPLOY_STATE_URL"].startswith("dynamodb://")
    assert env["EASYDEPLOY_PRIVATE_SUBNET_IDS"].startswith('${join(",",')
    assert env["EASYDEPLOY_ALB_LISTENER_ARN"] == "${aws_lb_listener.https.arn}"
    assert env["EASYDEPLOY_TASK_EXECUTION_ROLE_ARN"] == "${aws_iam_role.task_execution.arn}"


def test_settings_the_service_reads_match_the_outputs() -> None:
    """bot/settings.py and the Terraform outputs agree on every name."""
    settings = pytest.importorskip("bot.settings")
    fields = settings.Settings.model_fields
    for name in SERVICE_SETTINGS + SERVICE_SECRETS:
        field = "aws_region" if name == "AWS_REGION" else name.removeprefix("EASYDEPLOY_").lower()
        assert field in fields, f"{name} is not a setting of bot/settings.py"
    for field in getattr(settings, "AWS_PLATFORM_FIELDS", ()):
        assert f"EASYDEPLOY_{field.upper()}" in SERVICE_SETTINGS
    assert (REPO / "terraform" / "outputs.tf").is_file()
