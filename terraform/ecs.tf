# The shared ECS cluster: Fargate and Fargate Spot for most tasks, and an EC2
# capacity provider (an Auto Scaling group starting at zero) for tasks that
# need a host, whose instances mount EFS at /mnt/repos.

resource "aws_ecs_cluster" "main" {
  name = var.name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }

  configuration {
    execute_command_configuration {
      kms_key_id = aws_kms_key.platform.arn
      logging    = "OVERRIDE"
      log_configuration {
        cloud_watch_encryption_enabled = true
        cloud_watch_log_group_name     = aws_cloudwatch_log_group.ecs_exec.name
      }
    }
  }
}

resource "aws_cloudwatch_log_group" "ecs_exec" {
  name              = "/${var.name}/ecs-exec"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.platform.arn
}

resource "aws_ecs_cluster_capacity_providers" "main" {
  cluster_name       = aws_ecs_cluster.main.name
  capacity_providers = ["FARGATE", "FARGATE_SPOT", aws_ecs_capacity_provider.ec2.name]

  default_capacity_provider_strategy {
    capacity_provider = "FARGATE"
    base              = 1
    weight            = 1
  }
}

resource "aws_ecs_capacity_provider" "ec2" {
  name = "${var.name}-ec2"

  auto_scaling_group_provider {
    auto_scaling_group_arn         = aws_autoscaling_group.ecs.arn
    managed_termination_protection = "ENABLED"

    managed_scaling {
      status                    = "ENABLED"
      target_capacity           = 100
      minimum_scaling_step_size = 1
      maximum_scaling_step_size = 2
    }
  }
}

# --- EC2 hosts ---------------------------------------------------------------

data "aws_ssm_parameter" "ecs_ami" {
  name = "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id"
}

resource "aws_launch_template" "ecs" {
  name_prefix            = "${var.name}-ecs-"
  image_id               = data.aws_ssm_parameter.ecs_ami.value
  instance_type          = var.ec2_instance_type
  update_default_version = true
  vpc_security_group_ids = [aws_security_group.ecs_instances.id]

  iam_instance_profile {
    arn = aws_iam_instance_profile.ecs_instances.arn
  }

  # IMDSv2 only, one hop: containers cannot borrow the host's credentials.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  monitoring {
    enabled = true
  }

  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      volume_size           = 50
      volume_type           = "gp3"
      encrypted             = true
      kms_key_id            = aws_kms_key.platform.arn
      delete_on_termination = true
    }
  }

  user_data = base64encode(templatefile("${path.module}/templates/ecs-instance-user-data.sh.tftpl", {
    cluster_name   = aws_ecs_cluster.main.name
    file_system_id = aws_efs_file_system.repos.id
    mount_path     = local.repos_mount_path
  }))

  tag_specifications {
    resource_type = "instance"
    tags          = { Name = "${var.name}-ecs" }
  }
}

resource "aws_autoscaling_group" "ecs" {
  name_prefix           = "${var.name}-ecs-"
  vpc_zone_identifier   = aws_subnet.private[*].id
  min_size              = 0
  max_size              = var.ec2_max_size
  protect_from_scale_in = true
  health_check_type     = "EC2"

  launch_template {
    id      = aws_launch_template.ecs.id
    version = "$Latest"
  }

  # ECS managed scaling owns desired_capacity.
  lifecycle {
    ignore_changes = [desired_capacity]
  }

  tag {
    key                 = "AmazonECSManaged"
    value               = "true"
    propagate_at_launch = true
  }

  depends_on = [aws_efs_mount_target.repos]
}

resource "aws_iam_role" "ecs_instances" {
  name               = "${var.name}-ecs-instances"
  path               = "/${var.name}/"
  assume_role_policy = data.aws_iam_policy_document.ec2_assume.json
}

data "aws_iam_policy_document" "ec2_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy_attachment" "ecs_instances" {
  for_each = {
    ecs = "arn:${local.partition}:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role"
    ssm = "arn:${local.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
  }
  role       = aws_iam_role.ecs_instances.name
  policy_arn = each.value
}

data "aws_iam_policy_document" "ecs_instances_efs" {
  statement {
    actions   = ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]
    resources = [aws_efs_file_system.repos.arn]
  }
}

resource "aws_iam_role_policy" "ecs_instances_efs" {
  name   = "mount-repos"
  role   = aws_iam_role.ecs_instances.id
  policy = data.aws_iam_policy_document.ecs_instances_efs.json
}

resource "aws_iam_instance_profile" "ecs_instances" {
  name = "${var.name}-ecs-instances"
  role = aws_iam_role.ecs_instances.name
}
