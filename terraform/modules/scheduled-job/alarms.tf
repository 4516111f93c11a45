################################################################################
# Alarms: a failed run, a run that could not start, a run longer than its max runtime,
# a launcher error, dead letters. All go to the job's topic.
################################################################################

locals {
  # Metric filters on JSON log lines written by the launcher and the agent (docs/launcher.md, docs/agent.md).
  metric_filters = {
    FailedStarts  = { log_group = aws_cloudwatch_log_group.launcher.name, pattern = "{ $.msg = \"run failed to start\" }" }
    FailedRuns    = { log_group = aws_cloudwatch_log_group.job.name, pattern = "{ $.msg = \"run ended\" && ($.status = \"FAILED\" || $.status = \"TIMED_OUT\") }" }
    TimedOutRuns  = { log_group = aws_cloudwatch_log_group.job.name, pattern = "{ $.msg = \"run ended\" && $.status = \"TIMED_OUT\" }" }
    DeadlineStops = { log_group = aws_cloudwatch_log_group.launcher.name, pattern = "{ $.msg = \"deadline: run stopped from outside\" }" }
  }

  alarms = {
    failed-run = {
      description = "A run of ${var.job_name} failed or timed out"
      namespace   = "ec2batch/${var.job_name}"
      metric      = "FailedRuns"
      statistic   = "Sum"
      dimensions  = {}
    }
    failed-start = {
      description = "The launcher of ${var.job_name} could not get a machine for a run"
      namespace   = "ec2batch/${var.job_name}"
      metric      = "FailedStarts"
      statistic   = "Sum"
      dimensions  = {}
    }
    longer-than-max-runtime = {
      description = "A run of ${var.job_name} ran longer than its max runtime (${var.max_runtime_seconds}s)"
      namespace   = "ec2batch/${var.job_name}"
      metric      = "TimedOutRuns"
      statistic   = "Sum"
      dimensions  = {}
    }
    stopped-by-deadline = {
      description = "A run of ${var.job_name} outlived its deadline and its machine was stopped from outside (agent dead or machine hung)"
      namespace   = "ec2batch/${var.job_name}"
      metric      = "DeadlineStops"
      statistic   = "Sum"
      dimensions  = {}
    }
    launcher-errors = {
      description = "The launcher of ${var.job_name} raised an error"
      namespace   = "AWS/Lambda"
      metric      = "Errors"
      statistic   = "Sum"
      dimensions  = { FunctionName = aws_lambda_function.launcher.function_name }
    }
    dead-letters = {
      description = "Events for ${var.job_name} ended in the dead-letter queue"
      namespace   = "AWS/SQS"
      metric      = "ApproximateNumberOfMessagesVisible"
      statistic   = "Maximum"
      dimensions  = { QueueName = aws_sqs_queue.dead_letters.name }
    }
  }
}

resource "aws_cloudwatch_log_metric_filter" "this" {
  for_each = local.metric_filters

  name           = "${local.base}-${each.key}"
  log_group_name = each.value.log_group
  pattern        = each.value.pattern

  metric_transformation {
    name      = each.key
    namespace = "ec2batch/${var.job_name}"
    value     = "1"
  }
}

resource "aws_cloudwatch_metric_alarm" "this" {
  for_each = local.alarms

  alarm_name          = "${local.base}-${each.key}"
  alarm_description   = each.value.description
  namespace           = each.value.namespace
  metric_name         = each.value.metric
  dimensions          = each.value.dimensions
  statistic           = each.value.statistic
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.this.arn]
  tags                = local.tags
}
