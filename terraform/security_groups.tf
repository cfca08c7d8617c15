# Security groups and their rules, in one place so the whole picture of who may
# talk to whom reads top to bottom. Only the ALB is open to the internet, and
# only on 80 and 443 (tests/infra asserts this).

resource "aws_security_group" "alb" {
  name        = "${var.name}-alb"
  description = "Shared ALB: HTTP and HTTPS from the internet"
  vpc_id      = aws_vpc.main.id
}

resource "aws_security_group" "service" {
  name        = "${var.name}-service"
  description = "The Easy Deploy service tasks"
  vpc_id      = aws_vpc.main.id
}

resource "aws_security_group" "app" {
  #checkov:skip=CKV2_AWS_5:Attached at run time by the pipeline to customer ECS services (EASYDEPLOY_APP_SECURITY_GROUP_ID).
  name        = "${var.name}-apps"
  description = "Customer app tasks: the app port from the ALB only"
  vpc_id      = aws_vpc.main.id
}

resource "aws_security_group" "build" {
  #checkov:skip=CKV2_AWS_5:Attached at run time by the pipeline to CodeBuild projects (EASYDEPLOY_BUILD_SECURITY_GROUP_ID).
  name        = "${var.name}-builds"
  description = "CodeBuild builds in the VPC: egress only"
  vpc_id      = aws_vpc.main.id
}

resource "aws_security_group" "efs" {
  name        = "${var.name}-efs"
  description = "EFS mount targets: NFS from the service, builds and ECS hosts"
  vpc_id      = aws_vpc.main.id
}

resource "aws_security_group" "endpoints" {
  name        = "${var.name}-vpc-endpoints"
  description = "Interface VPC endpoints: HTTPS from inside the VPC"
  vpc_id      = aws_vpc.main.id
}

resource "aws_security_group" "ecs_instances" {
  name        = "${var.name}-ecs-instances"
  description = "EC2 capacity provider hosts: SSH only from the Instance Connect endpoint"
  vpc_id      = aws_vpc.main.id
}

resource "aws_security_group" "instance_connect" {
  name        = "${var.name}-instance-connect"
  description = "EC2 Instance Connect endpoint: SSH out to the ECS hosts"
  vpc_id      = aws_vpc.main.id
}

locals {
  # Port customer app containers listen on is chosen per app; the ALB may reach
  # any unprivileged port on the app security group and nothing else may.
  app_port_range = { from = 1024, to = 65535 }
}

# --- ALB ---------------------------------------------------------------------

resource "aws_vpc_security_group_ingress_rule" "alb_https" {
  security_group_id = aws_security_group.alb.id
  description       = "Public HTTPS"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_ingress_rule" "alb_http" {
  #checkov:skip=CKV_AWS_260:The public ALB must accept HTTP on 80; its only action is a 301 redirect to HTTPS (aws_lb_listener.http).
  security_group_id = aws_security_group.alb.id
  description       = "Public HTTP, answered only with a redirect to HTTPS"
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_egress_rule" "alb_to_service" {
  security_group_id            = aws_security_group.alb.id
  description                  = "To the service tasks"
  ip_protocol                  = "tcp"
  from_port                    = local.service_port
  to_port                      = local.service_port
  referenced_security_group_id = aws_security_group.service.id
}

resource "aws_vpc_security_group_egress_rule" "alb_to_apps" {
  security_group_id            = aws_security_group.alb.id
  description                  = "To customer app tasks"
  ip_protocol                  = "tcp"
  from_port                    = local.app_port_range.from
  to_port                      = local.app_port_range.to
  referenced_security_group_id = aws_security_group.app.id
}

# --- Service -----------------------------------------------------------------

resource "aws_vpc_security_group_ingress_rule" "service_from_alb" {
  security_group_id            = aws_security_group.service.id
  description                  = "HTTP from the ALB"
  ip_protocol                  = "tcp"
  from_port                    = local.service_port
  to_port                      = local.service_port
  referenced_security_group_id = aws_security_group.alb.id
}

