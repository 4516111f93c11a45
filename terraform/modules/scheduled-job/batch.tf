################################################################################
# AWS Batch: with var.shards > 1 a run is one array job of var.shards children (issue 14). Nothing here exists
# when shards = 1.
################################################################################

locals {
  uses_batch    = var.shards > 1
  batch_fargate = var.batch.compute == "fargate"
  batch_ec2     = local.uses_batch && !local.batch_fargate

  # The compute environments, in the job queue's order: Spot first where the market is spot-then-on-demand (Batch
  # places a shard in the first environment with room; the on-demand one takes what Spot cannot).
  batch_markets = {
    "on-demand"           = ["on-demand"]
    "spot"                = ["spot"]
    "spot-then-on-demand" = ["spot", "on-demand"]
  }[var.market]
  batch_environments = !local.uses_batch ? {} : {
    for order, market in local.batch_markets : market => {
      order = order + 1
      name  = market == "spot" ? local.names.batch_spot_compute_environment : local.names.batch_compute_environment
      type  = local.batch_fargate ? (market == "spot" ? "FARGATE_SPOT" : "FARGATE") : (market == "spot" ? "SPOT" : "EC2")
    }
  }

  # The shim every shard runs: EC2BATCH_SHARD_INDEX is the child's array index (AWS_BATCH_JOB_ARRAY_INDEX), or,
  # where Batch sets none, the index at the end of the child's id (<array job id>:<index>); then the job's own
  # command, exec'd so that it gets Batch's SIGTERM. "ec2batch-shard" is $0, so "$@" is exactly the command.
  batch_command = concat(
    ["/bin/sh", "-c", "export EC2BATCH_SHARD_INDEX=\"$${AWS_BATCH_JOB_ARRAY_INDEX:-$${AWS_BATCH_JOB_ID##*:}}\"; exec \"$@\"", "ec2batch-shard"],
    coalesce(var.command, []),
  )

  # A secret as the container's valueFrom: the parameter's ARN, or the secret's ARN with its JSON key
  # (<arn>:<key>:<version stage>:<version id>, the last two left empty: the current version).
  batch_secrets = [for name, s in var.secrets : {
    name      = name
    valueFrom = s.ssm != null ? "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter/${trimprefix(s.ssm, "/")}" : (s.key == null ? s.secretsmanager : "${s.secretsmanager}:${s.key}::")
  }]

  batch_container_properties = merge(
    {
      image            = local.image
      command          = local.batch_command
      jobRoleArn       = aws_iam_role.job.arn
      executionRoleArn = try(aws_iam_role.batch_execution[0].arn, null)
      resourceRequirements = [
        { type = "VCPU", value = tostring(var.batch.vcpus) },
        { type = "MEMORY", value = tostring(var.batch.memory_mb) },
      ]
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.job.name
          awslogs-region        = local.region
          awslogs-stream-prefix = "shards" # ec2batch.names.JobNames.batch_log_stream_prefix
        }
      }
    },
    # Only when there are any: AWS drops an empty list, which would read back as a change.
    length(var.environment) == 0 ? {} : {
      environment = [for name in sort(keys(var.environment)) : { name = name, value = var.environment[name] }]
    },
    length(local.batch_secrets) == 0 ? {} : { secrets = local.batch_secrets },
    # Fargate: in the job's private subnets, reaching AWS through NAT or endpoints as the machine does.
    local.batch_fargate ? {
      networkConfiguration         = { assignPublicIp = "DISABLED" }
      fargatePlatformConfiguration = { platformVersion = "LATEST" }
    } : {},
    !local.batch_fargate && var.limits.shm_size_mb != null ? {
      linuxParameters = { sharedMemorySize = var.limits.shm_size_mb }
    } : {},
  )
}

