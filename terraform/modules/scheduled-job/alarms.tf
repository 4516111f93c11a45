################################################################################
# Alarms: a failed run, a run longer than its max runtime, a launcher error, dead letters
################################################################################

resource "aws_cloudwatch_log_metric_filter" "failed_runs" {
  name           = "${local.base}-failed-runs"
  log_group_name = aws_cloudwatch_log_group.launcher.name
  # The launcher logs every run it cannot start; the agent's outcomes go to the job's group (below).
  pattern = "{ $.msg = \"run failed to start\" }"

  metric_transformation {
    name      = "FailedStarts"
    namespace = "ec2batch/${var.job_name}"
    value     = "1"
  }
}

resource "aws_cloudwatch_log_metric_filter" "run_outcomes" {
  name           = "${local.base}-run-outcomes"
  log_group_name = aws_cloudwatch_log_group.job.name
  pattern        = "{ $.msg = \"run ended\" && ($.status = \"FAILED\" || $.status = \"TIMED_OUT\") }"

  metric_transformation {
    name      = "FailedRuns"
    namespace = "ec2batch/${var.job_name}"
    value     = "1"
  }
}

resource "aws_cloudwatch_log_metric_filter" "timed_out" {
  name           = "${local.base}-timed-out"
  log_group_name = aws_cloudwatch_log_group.job.name
  pattern        = "{ $.msg = \"run ended\" && $.status = \"TIMED_OUT\" }"

  metric_transformation {
    name      = "TimedOutRuns"
    namespace = "ec2batch/${var.job_name}"
    value     = "1"
  }
}

resource "aws_cloudwatch_metric_alarm" "failed_run" {
  alarm_name          = "${local.base}-failed-run"
  alarm_description   = "A run of ${var.job_name} failed or could not start"
  namespace           = "ec2batch/${var.job_name}"
  metric_name         = "FailedRuns"
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.this.arn]
  tags                = local.tags
}

resource "aws_cloudwatch_metric_alarm" "timed_out" {
  alarm_name          = "${local.base}-longer-than-max-runtime"
  alarm_description   = "A run of ${var.job_name} ran longer than its max runtime (${var.max_runtime_seconds}s)"
  namespace           = "ec2batch/${var.job_name}"
  metric_name         = "TimedOutRuns"
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.this.arn]
  tags                = local.tags
}

resource "aws_cloudwatch_metric_alarm" "launcher_errors" {
  alarm_name          = "${local.base}-launcher-errors"
  alarm_description   = "The launcher of ${var.job_name} raised an error"
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = aws_lambda_function.launcher.function_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.this.arn]
  tags                = local.tags
}

resource "aws_cloudwatch_metric_alarm" "dead_letters" {
  alarm_name          = "${local.base}-dead-letters"
  alarm_description   = "Events for ${var.job_name} ended in the dead-letter queue"
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.dead_letters.name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.this.arn]
  tags                = local.tags
}
