################################################################################
# Run state change events (docs/events.md): where they go, what counts the lost ones
################################################################################

locals {
  event_bus_arn = "arn:${local.partition}:events:${local.region}:${local.account_id}:event-bus/${var.event_bus_name}"
  runs_after    = length(var.after) > 0
}

# The launcher's stream consumer (ec2batch.run_events) logs "run event not published" for each entry PutEvents
# refused (the mapping then retries the batch): count them. Only the launcher publishes; the map keeps the
# filter's address of the time the machine published too.
resource "aws_cloudwatch_log_metric_filter" "run_events" {
  for_each = {
    launcher = aws_cloudwatch_log_group.launcher.name
  }

  name           = "${local.base}-RunEventsNotPublished-${each.key}"
  log_group_name = each.value
  pattern        = "{ $.msg = \"run event not published\" }"

  metric_transformation {
    name      = "RunEventsNotPublished"
    namespace = "ec2batch/${var.job_name}"
    value     = "1"
  }
}

################################################################################
# Jobs this one runs after: their run endings to this job's launcher
################################################################################

resource "aws_cloudwatch_event_rule" "after" {
  count = local.runs_after ? 1 : 0

  name           = local.names.after_rule
  description    = "ec2batch ${var.job_name}: the endings of its upstream jobs' runs (${join(", ", [for a in var.after : a.job])}), to its launcher"
  event_bus_name = var.event_bus_name
  # ec2batch.dependencies.rule_pattern makes the same (the local stack's rule; a test compares them).
  event_pattern = jsonencode({
    source        = ["ec2batch"]
    "detail-type" = ["ec2batch Run State Change"]
    detail = {
      job        = sort(distinct([for a in var.after : a.job]))
      status     = ["SUCCEEDED", "FAILED", "TIMED_OUT", "CANCELLED"]
      downstream = [true]
    }
  })
  tags = local.tags
}

resource "aws_cloudwatch_event_target" "after" {
  count = local.runs_after ? 1 : 0

  rule           = aws_cloudwatch_event_rule.after[0].name
  event_bus_name = var.event_bus_name
  target_id      = "launcher"
  # The function itself, not the timer queue: the queue is under alias/aws/sqs (or the customer key), which
  # EventBridge cannot use to send. The local stack's rule targets the queue with the same input.
  arn = aws_lambda_function.launcher.arn

  # ec2batch.dependencies.target_input: the launcher's `after` action with EventBridge's event inside.
  input_transformer {
    input_template = "{\"action\": \"after\", \"job\": \"${var.job_name}\", \"event\": <aws.events.event.json>}"
  }

  # A lost event is a chain that does not go on: retried for a day (the arrival it records is idempotent).
  retry_policy {
    maximum_event_age_in_seconds = 86400
    maximum_retry_attempts       = 185
  }
}

resource "aws_lambda_permission" "after" {
  count = local.runs_after ? 1 : 0

  statement_id  = "UpstreamRunEndingsFromThisJobsRule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.launcher.function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.after[0].arn
}