resource "aws_vpc_security_group_egress_rule" "service_https" {
  security_group_id = aws_security_group.service.id
  description       = "HTTPS to GitHub, Slack and AWS APIs"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_egress_rule" "service_nfs" {
  security_group_id            = aws_security_group.service.id
  description                  = "NFS to EFS"
  ip_protocol                  = "tcp"
  from_port                    = 2049
  to_port                      = 2049
  referenced_security_group_id = aws_security_group.efs.id
}

# --- Customer apps -----------------------------------------------------------

resource "aws_vpc_security_group_ingress_rule" "app_from_alb" {
  #checkov:skip=CKV_AWS_25:False positive: the source is the ALB security group (referenced_security_group_id), not 0.0.0.0/0; checkov reads a rule without a CIDR as open.
  security_group_id            = aws_security_group.app.id
  description                  = "App port from the ALB only"
  ip_protocol                  = "tcp"
  from_port                    = local.app_port_range.from
  to_port                      = local.app_port_range.to
  referenced_security_group_id = aws_security_group.alb.id
}

resource "aws_vpc_security_group_egress_rule" "app_https" {
  security_group_id = aws_security_group.app.id
  description       = "HTTPS out (image pull, logs, the app's own APIs)"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

# --- Builds ------------------------------------------------------------------

resource "aws_vpc_security_group_egress_rule" "build_https" {
  security_group_id = aws_security_group.build.id
  description       = "HTTPS out: base images, package registries, ECR, S3"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_egress_rule" "build_http" {
  security_group_id = aws_security_group.build.id
  description       = "HTTP out: Debian/Alpine package mirrors used by Dockerfiles"
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_egress_rule" "build_nfs" {
  security_group_id            = aws_security_group.build.id
  description                  = "NFS to EFS (the checkout)"
  ip_protocol                  = "tcp"
  from_port                    = 2049
  to_port                      = 2049
  referenced_security_group_id = aws_security_group.efs.id
}

# --- EFS ---------------------------------------------------------------------

resource "aws_vpc_security_group_ingress_rule" "efs_from" {
  for_each = {
    service       = aws_security_group.service.id
    build         = aws_security_group.build.id
    ecs_instances = aws_security_group.ecs_instances.id
  }
  security_group_id            = aws_security_group.efs.id
  description                  = "NFS from ${each.key}"
  ip_protocol                  = "tcp"
  from_port                    = 2049
  to_port                      = 2049
  referenced_security_group_id = each.value
}

# --- VPC endpoints -----------------------------------------------------------

resource "aws_vpc_security_group_ingress_rule" "endpoints_https" {
  security_group_id = aws_security_group.endpoints.id
  description       = "HTTPS from inside the VPC"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = var.vpc_cidr
}

# --- ECS hosts and Instance Connect ------------------------------------------

resource "aws_vpc_security_group_ingress_rule" "ecs_instances_ssh" {
  #checkov:skip=CKV_AWS_24:False positive: the source is the Instance Connect endpoint's security group (referenced_security_group_id), not 0.0.0.0/0.
  security_group_id            = aws_security_group.ecs_instances.id
  description                  = "SSH from the EC2 Instance Connect endpoint only"
  ip_protocol                  = "tcp"
  from_port                    = 22
  to_port                      = 22
  referenced_security_group_id = aws_security_group.instance_connect.id
}

resource "aws_vpc_security_group_egress_rule" "ecs_instances_https" {
  security_group_id = aws_security_group.ecs_instances.id
  description       = "HTTPS to the ECS agent endpoints, ECR and SSM"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_egress_rule" "ecs_instances_nfs" {
  security_group_id            = aws_security_group.ecs_instances.id
  description                  = "NFS to EFS (mounted at /mnt/repos)"
  ip_protocol                  = "tcp"
  from_port                    = 2049
  to_port                      = 2049
  referenced_security_group_id = aws_security_group.efs.id
}

resource "aws_vpc_security_group_egress_rule" "instance_connect_ssh" {
  security_group_id            = aws_security_group.instance_connect.id
  description                  = "SSH to the ECS hosts"
  ip_protocol                  = "tcp"
  from_port                    = 22
  to_port                      = 22
  referenced_security_group_id = aws_security_group.ecs_instances.id
}
