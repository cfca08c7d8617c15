# What tenants' roles can ever do, and the shared execution role of their
# tasks.
#
# The pipeline creates two roles per GitHub installation under
# /easydeploy/tenants/ (ed-<installation_id>-build for CodeBuild,
# ed-<installation_id>-task for the app's tasks), always with this permissions
# boundary attached. Their inline policies narrow access to the tenant's own
# repositories, log groups and S3 prefix; the boundary is the ceiling no inline
# policy can raise, even if the service were tricked into writing a broad one.

resource "aws_iam_policy" "tenant_boundary" {
  name        = "${var.name}-tenant-boundary"
  path        = "/easydeploy/"
  description = "Permissions boundary of every Easy Deploy tenant role"
  policy      = data.aws_iam_policy_document.tenant_boundary.json
}

data "aws_iam_policy_document" "tenant_boundary" {
  # GetAuthorizationToken has no resource-level permissions; it returns a
  # registry login that is still bounded by the repository statements below.
  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid = "EcrPushPullTenantRepositories"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:GetDownloadUrlForLayer",
      "ecr:InitiateLayerUpload",
      "ecr:UploadLayerPart",
      "ecr:CompleteLayerUpload",
      "ecr:PutImage",
    ]
    resources = [local.tenant_ecr_arn]
  }

  statement {
    sid = "WriteTenantLogs"
    actions = [
      "logs:CreateLogGroup",
      "logs:CreateLogStream",
      "logs:PutLogEvents",
    ]
    resources = local.tenant_log_group_arns
  }

  statement {
    sid       = "TenantArtifacts"
    actions   = ["s3:PutObject", "s3:GetObject"]
    resources = [local.tenant_artifacts_arn]
  }

  # CodeBuild checks the bucket before it uploads artifacts.
  statement {
    sid       = "ArtifactBucketLocation"
    actions   = ["s3:GetBucketAcl", "s3:GetBucketLocation"]
    resources = [aws_s3_bucket.artifacts.arn]
  }

  # The artifact bucket is encrypted with the platform key; only through S3.
  statement {
    sid       = "ArtifactEncryption"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [aws_kms_key.platform.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.amazonaws.com"]
    }
  }

  statement {
    sid       = "MountRepos"
    actions   = ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]
    resources = [aws_efs_file_system.repos.arn]
  }

  statement {
    sid       = "ReadTenantParameters"
    actions   = ["ssm:GetParameters"]
    resources = [local.tenant_ssm_arn]
  }

  # CodeBuild in a VPC creates an ENI in the build's subnet with the build
  # role. The Describe* calls have no resource-level permissions in EC2, so
  # they need Resource "*"; they only read network metadata.
  statement {
    sid = "CodeBuildVpcDescribe"
    actions = [
      "ec2:DescribeDhcpOptions",
      "ec2:DescribeNetworkInterfaces",
      "ec2:DescribeSubnets",
      "ec2:DescribeSecurityGroups",
      "ec2:DescribeVpcs",
    ]
    resources = ["*"]
  }

  statement {
    sid     = "CodeBuildVpcCreateEni"
    actions = ["ec2:CreateNetworkInterface"]
    resources = concat(
      ["arn:${local.partition}:ec2:${local.region}:${local.account_id}:network-interface/*"],
      [for s in aws_subnet.private : s.arn],
      [aws_security_group.build.arn],
    )
  }

  statement {
    sid       = "CodeBuildVpcDeleteEni"
    actions   = ["ec2:DeleteNetworkInterface"]
    resources = ["arn:${local.partition}:ec2:${local.region}:${local.account_id}:network-interface/*"]
    condition {
      test     = "ArnEquals"
      variable = "ec2:Vpc"
      values   = [aws_vpc.main.arn]
    }
  }

  # Lets CodeBuild attach the ENI it made: only in the platform's private
  # subnets and only for CodeBuild.
  statement {
    sid       = "CodeBuildVpcEniPermission"
    actions   = ["ec2:CreateNetworkInterfacePermission"]
    resources = ["arn:${local.partition}:ec2:${local.region}:${local.account_id}:network-interface/*"]
    condition {
      test     = "ArnEquals"
      variable = "ec2:Subnet"
      values   = [for s in aws_subnet.private : s.arn]
    }
    condition {
      test     = "StringEquals"
      variable = "ec2:AuthorizedService"
      values   = ["codebuild.amazonaws.com"]
    }
  }
}

# --- Shared execution role of customer tasks ---------------------------------
# ECS uses it to pull the app's image, ship its logs and fetch the app's
# parameters before the app starts; the app itself runs as its tenant task role.

resource "aws_iam_role" "task_execution" {
  name               = "${var.name}-task-execution"
  path               = "/easydeploy/"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

data "aws_iam_policy_document" "task_execution" {
  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid = "PullTenantImages"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:GetDownloadUrlForLayer",
    ]
    resources = [local.tenant_ecr_arn]
  }

  statement {
    sid = "WriteAppLogs"
    actions = [
      "logs:CreateLogGroup",
      "logs:CreateLogStream",
      "logs:PutLogEvents",
    ]
    resources = [local.tenant_log_group_arns[1]]
  }

  # The task definition names which parameters an app gets.
  statement {
    sid       = "ReadAppParameters"
    actions   = ["ssm:GetParameters"]
    resources = [local.tenant_ssm_arn]
  }

  statement {
    sid       = "DecryptAppParameters"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.platform.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["ssm.${local.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "task_execution" {
  name   = "pull-log-parameters"
  role   = aws_iam_role.task_execution.id
  policy = data.aws_iam_policy_document.task_execution.json
}
