# What differs per account. Everything else is derived.

variable "aws_region" {
  description = "Region the platform runs in."
  type        = string
}

variable "name" {
  description = "Prefix of the platform's own resources. Must not start with \"ed-\", which is the tenants' prefix."
  type        = string
  default     = "easydeploy"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,20}$", var.name)) && !startswith(var.name, "ed-")
    error_message = "name must be 3-21 lower-case letters, digits or dashes, and must not start with \"ed-\"."
  }
}

variable "tags" {
  description = "Extra tags for every platform resource."
  type        = map(string)
  default     = {}
}

# --- DNS and TLS -------------------------------------------------------------

variable "apps_domain" {
  description = "Customer apps are served at https://<app>.<apps_domain>; the ACM certificate covers *.<apps_domain>."
  type        = string
}

variable "route53_zone_id" {
  description = "Public hosted zone that holds apps_domain (for certificate validation and the wildcard record)."
  type        = string
}

variable "service_subdomain" {
  description = "The service's own host is <service_subdomain>.<apps_domain>. Reserve this name so no app can take it."
  type        = string
  default     = "easydeploy"
}

# --- Network -----------------------------------------------------------------

variable "vpc_cidr" {
  description = "CIDR of the platform VPC."
  type        = string
  default     = "10.40.0.0/16"
}

variable "az_count" {
  description = "Availability zones to span (at least two)."
  type        = number
  default     = 2

  validation {
    condition     = var.az_count >= 2 && var.az_count <= 4
    error_message = "az_count must be between 2 and 4."
  }
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all zones instead of one per zone: cheaper, but a zone outage cuts egress for the others."
  type        = bool
  default     = false
}

variable "interface_endpoints" {
  description = "Interface VPC endpoints (service short names) so image pulls, logs and queues stay off the NAT."
  type        = list(string)
  default     = ["ecr.api", "ecr.dkr", "logs", "ssm", "sqs", "secretsmanager"]
}

variable "flow_log_traffic_type" {
  description = "Which traffic the VPC flow log records: ACCEPT, REJECT or ALL."
  type        = string
  default     = "ALL"
}

# --- Load balancer -----------------------------------------------------------

variable "alb_deletion_protection" {
  description = "Protect the shared ALB from deletion. Turn off only to tear the platform down."
  type        = bool
  default     = true
}

variable "alb_ssl_policy" {
  description = "TLS policy of the HTTPS listener."
  type        = string
  default     = "ELBSecurityPolicy-TLS13-1-2-2021-06"
}

# --- Compute -----------------------------------------------------------------

variable "ec2_instance_type" {
  description = "Instance type of the EC2 capacity provider."
  type        = string
  default     = "t3.large"
}

variable "ec2_max_size" {
  description = "Upper bound of the EC2 capacity provider's Auto Scaling group (it starts at zero)."
  type        = number
  default     = 4
}

variable "service_image_tag" {
  description = "Tag of the service's image in its ECR repository for the first deploy; CI rolls newer ones."
  type        = string
  default     = "bootstrap"
}

variable "service_desired_count" {
  description = "Tasks of the service; two spread across zones."
  type        = number
  default     = 2
}

variable "service_cpu" {
  description = "Fargate CPU units of a service task."
  type        = number
  default     = 512
}

variable "service_memory" {
  description = "Fargate memory (MiB) of a service task."
  type        = number
  default     = 1024
}

# --- Data and logs -----------------------------------------------------------

variable "log_retention_days" {
  description = "Retention of the platform's CloudWatch log groups."
  type        = number
  default     = 365
}

variable "artifact_retention_days" {
  description = "Build artifacts in S3 expire after this many days (non-current versions after 30)."
  type        = number
  default     = 90
}

variable "state_tables" {
  description = "DynamoDB tables of the scale-out state store, named <name>-<table>; each has a string hash key pk and range key sk and a TTL attribute expires_at."
  type        = list(string)
  default     = ["installations", "deploys", "locks", "deliveries", "jobs"]
}

# --- Alerting and CI ---------------------------------------------------------

variable "alarm_email" {
  description = "Address subscribed to the alarm topic; empty for none."
  type        = string
  default     = ""
}

variable "github_repository" {
  description = "owner/name of the repository whose GitHub Actions may push the service image and roll the service (OIDC)."
  type        = string
}

variable "github_deploy_ref" {
  description = "Git ref allowed to deploy from GitHub Actions."
  type        = string
  default     = "refs/heads/main"
}
