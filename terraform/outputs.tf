# The settings the service reads in aws mode: one output per EASYDEPLOY_*
# variable (named in lower case) and all of them as one map, e.g.
#   terraform output -json service_environment | jq -r 'to_entries[] | "\(.key)=\(.value)"' >> .env
# tests/infra checks that these are exactly the names bot/settings.py reads.

output "easydeploy_aws_mode" {
  description = "EASYDEPLOY_AWS_MODE"
  value       = local.service_environment["EASYDEPLOY_AWS_MODE"]
}

output "aws_region" {
  description = "AWS_REGION"
  value       = local.service_environment["AWS_REGION"]
}

output "easydeploy_apps_domain" {
  description = "EASYDEPLOY_APPS_DOMAIN"
  value       = local.service_environment["EASYDEPLOY_APPS_DOMAIN"]
}

output "easydeploy_public_url" {
  description = "EASYDEPLOY_PUBLIC_URL"
  value       = local.service_environment["EASYDEPLOY_PUBLIC_URL"]
}

output "easydeploy_repos_root" {
  description = "EASYDEPLOY_REPOS_ROOT"
  value       = local.service_environment["EASYDEPLOY_REPOS_ROOT"]
}

output "easydeploy_cluster_name" {
  description = "EASYDEPLOY_CLUSTER_NAME"
  value       = local.service_environment["EASYDEPLOY_CLUSTER_NAME"]
}

output "easydeploy_vpc_id" {
  description = "EASYDEPLOY_VPC_ID"
  value       = local.service_environment["EASYDEPLOY_VPC_ID"]
}

output "easydeploy_private_subnet_ids" {
  description = "EASYDEPLOY_PRIVATE_SUBNET_IDS"
  value       = local.service_environment["EASYDEPLOY_PRIVATE_SUBNET_IDS"]
}

output "easydeploy_app_security_group_id" {
  description = "EASYDEPLOY_APP_SECURITY_GROUP_ID"
  value       = local.service_environment["EASYDEPLOY_APP_SECURITY_GROUP_ID"]
}

output "easydeploy_build_security_group_id" {
  description = "EASYDEPLOY_BUILD_SECURITY_GROUP_ID"
  value       = local.service_environment["EASYDEPLOY_BUILD_SECURITY_GROUP_ID"]
}

output "easydeploy_alb_listener_arn" {
  description = "EASYDEPLOY_ALB_LISTENER_ARN"
  value       = local.service_environment["EASYDEPLOY_ALB_LISTENER_ARN"]
}

output "easydeploy_efs_file_system_id" {
  description = "EASYDEPLOY_EFS_FILE_SYSTEM_ID"
  value       = local.service_environment["EASYDEPLOY_EFS_FILE_SYSTEM_ID"]
}

output "easydeploy_artifact_bucket" {
  description = "EASYDEPLOY_ARTIFACT_BUCKET"
  value       = local.service_environment["EASYDEPLOY_ARTIFACT_BUCKET"]
}

output "easydeploy_task_execution_role_arn" {
  description = "EASYDEPLOY_TASK_EXECUTION_ROLE_ARN"
  value       = local.service_environment["EASYDEPLOY_TASK_EXECUTION_ROLE_ARN"]
}

output "easydeploy_permissions_boundary_arn" {
  description = "EASYDEPLOY_PERMISSIONS_BOUNDARY_ARN"
  value       = local.service_environment["EASYDEPLOY_PERMISSIONS_BOUNDARY_ARN"]
}

output "easydeploy_tenant_role_path" {
  description = "EASYDEPLOY_TENANT_ROLE_PATH"
  value       = local.service_environment["EASYDEPLOY_TENANT_ROLE_PATH"]
}

output "easydeploy_queue_url" {
  description = "EASYDEPLOY_QUEUE_URL"
  value       = local.service_environment["EASYDEPLOY_QUEUE_URL"]
}

output "easydeploy_state_url" {
  description = "EASYDEPLOY_STATE_URL"
  value       = local.service_environment["EASYDEPLOY_STATE_URL"]
}

output "easydeploy_events_queue_url" {
  description = "EASYDEPLOY_EVENTS_QUEUE_URL"
  value       = local.service_environment["EASYDEPLOY_EVENTS_QUEUE_URL"]
}

output "service_environment" {
  description = "Every setting above, keyed by its environment variable name."
  value       = local.service_environment
}

# --- For operators and CI (not service settings) ----------------------------

output "service_image_repository_url" {
  description = "ECR repository of the service's own image (CI pushes here)."
  value       = aws_ecr_repository.service.repository_url
}

output "service_ecs_service_name" {
  description = "The service's ECS service, rolled by CI."
  value       = aws_ecs_service.service.name
}

output "service_task_definition_family" {
  description = "Task definition family of the service."
  value       = aws_ecs_task_definition.service.family
}

output "github_deploy_role_arn" {
  description = "Role GitHub Actions assumes with OIDC (set as the AWS_DEPLOY_ROLE_ARN repository variable)."
  value       = aws_iam_role.github_deploy.arn
}

output "service_secret_arns" {
  description = "Secrets Manager entries to fill in after `easydeploy register` (env var name => secret ARN)."
  value       = { for k, s in aws_secretsmanager_secret.service : k => s.arn }
}

output "alb_dns_name" {
  description = "DNS name of the shared ALB."
  value       = aws_lb.shared.dns_name
}
