# EFS holds the checkouts at /mnt/repos: the service clones into it, CodeBuild
# reads from it. Encrypted at rest with the platform key and in transit (the
# file system policy refuses non-TLS clients), IAM-authorised, backed up.

resource "aws_efs_file_system" "repos" {
  creation_token   = "${var.name}-repos"
  encrypted        = true
  kms_key_id       = aws_kms_key.platform.arn
  performance_mode = "generalPurpose"
  throughput_mode  = "elastic"

  lifecycle_policy {
    transition_to_ia = "AFTER_30_DAYS"
  }

  tags = { Name = "${var.name}-repos" }
}

resource "aws_efs_backup_policy" "repos" {
  file_system_id = aws_efs_file_system.repos.id
  backup_policy {
    status = "ENABLED"
  }
}

resource "aws_efs_mount_target" "repos" {
  count           = var.az_count
  file_system_id  = aws_efs_file_system.repos.id
  subnet_id       = aws_subnet.private[count.index].id
  security_groups = [aws_security_group.efs.id]
}

# The service's own view of the file system: /repos as uid/gid 10001 (the
# image's non-root user). Per-tenant access points are created by the
# pipeline below /repos.
resource "aws_efs_access_point" "service" {
  file_system_id = aws_efs_file_system.repos.id

  posix_user {
    uid = 10001
    gid = 10001
  }

  root_directory {
    path = "/repos"
    creation_info {
      owner_uid   = 10001
      owner_gid   = 10001
      permissions = "0750"
    }
  }

  tags = { Name = "${var.name}-service" }
}

resource "aws_efs_file_system_policy" "repos" {
  file_system_id = aws_efs_file_system.repos.id
  policy         = data.aws_iam_policy_document.efs_repos.json
}

data "aws_iam_policy_document" "efs_repos" {
  statement {
    sid       = "DenyUnencryptedTransport"
    effect    = "Deny"
    actions   = ["*"]
    resources = [aws_efs_file_system.repos.arn]
    principals {
      type        = "AWS"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  # Mounting needs an identity from this account that its own IAM policy
  # allows (the service task role, tenant build roles under the boundary,
  # the ECS hosts' role).
  statement {
    sid       = "AccountPrincipalsMount"
    actions   = ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]
    resources = [aws_efs_file_system.repos.arn]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
    condition {
      test     = "Bool"
      variable = "elasticfilesystem:AccessedViaMountTarget"
      values   = ["true"]
    }
  }
}
