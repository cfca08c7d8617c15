# The service's task role: exactly what the deploy pipeline calls, on the
# pipeline's names (locals.tf), and no more. Creation calls require the
# easydeploy:* tags in the request; tenant roles can only be created or given
# policies with the tenant permissions boundary attached.

resource "aws_iam_role" "service_task" {
  name               = "${var.name}-service-task"
  path               = "/${var.name}/"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

resource "aws_iam_role_policy" "service_task" {
  name   = "deploy-pipeline"
  role   = aws_iam_role.service_task.id
  policy = data.aws_iam_policy_document.service_task.json
}

data "aws_iam_policy_document" "service_task" {
  # --- identity: tenant roles ------------------------------------------------
  statement {
    sid = "TenantRolesOnlyWithBoundary"
    actions = [
      "iam:CreateRole",
      "iam:PutRolePolicy",
      "iam:AttachRolePolicy",
      "iam:PutRolePermissionsBoundary",
    ]
    resources = ["${local.tenant_role_arn_prefix}*"]
    condition {
      test     = "StringEquals"
      variable = "iam:PermissionsBoundary"
      values   = [aws_iam_policy.tenant_boundary.arn]
    }
  }

  # The pipeline keeps its bookkeeping (policy fingerprint, access point) in
  # easydeploy:* tags on the roles; no other tag keys.
  statement {
    sid       = "TagTenantRoles"
    actions   = ["iam:TagRole"]
    resources = ["${local.tenant_role_arn_prefix}*"]
    condition {
      test     = "ForAllValues:StringLike"
      variable = "aws:TagKeys"
      values   = ["easydeploy:*"]
    }
  }

  statement {
    sid = "ReadTenantRoles"
    actions = [
      "iam:GetRole",
      "iam:GetRolePolicy",
      "iam:ListRolePolicies",
      "iam:ListAttachedRolePolicies",
    ]
    resources = ["${local.tenant_role_arn_prefix}*"]
  }

  statement {
    sid       = "PassTenantBuildRoles"
    actions   = ["iam:PassRole"]
    resources = ["${local.tenant_role_arn_prefix}*-build"]
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["codebuild.amazonaws.com"]
    }
  }

  statement {
    sid       = "PassTenantTaskRoles"
    actions   = ["iam:PassRole"]
    resources = ["${local.tenant_role_arn_prefix}*-task", aws_iam_role.task_execution.arn]
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }

  # --- build: ECR repositories and CodeBuild projects ------------------------
  statement {
    sid       = "CreateTaggedTenantRepositories"
    actions   = ["ecr:CreateRepository", "ecr:TagResource"]
    resources = [local.tenant_ecr_arn]
    dynamic "condition" {
      for_each = local.tenant_tag_keys
      content {
        test     = "Null"
        variable = "aws:RequestTag/${condition.value}"
        values   = ["false"]
      }
    }
  }

  statement {
    sid = "ManageTenantRepositories"
    actions = [
      "ecr:PutLifecyclePolicy",
      "ecr:PutImageScanningConfiguration",
      "ecr:DescribeRepositories",
      "ecr:DescribeImages",
    ]
    resources = [local.tenant_ecr_arn]
  }

  statement {
    sid       = "CreateTaggedBuildProjects"
    actions   = ["codebuild:CreateProject"]
    resources = [local.tenant_codebuild_arn]
    dynamic "condition" {
      for_each = local.tenant_tag_keys
      content {
        test     = "Null"
        variable = "aws:RequestTag/${condition.value}"
        values   = ["false"]
      }
    }
  }

  statement {
    sid = "RunTenantBuilds"
    actions = [
      "codebuild:UpdateProject",
      "codebuild:BatchGetProjects",
      "codebuild:StartBuild",
      "codebuild:BatchGetBuilds",
      "codebuild:StopBuild",
    ]
    resources = [local.tenant_codebuild_arn]
  }

  statement {
    sid       = "TenantArtifacts"
    actions   = ["s3:PutObject", "s3:GetObject"]
    resources = [local.tenant_artifacts_arn]
  }

  # SSE-KMS on the artifact bucket, SQS and DynamoDB all use the platform key.
  statement {
    sid       = "UsePlatformKey"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [aws_kms_key.platform.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values = [
        "s3.${local.region}.amazonaws.com",
        "sqs.${local.region}.amazonaws.com",
        "dynamodb.${local.region}.amazonaws.com",
      ]
    }
  }

  statement {
    sid = "TenantLogGroups"
    actions = [
      "logs:CreateLogGroup",
      "logs:PutRetentionPolicy",
      "logs:TagResource",
      "logs:DescribeLogStreams",
      "logs:GetLogEvents",
      "logs:FilterLogEvents",
    ]
    resources = local.tenant_log_group_arns
  }

  # --- release: ECS, load balancer, autoscaling --------------------------------
  # Task definition calls have no resource-level permissions; registration
  # still has to carry the tenant tags.
  statement {
    sid       = "RegisterTaggedTaskDefinitions"
    actions   = ["ecs:RegisterTaskDefinition"]
    resources = ["*"]
    dynamic "condition" {
      for_each = local.tenant_tag_keys
      content {
        test     = "Null"
        variable = "aws:RequestTag/${condition.value}"
        values   = ["false"]
      }
    }
  }

  statement {
    sid       = "ReadTaskDefinitions"
    actions   = ["ecs:DescribeTaskDefinition", "ecs:ListTaskDefinitions"]
    resources = ["*"]
  }

  statement {
    sid       = "CreateTaggedTenantServices"
    actions   = ["ecs:CreateService"]
    resources = [local.tenant_ecs_service_arn]
    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [aws_ecs_cluster.main.arn]
    }
    dynamic "condition" {
      for_each = local.tenant_tag_keys
      content {
        test     = "Null"
        variable = "aws:RequestTag/${condition.value}"
        values   = ["false"]
      }
    }
  }

  statement {
    sid       = "UpdateTenantServices"
    actions   = ["ecs:UpdateService", "ecs:DescribeServices"]
    resources = [local.tenant_ecs_service_arn]
  }

  statement {
    sid       = "TagOnCreate"
    actions   = ["ecs:TagResource"]
    resources = [local.tenant_ecs_service_arn, local.tenant_task_def_arn]
    condition {
      test     = "StringEquals"
      variable = "ecs:CreateAction"
      values   = ["CreateService", "RegisterTaskDefinition"]
    }
  }

  # Release bookkeeping (fingerprint, task definition, scaling) lives in
  # easydeploy:* tags on the tenant's service.
  statement {
    sid       = "TagTenantServices"
    actions   = ["ecs:TagResource"]
    resources = [local.tenant_ecs_service_arn]
    condition {
      test     = "ForAllValues:StringLike"
      variable = "aws:TagKeys"
      values   = ["easydeploy:*"]
    }
  }

  statement {
    sid = "ReadClusterTasks"
    actions = [
      "ecs:DescribeTasks",
      "ecs:ListTasks",
      "ecs:ListServices",
      "ecs:DescribeClusters",
    ]
    resources = [
      aws_ecs_cluster.main.arn,
      "arn:${local.partition}:ecs:${local.region}:${local.account_id}:task/${aws_ecs_cluster.main.name}/*",
      "arn:${local.partition}:ecs:${local.region}:${local.account_id}:container-instance/${aws_ecs_cluster.main.name}/*",
    ]
  }

  statement {
    sid       = "CreateTaggedTargetGroups"
    actions   = ["elasticloadbalancing:CreateTargetGroup"]
    resources = [local.tenant_target_group_arn]
    dynamic "condition" {
      for_each = local.tenant_tag_keys
      content {
        test     = "Null"
        variable = "aws:RequestTag/${condition.value}"
        values   = ["false"]
      }
    }
  }

  statement {
    sid = "ManageTenantTargetGroups"
    actions = [
      "elasticloadbalancing:ModifyTargetGroup",
      "elasticloadbalancing:ModifyTargetGroupAttributes",
    ]
    resources = [local.tenant_target_group_arn]
  }

  statement {
    sid       = "CreateRulesOnSharedListener"
    actions   = ["elasticloadbalancing:CreateRule"]
    resources = [aws_lb_listener.https.arn]
  }

  statement {
    sid = "ManageRulesOnSharedListener"
    actions = [
      "elasticloadbalancing:ModifyRule",
      "elasticloadbalancing:SetRulePriorities",
    ]
    resources = [local.alb_listener_rule_arn]
  }

  statement {
    sid       = "TagTargetGroupsAndRulesOnCreate"
    actions   = ["elasticloadbalancing:AddTags"]
    resources = [local.tenant_target_group_arn, local.alb_listener_rule_arn]
    condition {
      test     = "StringEquals"
      variable = "elasticloadbalancing:CreateAction"
      values   = ["CreateTargetGroup", "CreateRule"]
    }
  }

  # Elastic Load Balancing Describe* calls have no resource-level permissions.
  statement {
    sid = "DescribeLoadBalancing"
    actions = [
      "elasticloadbalancing:DescribeListeners",
      "elasticloadbalancing:DescribeRules",
      "elasticloadbalancing:DescribeTargetGroups",
      "elasticloadbalancing:DescribeTargetHealth",
      "elasticloadbalancing:DescribeTags",
    ]
    resources = ["*"]
  }

  statement {
    sid = "AutoscaleTenantServices"
    actions = [
      "application-autoscaling:RegisterScalableTarget",
      "application-autoscaling:PutScalingPolicy",
      "application-autoscaling:TagResource",
    ]
    resources = ["arn:${local.partition}:application-autoscaling:${local.region}:${local.account_id}:scalable-target/*"]
  }

  # Application Auto Scaling Describe* calls have no resource-level permissions.
  statement {
    sid = "DescribeAutoscaling"
    actions = [
      "application-autoscaling:DescribeScalableTargets",
      "application-autoscaling:DescribeScalingPolicies",
    ]
    resources = ["*"]
  }

  # The first RegisterScalableTarget for ECS in an account creates this
  # service-linked role.
  statement {
    sid       = "AutoscalingServiceLinkedRole"
    actions   = ["iam:CreateServiceLinkedRole"]
    resources = ["arn:${local.partition}:iam::${local.account_id}:role/aws-service-role/ecs.application-autoscaling.amazonaws.com/AWSServiceRoleForApplicationAutoScaling_ECSService"]
    condition {
      test     = "StringEquals"
      variable = "iam:AWSServiceName"
      values   = ["ecs.application-autoscaling.amazonaws.com"]
    }
  }

  # --- source: the shared file system ----------------------------------------
  statement {
    sid       = "CreateTaggedTenantAccessPoints"
    actions   = ["elasticfilesystem:CreateAccessPoint"]
    resources = [aws_efs_file_system.repos.arn]
    dynamic "condition" {
      for_each = local.tenant_tag_keys
      content {
        test     = "Null"
        variable = "aws:RequestTag/${condition.value}"
        values   = ["false"]
      }
    }
  }

  statement {
    sid       = "TagAccessPointsOnCreate"
    actions   = ["elasticfilesystem:TagResource"]
    resources = ["arn:${local.partition}:elasticfilesystem:${local.region}:${local.account_id}:access-point/*"]
    condition {
      test     = "StringEquals"
      variable = "elasticfilesystem:CreateAction"
      values   = ["CreateAccessPoint"]
    }
  }

  statement {
    sid       = "DescribeAccessPoints"
    actions   = ["elasticfilesystem:DescribeAccessPoints"]
    resources = [aws_efs_file_system.repos.arn]
  }

  # The service mounts /mnt/repos through its own access point.
  statement {
    sid       = "MountReposThroughServiceAccessPoint"
    actions   = ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]
    resources = [aws_efs_file_system.repos.arn]
    condition {
      test     = "StringEquals"
      variable = "elasticfilesystem:AccessPointArn"
      values   = [aws_efs_access_point.service.arn]
    }
  }

  statement {
    sid       = "ReadTenantParameters"
    actions   = ["ssm:GetParameters"]
    resources = [local.tenant_ssm_arn]
  }

  # --- scale-out mode: queues and state --------------------------------------
  statement {
    sid = "UseQueues"
    actions = [
      "sqs:SendMessage",
      "sqs:ReceiveMessage",
      "sqs:DeleteMessage",
      "sqs:ChangeMessageVisibility",
      "sqs:GetQueueAttributes",
      "sqs:GetQueueUrl",
    ]
    resources = [aws_sqs_queue.jobs.arn, aws_sqs_queue.events.arn]
  }

  statement {
    sid = "UseStateTables"
    actions = [
      "dynamodb:GetItem",
      "dynamodb:BatchGetItem",
      "dynamodb:PutItem",
      "dynamodb:UpdateItem",
      "dynamodb:DeleteItem",
      "dynamodb:BatchWriteItem",
      "dynamodb:ConditionCheckItem",
      "dynamodb:Query",
      "dynamodb:DescribeTable",
    ]
    resources = concat(
      [for t in aws_dynamodb_table.state : t.arn],
      [for t in aws_dynamodb_table.state : "${t.arn}/index/*"],
    )
  }
}

# --- The service's own execution role -----------------------------------------
# Separate from the tenants' shared execution role, so no customer task
# definition can ever be handed the platform's secrets.

resource "aws_iam_role" "service_execution" {
  name               = "${var.name}-service-execution"
  path               = "/${var.name}/"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

data "aws_iam_policy_document" "service_execution" {
  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid = "PullServiceImage"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:GetDownloadUrlForLayer",
    ]
    resources = [aws_ecr_repository.service.arn]
  }

  statement {
    sid       = "WriteServiceLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.service.arn}:*"]
  }

  statement {
    sid       = "ReadServiceSecrets"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [for s in aws_secretsmanager_secret.service : s.arn]
  }

  statement {
    sid       = "DecryptWithPlatformKey"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.platform.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values = [
        "secretsmanager.${local.region}.amazonaws.com",
        "ecr.${local.region}.amazonaws.com",
      ]
    }
  }
}

resource "aws_iam_role_policy" "service_execution" {
  name   = "pull-log-secrets"
  role   = aws_iam_role.service_execution.id
  policy = data.aws_iam_policy_document.service_execution.json
}
