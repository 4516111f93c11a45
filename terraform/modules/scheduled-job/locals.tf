################################################################################
# Names: the same templates as ec2batch/names.py (tests/unit/test_terraform.py compares them)
################################################################################

locals {
  base = "ec2batch-${var.job_name}"

  names = {
    base               = local.base
    config_parameter   = "/ec2batch/${var.job_name}/config"
    log_group          = "/ec2batch/${var.job_name}"
    ecr_repository     = "ec2batch/${var.job_name}"
    ledger_table       = "${local.base}-runs"
    metrics_namespace  = "ec2batch/${var.job_name}"
    launch_template    = local.base
    launcher_function  = "${local.base}-launcher"
    launcher_log_group = "/aws/lambda/${local.base}-launcher"
    notification_topic = local.base
    timer_queue        = "${local.base}-timers"
    dead_letter_queue  = "${local.base}-dlq"
    schedule           = local.base
    planner_schedule   = "${local.base}-planner"
    schedule_group     = local.base
    instance_role      = "${local.base}-instance"
    instance_profile   = "${local.base}-instance"
    launcher_role      = "${local.base}-launcher"
    scheduler_role     = "${local.base}-scheduler"
    job_role           = "${local.base}-job"
    security_group     = local.base
    topic_key_alias    = "alias/${local.base}-topic"

    # AWS Batch, for runs with shards (var.shards > 1; batch.tf).
    batch_compute_environment      = local.base
    batch_spot_compute_environment = "${local.base}-spot"
    batch_job_queue                = local.base
    batch_job_definition           = local.base
    batch_instance_role            = "${local.base}-batch-instance"
    batch_execution_role           = "${local.base}-batch-execution"
    batch_state_rule               = "${local.base}-batch-state"
    batch_launch_template          = "${local.base}-batch"

    # Jobs that run after other jobs (var.after; events.tf).
    after_rule = "${local.base}-after"
  }

  tag_job     = "ec2batch:job"
  tag_outcome = "ec2batch:outcome"
  tags        = merge(var.tags, { (local.tag_job) = var.job_name })

  image = coalesce(var.image, "${aws_ecr_repository.this.repository_url}:${var.image_tag}")

  # The job config: the document ec2batch.config.parse_config validates (docs/config.md).
  job_config = {
    job                       = var.job_name
    image                     = local.image
    command                   = var.command
    env                       = var.environment
    secrets                   = { for name, s in var.secrets : name => { for k, v in s : k => v if v != null } }
    max_runtime_seconds       = var.max_runtime_seconds
    stop_grace_seconds        = var.stop_grace_seconds
    strategy                  = var.strategy
    concurrency               = var.concurrency
    starting_deadline_seconds = var.starting_deadline_seconds
    instance_types            = var.instance_types
    subnet_ids                = var.subnet_ids
    limits                    = { for k, v in var.limits : k => v if v != null }
    notifications             = { topic_arn = aws_sns_topic.this.arn, on = var.notify_on }
    boot_without_run          = "poweroff"
    keep_running_for_debug    = false
    deadline_slack_seconds    = var.deadline_slack_seconds
    job_role_arn              = aws_iam_role.job.arn
    network                   = var.network
    market                    = var.market
    retry = {
      attempts = var.retry.attempts
      on       = var.retry.on
      # list(string) in the variable; the document takes a code as a number and a range as a string, as
      # ec2batch.config.RetryPolicy.to_document writes them ("007" -> 7, "75-75" -> 75, "009-012" -> "9-12").
      # jsondecode of "7" is a number, of "\"9-12\"" a string: a conditional choosing between a number and a
      # string would have made both strings.
      exit_codes        = [for r in local.retry_exit_ranges : jsondecode(r[0] == r[1] ? tostring(r[0]) : jsonencode("${r[0]}-${r[1]}"))]
      interval_seconds  = var.retry.interval_seconds
      backoff_rate      = var.retry.backoff_rate
      max_delay_seconds = var.retry.max_delay_seconds
      market            = local.retry_market
    }
    shards = var.shards
    batch  = var.batch
    after  = var.after
    # The job's bus: the launcher publishes there (EC2BATCH_EVENT_BUS, the same variable); the local stack, which
    # has no Lambda environment, reads it here, and `ec2batch graph` shows it.
    event_bus = var.event_bus_name
  }

  # Each of var.retry.exit_codes (validated: "n" or "lo-hi") as [lo, hi].
  retry_exit_ranges = [for code in var.retry.exit_codes : [for part in [split("-", code)[0], reverse(split("-", code))[0]] : tonumber(part)]]

  # As ec2batch.config: a retry's market follows `market`, except that after spot-then-on-demand it is on-demand.
  retry_market = coalesce(var.retry.market, var.market == "spot-then-on-demand" ? "on-demand" : var.market)
  # The markets a machine of this job may be launched in (the launcher's ec2:InstanceMarketType condition).
  launch_markets = distinct(flatten([for m in [var.market, local.retry_market] : m == "spot-then-on-demand" ? ["spot", "on-demand"] : [m]]))
  uses_spot      = contains(local.launch_markets, "spot")

  # A parameter ARN has exactly one '/' after "parameter": "/a/b" -> parameter/a/b, "name" -> parameter/name.
  secret_ssm_arns = [for s in values(var.secrets) : "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter/${trimprefix(s.ssm, "/")}" if s.ssm != null]
  secret_sm_arns  = [for s in values(var.secrets) : s.secretsmanager if s.secretsmanager != null]

  # Every key the roles use: the topic's (the module's own, or the customer key), and the customer key.
  kms_key_arns = distinct(compact([local.topic_key_arn, var.kms_key_arn]))

  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.region
  partition  = data.aws_partition.current.partition
}

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}
