# Scale-out mode: the job queue (FIFO, grouped per app so one app's deploys
# stay in order) and the queue EventBridge fills with CodeBuild and ECS state
# changes. Both have a dead-letter queue with an alarm on it (alarms.tf).

resource "aws_sqs_queue" "jobs_dlq" {
  name                              = "${var.name}-jobs-dlq.fifo"
  fifo_queue                        = true
  message_retention_seconds         = 1209600
  kms_master_key_id                 = aws_kms_key.platform.arn
  kms_data_key_reuse_period_seconds = 300
}

resource "aws_sqs_queue" "jobs" {
  name                              = "${var.name}-jobs.fifo"
  fifo_queue                        = true
  content_based_deduplication       = false
  deduplication_scope               = "messageGroup"
  fifo_throughput_limit             = "perMessageGroupId"
  visibility_timeout_seconds        = 900
  message_retention_seconds         = 345600
  kms_master_key_id                 = aws_kms_key.platform.arn
  kms_data_key_reuse_period_seconds = 300

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.jobs_dlq.arn
    maxReceiveCount     = 5
  })
}

resource "aws_sqs_queue" "events_dlq" {
  name                      = "${var.name}-events-dlq"
  message_retention_seconds = 1209600
  kms_master_key_id         = aws_kms_key.platform.arn
}

resource "aws_sqs_queue" "events" {
  name                       = "${var.name}-events"
  visibility_timeout_seconds = 120
  message_retention_seconds  = 345600
  kms_master_key_id          = aws_kms_key.platform.arn

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.events_dlq.arn
    maxReceiveCount     = 5
  })
}

resource "aws_sqs_queue_policy" "events" {
  queue_url = aws_sqs_queue.events.id
  policy    = data.aws_iam_policy_document.events_queue.json
}

data "aws_iam_policy_document" "events_queue" {
  statement {
    sid       = "EventBridgeRulesSend"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.events.arn]
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [for r in aws_cloudwatch_event_rule.pipeline : r.arn]
    }
  }

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["sqs:*"]
    resources = [aws_sqs_queue.events.arn]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

# --- EventBridge: build and rollout progress ---------------------------------

locals {
  pipeline_event_patterns = {
    codebuild-build-state = {
      source      = ["aws.codebuild"]
      detail-type = ["CodeBuild Build State Change", "CodeBuild Build Phase Change"]
      detail      = { project-name = [{ prefix = "ed-" }] }
    }
    ecs-task-state = {
      source      = ["aws.ecs"]
      detail-type = ["ECS Task State Change"]
      detail      = { clusterArn = [aws_ecs_cluster.main.arn], group = [{ prefix = "service:ed-" }] }
    }
    ecs-deployment-state = {
      source      = ["aws.ecs"]
      detail-type = ["ECS Deployment State Change", "ECS Service Action"]
      resources   = [{ prefix = "arn:${local.partition}:ecs:${local.region}:${local.account_id}:service/${aws_ecs_cluster.main.name}/ed-" }]
    }
  }
}

resource "aws_cloudwatch_event_rule" "pipeline" {
  for_each      = local.pipeline_event_patterns
  name          = "${var.name}-${each.key}"
  description   = "Deploy progress for Easy Deploy: ${each.key}"
  event_pattern = jsonencode(each.value)
}

resource "aws_cloudwatch_event_target" "pipeline" {
  for_each  = aws_cloudwatch_event_rule.pipeline
  rule      = each.value.name
  target_id = "events-queue"
  arn       = aws_sqs_queue.events.arn

  dead_letter_config {
    arn = aws_sqs_queue.events_dlq.arn
  }

  retry_policy {
    maximum_event_age_in_seconds = 3600
    maximum_retry_attempts       = 20
  }
}

# EventBridge also needs to write to the dead-letter queue when the main
# queue refuses an event.
resource "aws_sqs_queue_policy" "events_dlq" {
  queue_url = aws_sqs_queue.events_dlq.id
  policy    = data.aws_iam_policy_document.events_dlq.json
}

data "aws_iam_policy_document" "events_dlq" {
  statement {
    sid       = "EventBridgeDeadLetters"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.events_dlq.arn]
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [for r in aws_cloudwatch_event_rule.pipeline : r.arn]
    }
  }
}