resource "aws_batch_compute_environment" "this" {
  for_each = local.batch_environments

  name  = each.value.name
  type  = "MANAGED"
  state = "ENABLED"
  # service_role is left unset on purpose: Batch then uses its service-linked role AWSServiceRoleForBatch, which
  # it creates in the account when missing. Creating it here would fail in every account that already has it.

  compute_resources {
    type      = each.value.type
    max_vcpus = var.batch.max_vcpus
    # Scales to zero between runs: no instance is paid for while no shard is queued (not applicable to Fargate).
    min_vcpus     = local.batch_fargate ? null : 0
    instance_type = local.batch_fargate ? null : var.instance_types
    instance_role = local.batch_fargate ? null : aws_iam_instance_profile.batch[0].arn
    allocation_strategy = local.batch_fargate ? null : (
      each.value.type == "SPOT" ? "SPOT_PRICE_CAPACITY_OPTIMIZED" : "BEST_FIT_PROGRESSIVE"
    )
    subnets            = var.subnet_ids
    security_group_ids = [aws_security_group.this.id]

    # The ECS-optimized Amazon Linux 2023 AMI, with IMDSv2 and one hop (the launch template): the shards'
    # containers cannot reach the instance role's credentials, as on the job's own machine.
    dynamic "ec2_configuration" {
      for_each = local.batch_fargate ? [] : [1]
      content {
        image_type = "ECS_AL2023"
      }
    }

    dynamic "launch_template" {
      for_each = local.batch_fargate ? [] : [1]
      content {
        launch_template_id = aws_launch_template.batch[0].id
        version            = aws_launch_template.batch[0].latest_version
      }
    }
    # No compute_resources.tags: Batch's instances must not carry ec2batch:job, which would make them this job's
    # machines to the launcher and the reconciler (tag-scoped Start/Stop/Terminate, the instance lookups).
  }

  tags = local.tags

  lifecycle {
    # Batch scales the environment itself.
    ignore_changes = [compute_resources[0].desired_vcpus]
  }
}

resource "aws_launch_template" "batch" {
  count = local.batch_ec2 ? 1 : 0

  name        = local.names.batch_launch_template
  description = "ec2batch ${var.job_name}: the AWS Batch instances of the job's shards"

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  # Encrypted under the account's EBS key (aws/ebs unless the account sets another): a customer key here would
  # need grants for Batch's service-linked roles in the key policy, which this module cannot write.
  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      volume_size           = var.root_volume_size_gb
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  tags = local.tags
}

resource "aws_batch_job_queue" "this" {
  count = local.uses_batch ? 1 : 0

  name     = local.names.batch_job_queue
  state    = "ENABLED"
  priority = 1

  # In the queue's order (Spot first), as AWS returns them.
  dynamic "compute_environment_order" {
    for_each = local.batch_markets
    content {
      order               = local.batch_environments[compute_environment_order.value].order
      compute_environment = aws_batch_compute_environment.this[compute_environment_order.value].arn
    }
  }

  tags = local.tags
}

resource "aws_batch_job_definition" "this" {
  count = local.uses_batch ? 1 : 0

  name                  = local.names.batch_job_definition
  type                  = "container"
  platform_capabilities = [local.batch_fargate ? "FARGATE" : "EC2"]
  container_properties  = jsonencode(local.batch_container_properties)
  # The array job's tags (the launcher's, at SubmitJob) go on each shard's ECS task too.
  propagate_tags = true

  retry_strategy {
    attempts = var.retry.attempts
  }

  timeout {
    # Batch's shortest attempt timeout is 60 seconds.
    attempt_duration_seconds = max(60, var.max_runtime_seconds)
  }

  tags = local.tags
}

################################################################################
# The shards' state changes to the launcher
################################################################################

resource "aws_cloudwatch_event_rule" "batch_state" {
  count = local.uses_batch ? 1 : 0

  name        = local.names.batch_state_rule
  description = "ec2batch ${var.job_name}: state changes of the shards in the job's Batch queue, to the launcher"
  event_pattern = jsonencode({
    source        = ["aws.batch"]
    "detail-type" = ["Batch Job State Change"]
    detail = {
      jobQueue = [aws_batch_job_queue.this[0].arn]
    }
  })
  tags = local.tags
}

resource "aws_cloudwatch_event_target" "batch_state" {
  count = local.uses_batch ? 1 : 0

  rule      = aws_cloudwatch_event_rule.batch_state[0].name
  target_id = "launcher"
  arn       = aws_lambda_function.launcher.arn
  # No input: the launcher gets the event as EventBridge sends it (detail-type "Batch Job State Change").

  # No dead_letter_config: the dead-letter queue is under alias/aws/sqs (or the customer key), which EventBridge
  # cannot use to send; an event given up on is found by the launcher's own DescribeJobs of the run's array job.
  retry_policy {
    maximum_event_age_in_seconds = 3600
    maximum_retry_attempts       = 3
  }
}

resource "aws_lambda_permission" "batch_state" {
  count = local.uses_batch ? 1 : 0

  statement_id  = "BatchStateChangesOfThisJobsQueue"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.launcher.function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.batch_state[0].arn
}
