# EFS holds the checkouts at /mnt/repos: the service clones into it, CodeBuild
# reads from it. Encrypted at rest with the platform key, backed up; the
# service mounts it with TLS and IAM through its access point.

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

# The service's own view of the file system: /repos, as uid/gid 1000 (the
# image's non-root user, and the uid of the pipeline's tenant access points).
# The file system's root stays root-owned; /repos is created on first mount.
resource "aws_efs_access_point" "service" {
  file_system_id = aws_efs_file_system.repos.id

  posix_user {
    uid = 1000
    gid = 1000
  }

  root_directory {
    path = "/repos"
    creation_info {
      owner_uid   = 1000
      owner_gid   = 1000
      permissions = "0755"
    }
  }

  tags = { Name = "${var.name}-service" }
}

resource "aws_efs_file_system_policy" "repos" {
  file_system_id = aws_efs_file_system.repos.id
  policy         = data.aws_iam_policy_document.efs_repos.json
}

# Who can reach a mount target is decided by the EFS security group (the
# service, CodeBuild and the ECS hosts). CodeBuild mounts with plain NFS, no
# IAM and no TLS, so the policy cannot require either; what it does is grant
# no ClientRootAccess to anyone, so root on any client (every build runs as
# root) is squashed and cannot rewrite files it does not own. The service and
# the ECS hosts mount with TLS and IAM anyway (service.tf, the user data).
data "aws_iam_policy_document" "efs_repos" {
  statement {
    sid       = "MountThroughMountTargetsWithoutRoot"
    actions   = ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]
    resources = [aws_efs_file_system.repos.arn]
    principals {
      type        = "AWS"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "elasticfilesystem:AccessedViaMountTarget"
      values   = ["true"]
    }
  }
}
