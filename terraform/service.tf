# The Easy Deploy service itself: two Fargate tasks spread across the private
# subnets, behind the shared ALB on its own host, with EFS at /mnt/repos and
# its secrets from Secrets Manager.

resource "aws_cloudwatch_log_group" "service" {
  name              = "/${var.name}/service"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.platform.arn
}

locals {
  service_container = "easydeploy"

  service_environment = {
    EASYDEPLOY_AWS_MODE                 = "aws"
    AWS_REGION                          = local.region
    EASYDEPLOY_APPS_DOMAIN              = var.apps_domain
    EASYDEPLOY_PUBLIC_URL               = local.service_public_url
    EASYDEPLOY_REPOS_ROOT               = local.repos_mount_path
    EASYDEPLOY_CLUSTER_NAME             = aws_ecs_cluster.main.name
    EASYDEPLOY_VPC_ID                   = aws_vpc.main.id
    EASYDEPLOY_PRIVATE_SUBNET_IDS       = join(",", aws_subnet.private[*].id)
    EASYDEPLOY_APP_SECURITY_GROUP_ID    = aws_security_group.app.id
    EASYDEPLOY_BUILD_SECURITY_GROUP_ID  = aws_security_group.build.id
    EASYDEPLOY_ALB_LISTENER_ARN         = aws_lb_listener.https.arn
    EASYDEPLOY_EFS_FILE_SYSTEM_ID       = aws_efs_file_system.repos.id
    EASYDEPLOY_ARTIFACT_BUCKET          = aws_s3_bucket.artifacts.id
    EASYDEPLOY_TASK_EXECUTION_ROLE_ARN  = aws_iam_role.task_execution.arn
    EASYDEPLOY_PERMISSIONS_BOUNDARY_ARN = aws_iam_policy.tenant_boundary.arn
    EASYDEPLOY_TENANT_ROLE_PATH         = local.tenant_role_path
    EASYDEPLOY_QUEUE_URL                = aws_sqs_queue.jobs.url
    EASYDEPLOY_STATE_URL                = "dynamodb://${var.name}"
    EASYDEPLOY_EVENTS_QUEUE_URL         = aws_sqs_queue.events.url
  }
}

resource "aws_ecs_task_definition" "service" {
  family                   = "${var.name}-service"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.service_cpu
  memory                   = var.service_memory
  execution_role_arn       = aws_iam_role.service_execution.arn
  task_role_arn            = aws_iam_role.service_task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  volume {
    name = "repos"
    efs_volume_configuration {
      file_system_id     = aws_efs_file_system.repos.id
      transit_encryption = "ENABLED"
      authorization_config {
        access_point_id = aws_efs_access_point.service.id
        iam             = "ENABLED"
      }
    }
  }

  container_definitions = jsonencode([
    {
      name                   = local.service_container
      image                  = "${aws_ecr_repository.service.repository_url}:${var.service_image_tag}"
      essential              = true
      readonlyRootFilesystem = false
      portMappings           = [{ containerPort = local.service_port, protocol = "tcp" }]
      environment = [
        for k, v in merge(local.service_environment, { EASYDEPLOY_HOST = "0.0.0.0", EASYDEPLOY_PORT = tostring(local.service_port) }) :
        { name = k, value = v }
      ]
      secrets = [
        for k in local.service_secret_names :
        { name = k, valueFrom = aws_secretsmanager_secret.service[k].arn }
      ]
      mountPoints = [{ sourceVolume = "repos", containerPath = local.repos_mount_path, readOnly = false }]
      healthCheck = {
        command     = ["CMD", "python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:3000/healthz', timeout=3).status != 200)"]
        interval    = 30
        timeout     = 5
        retries     = 3
        startPeriod = 20
      }
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.service.name
          awslogs-region        = local.region
          awslogs-stream-prefix = "service"
        }
      }
      stopTimeout = 60
    }
  ])
}

resource "aws_lb_target_group" "service" {
  #checkov:skip=CKV_AWS_378:TLS ends at the ALB; the hop to the task stays inside the VPC's private subnets, and the security group admits only the ALB.
  name                 = "${var.name}-service"
  port                 = local.service_port
  protocol             = "HTTP"
  target_type          = "ip"
  vpc_id               = aws_vpc.main.id
  deregistration_delay = 35

  health_check {
    path                = "/healthz"
    matcher             = "200"
    interval            = 15
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }
}

resource "aws_lb_listener_rule" "service" {
  listener_arn = aws_lb_listener.https.arn
  # Lowest priority number wins; the pipeline's app rules start above 100.
  priority = 1

  condition {
    host_header {
      values = [local.service_host]
    }
  }

  action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.service.arn
  }
}

resource "aws_ecs_service" "service" {
  name                              = "${var.name}-service"
  cluster                           = aws_ecs_cluster.main.id
  task_definition                   = aws_ecs_task_definition.service.arn
  desired_count                     = var.service_desired_count
  launch_type                       = "FARGATE"
  platform_version                  = "LATEST"
  health_check_grace_period_seconds = 30
  propagate_tags                    = "SERVICE"
  enable_execute_command            = false

  # Fargate spreads the tasks across the subnets' zones.
  network_configuration {
    subnets          = aws_subnet.private[*].id
    security_groups  = [aws_security_group.service.id]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.service.arn
    container_name   = local.service_container
    container_port   = local.service_port
  }

  deployment_minimum_healthy_percent = 50
  deployment_maximum_percent         = 200

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  # CI registers new revisions with a new image tag (.github/workflows/deploy.yml).
  lifecycle {
    ignore_changes = [task_definition]
  }

  depends_on = [aws_lb_listener_rule.service, aws_efs_mount_target.repos]
}
