################################################################################
# The job's schedule, and the planner for exact-time runs and deadlines
################################################################################

resource "aws_scheduler_schedule_group" "this" {
  # One group per job keeps `terraform destroy` of one job from touching another's schedules.
  name = local.names.schedule_group
  tags = local.tags
}

resource "aws_scheduler_schedule" "job" {
  count = var.schedule_expression == null ? 0 : 1

  name                         = local.names.schedule
  group_name                   = aws_scheduler_schedule_group.this.name
  description                  = "ec2batch ${var.job_name}: run the job"
  schedule_expression          = var.schedule_expression
  schedule_expression_timezone = var.schedule_timezone
  kms_key_arn                  = var.kms_key_arn

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_lambda_function.launcher.arn
    role_arn = aws_iam_role.scheduler.arn
    # The same Input as ec2batch.launcher.events.schedule_target_input: the Scheduler fills in the
    # <aws.scheduler.*> context attributes, and the run id derives from the scheduled time. jsonencode writes
    # '<' and '>' as \u003c and \u003e, which the Scheduler does not recognise (it substitutes the literal
    # text), so they are put back: no other '<' or '>' can occur (job names are [a-z0-9-]).
    input = replace(replace(jsonencode({
      action         = "schedule"
      job            = var.job_name
      scheduled_time = "<aws.scheduler.scheduled-time>"
      execution_id   = "<aws.scheduler.execution-id>"
    }), "\\u003c", "<"), "\\u003e", ">")

    retry_policy {
      maximum_event_age_in_seconds = var.starting_deadline_seconds < 60 ? 60 : var.starting_deadline_seconds
      maximum_retry_attempts       = 3
    }

    dead_letter_config {
      arn = aws_sqs_queue.dead_letters.arn
    }
  }
}

resource "aws_scheduler_schedule" "planner" {
  count = var.planner_enabled ? 1 : 0

  name                = local.names.planner_schedule
  group_name          = aws_scheduler_schedule_group.this.name
  description         = "ec2batch ${var.job_name}: every 15 minutes, enqueue the timers due in the next 15 minutes"
  schedule_expression = "rate(15 minutes)"
  kms_key_arn         = var.kms_key_arn

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_lambda_function.launcher.arn
    role_arn = aws_iam_role.scheduler.arn
    input    = jsonencode({ action = "plan", job = var.job_name })

    retry_policy {
      maximum_event_age_in_seconds = 600
      maximum_retry_attempts       = 3
    }

    dead_letter_config {
      arn = aws_sqs_queue.dead_letters.arn
    }
  }
}
