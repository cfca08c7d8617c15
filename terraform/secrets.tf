# The service's secrets. Terraform creates the entries, never the values: the
# operator sets them once (from the .env that `easydeploy register` wrote, and
# from the Slack app page), see README.md. The task definition injects them as
# environment variables.

locals {
  service_secret_names = toset([
    "EASYDEPLOY_GITHUB_APP_ID",
    "EASYDEPLOY_GITHUB_PRIVATE_KEY",
    "EASYDEPLOY_GITHUB_WEBHOOK_SECRET",
    "EASYDEPLOY_GITHUB_CLIENT_ID",
    "EASYDEPLOY_GITHUB_CLIENT_SECRET",
    "EASYDEPLOY_SLACK_SIGNING_SECRET",
    "EASYDEPLOY_SLACK_BOT_TOKEN",
  ])
}

resource "aws_secretsmanager_secret" "service" {
  #checkov:skip=CKV2_AWS_57:These are issued by GitHub and Slack; they are rotated there (new App key, new signing secret) and then stored here, a Lambda cannot rotate them.
  for_each                = local.service_secret_names
  name                    = "${var.name}/${lower(replace(trimprefix(each.value, "EASYDEPLOY_"), "_", "-"))}"
  description             = "Easy Deploy service: ${each.value}"
  kms_key_id              = aws_kms_key.platform.arn
  recovery_window_in_days = 30
}
