################################################################################
# Image repository
################################################################################

resource "aws_ecr_repository" "this" {
  name                 = local.names.ecr_repository
  image_tag_mutability = var.ecr_image_tag_mutability

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = var.kms_key_arn == null ? "AES256" : "KMS"
    kms_key         = var.kms_key_arn
  }

  tags = local.tags
}

resource "aws_ecr_lifecycle_policy" "this" {
  repository = aws_ecr_repository.this.name
  policy = jsonencode({
    rules = [{
      rulePriority = 1
      description  = "Keep the last ${var.ecr_keep_images} images"
      selection = {
        tagStatus   = "any"
        countType   = "imageCountMoreThan"
        countNumber = var.ecr_keep_images
      }
      action = { type = "expire" }
    }]
  })
}

################################################################################
# Job config (read by the launcher and the agent)
################################################################################

resource "aws_ssm_parameter" "config" {
  name        = local.names.config_parameter
  description = "ec2batch job config of ${var.job_name} (schema: docs/config.md)"
  # The document holds no secret (they are referenced by name), but it says what runs where: encrypted
  # anyway, with the AWS managed key unless a key is given (readers need only ssm:GetParameter for that).
  type   = "SecureString"
  key_id = var.kms_key_arn
  value  = jsonencode(local.job_config)
  tier   = "Standard"
  tags   = local.tags
}

################################################################################
# Run ledger
################################################################################

resource "aws_dynamodb_table" "ledger" {
  name         = local.names.ledger_table
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "job"
  range_key    = "run_id"

  attribute {
    name = "job"
    type = "S"
  }

  attribute {
    name = "run_id"
    type = "S"
  }

  # Idempotency-token items expire after 7 days.
  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }

  deletion_protection_enabled = true

  # The run events' outbox (docs/events.md): every write's item before and after, which the launcher reads
  # through its event source mapping (lambda.tf) to publish each status change with the status it left.
  # ec2batch.ledger.STREAM_SPECIFICATION is the local stack's copy (tests/terraform/test_parity.py compares).
  stream_enabled   = true
  stream_view_type = "NEW_AND_OLD_IMAGES"

  tags = local.tags
}

################################################################################
# Notifications
################################################################################

# The topic's key. Not alias/aws/sns: CloudWatch alarms publish as the service cloudwatch.amazonaws.com, which
# the AWS managed key's policy (fixed by AWS) does not admit, so every alarm would be dropped silently. A key of
# this module's own, unless var.kms_key_arn names the account's (whose policy must then admit CloudWatch too).
data "aws_iam_policy_document" "topic_key" {
  count = var.kms_key_arn == null ? 1 : 0

  statement {
    sid = "AccountAdministersTheKeyThroughIam"
    # AWS's default key policy: the account (through IAM policies) administers and uses the key. In a key
    # policy, resources = ["*"] means this key; without this statement no IAM policy could grant it (AWS requires "*").
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  statement {
    sid = "CloudWatchAlarmsOfThisJobPublish"
    # Key policy: resources = ["*"] is this key (AWS requires "*").
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:cloudwatch:${local.region}:${local.account_id}:alarm:${local.base}-*"]
    }
  }
}

resource "aws_kms_key" "topic" {
  count = var.kms_key_arn == null ? 1 : 0

  description             = "ec2batch ${var.job_name}: the notification topic (CloudWatch alarms and the job publish)"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.topic_key[0].json
  tags                    = local.tags
}

resource "aws_kms_alias" "topic" {
  count = var.kms_key_arn == null ? 1 : 0

  name          = local.names.topic_key_alias
  target_key_id = aws_kms_key.topic[0].key_id
}

locals {
  topic_key_arn = var.kms_key_arn != null ? var.kms_key_arn : aws_kms_key.topic[0].arn
}

resource "aws_sns_topic" "this" {
  name              = local.names.notification_topic
  kms_master_key_id = local.topic_key_arn
  tags              = local.tags
}

resource "aws_sns_topic_subscription" "email" {
  count = var.notification_email == null ? 0 : 1

  topic_arn = aws_sns_topic.this.arn
  protocol  = "email"
  endpoint  = var.notification_email
}

################################################################################
# Logs
################################################################################

resource "aws_cloudwatch_log_group" "job" {
  name              = local.names.log_group
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = local.tags
}

resource "aws_cloudwatch_log_group" "launcher" {
  name              = local.names.launcher_log_group
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = local.tags
}
