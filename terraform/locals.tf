data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

data "aws_availability_zones" "available" {
  #checkov:skip=CKV_AWS_394:Only the first var.az_count zones (sorted by name) are used; a zone AWS adds later does not change which subnets exist.
  state = "available"
}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name

  azs = slice(data.aws_availability_zones.available.names, 0, var.az_count)

  service_host       = "${var.service_subdomain}.${var.apps_domain}"
  service_public_url = "https://${local.service_host}"
  service_port       = 3000

  # Names the pipeline uses; the service task role and the permissions boundary
  # are written against these (see iam_service.tf).
  tenant_role_path = "/easydeploy/tenants/"
  tenant_prefix    = "ed-"
  repos_mount_path = "/mnt/repos"
  state_table_arns = [for t in var.state_tables : "arn:${local.partition}:dynamodb:${local.region}:${local.account_id}:table/${var.name}-${t}"]

  # The pipeline's names are fixed by the service code (bot/), not by var.name.
  tenant_role_arn_prefix = "arn:${local.partition}:iam::${local.account_id}:role/easydeploy/tenants/ed-"
  tenant_ecr_arn         = "arn:${local.partition}:ecr:${local.region}:${local.account_id}:repository/easydeploy/*/*"
  tenant_log_group_arns = [
    "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/easydeploy/builds/*",
    "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/easydeploy/apps/*",
  ]
  tenant_ssm_arn          = "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter/easydeploy/*"
  tenant_codebuild_arn    = "arn:${local.partition}:codebuild:${local.region}:${local.account_id}:project/ed-*"
  tenant_artifacts_arn    = "${aws_s3_bucket.artifacts.arn}/artifacts/*"
  tenant_ecs_service_arn  = "arn:${local.partition}:ecs:${local.region}:${local.account_id}:service/${aws_ecs_cluster.main.name}/ed-*"
  tenant_task_def_arn     = "arn:${local.partition}:ecs:${local.region}:${local.account_id}:task-definition/ed-*:*"
  tenant_target_group_arn = "arn:${local.partition}:elasticloadbalancing:${local.region}:${local.account_id}:targetgroup/ed-*/*"
  alb_listener_rule_arn   = "arn:${local.partition}:elasticloadbalancing:${local.region}:${local.account_id}:listener-rule/app/${aws_lb.shared.name}/*"

  # Tags every pipeline-created resource must carry.
  tenant_tag_keys = ["easydeploy:owner", "easydeploy:repo", "easydeploy:installation"]
}
