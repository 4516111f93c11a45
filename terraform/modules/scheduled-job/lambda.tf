################################################################################
# Launcher Lambda
################################################################################

locals {
  # A stopping instance is waited for up to 120 s before it is started again.
  launcher_timeout = 180
  # Timers in flight at once: half of an opt-in reservation (>= 4), leaving the rest to schedules and run-now.
  timer_concurrency = var.launcher_reserved_concurrency == null ? 5 : max(2, min(5, floor(var.launcher_reserved_concurrency / 2)))
}

resource "aws_lambda_function" "launcher" {
  # checkov:skip=CKV_AWS_117: the launcher only calls AWS APIs; a VPC would add NAT or endpoints and ENI cold starts without reducing what it can reach.
  # checkov:skip=CKV_AWS_272: the zip is built reproducibly from this repository (make lambda-zip); code signing needs a Signer profile, which belongs to the account's pipeline, not to one job's module.
  function_name = local.names.launcher_function
  description   = "ec2batch ${var.job_name}: records runs and starts the job's machine"
  role          = aws_iam_role.launcher.arn

  filename         = var.launcher_zip
  source_code_hash = filebase64sha256(var.launcher_zip)
  handler          = "ec2batch.launcher.handler"
  runtime          = "python3.12"
  architectures    = ["arm64"]
  memory_size      = 256
  timeout          = local.launcher_timeout

  # None by default (-1): a reservation must leave 10 unreserved, and many new accounts have only 10 in all.
  reserved_concurrent_executions = coalesce(var.launcher_reserved_concurrency, -1)
  kms_key_arn                    = var.kms_key_arn

  environment {
    variables = {
      EC2BATCH_JOB                   = var.job_name
      EC2BATCH_STOPPING_WAIT_SECONDS = "120"
      EC2BATCH_EVENT_BUS             = var.event_bus_name
    }
  }

  dead_letter_config {
    target_arn = aws_sqs_queue.dead_letters.arn
  }

  tracing_config {
    mode = "Active"
  }

  logging_config {
    log_format = "Text" # the launcher writes JSON lines itself
    log_group  = aws_cloudwatch_log_group.launcher.name
  }

  tags = local.tags

  depends_on = [aws_iam_role_policy.launcher]
}

resource "aws_lambda_function_event_invoke_config" "launcher" {
  function_name                = aws_lambda_function.launcher.function_name
  maximum_retry_attempts       = 2 # safe: the same schedule event maps to the same run, started once
  maximum_event_age_in_seconds = 3600

  destination_config {
    on_failure {
      destination = aws_sqs_queue.dead_letters.arn
    }
  }
}

# The ledger's stream to the launcher, which publishes each status change of a run as a run event
# (ec2batch.run_events): a transactional outbox, so a writer that dies right after its write loses no event and
# no writer calls EventBridge itself.
resource "aws_lambda_event_source_mapping" "ledger_stream" {
  event_source_arn = aws_dynamodb_table.ledger.stream_arn
  function_name    = aws_lambda_function.launcher.arn
  # What is written from now on: the mapping is created with the table, before its first write.
  starting_position = "LATEST"
  batch_size        = 100
  # No waiting to fill a batch: a downstream `after` job starts from these events.
  maximum_batching_window_in_seconds = 0
  # The launcher names the first record whose event did not go; the mapping retries from there, so the events
  # before it are not sent twice (those after it may be: consumers de-duplicate on detail.event_id).
  function_response_types = ["ReportBatchItemFailures"]
  # A batch that fails as a whole (a timeout, an error) is halved until the record at fault is alone.
  bisect_batch_on_function_error = true
  # A failing batch holds up the job's later events (a shard is read in order), so retries are bounded: ten,
  # and never past 6 hours (DynamoDB keeps stream records for 24).
  maximum_retry_attempts        = 10
  maximum_record_age_in_seconds = 21600

  # Then the batch's description (shard and sequence numbers, not the records) goes to the dead-letter queue,
  # whose alarm (alarms.tf, dead-letters) fires; a consumer that must not miss a run reconciles with the ledger.
  destination_config {
    on_failure {
      destination_arn = aws_sqs_queue.dead_letters.arn
    }
  }

  # Only run items' inserts and updates invoke the function: run ids start with their date (a digit); the
  # bookkeeping items (`~active`, `~token#...`, `~instance#...`, `~after#...`) and removals never do. Whether the
  # status changed is the launcher's test (it needs the old and the new image together).
  filter_criteria {
    filter {
      pattern = jsonencode({
        eventName = ["INSERT", "MODIFY"]
        dynamodb  = { Keys = { run_id = { S = [for digit in range(10) : { prefix = tostring(digit) }] } } }
      })
    }
  }

  tags = local.tags
}

################################################################################
# Queues: timers (exact-time runs, deadlines) and dead letters
################################################################################

resource "aws_sqs_queue" "dead_letters" {
  name                              = local.names.dead_letter_queue
  message_retention_seconds         = 1209600
  kms_master_key_id                 = coalesce(var.kms_key_arn, "alias/aws/sqs")
  kms_data_key_reuse_period_seconds = 3600
  tags                              = local.tags
}

resource "aws_sqs_queue" "timers" {
  name = local.names.timer_queue
  # 6 x the launcher's timeout (AWS's advice for a Lambda event source): a message is not delivered again
  # while it is handled, nor while Lambda retries a throttled batch.
  visibility_timeout_seconds        = 6 * local.launcher_timeout
  message_retention_seconds         = 86400
  kms_master_key_id                 = coalesce(var.kms_key_arn, "alias/aws/sqs")
  kms_data_key_reuse_period_seconds = 3600

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dead_letters.arn
    # At least 5 (AWS's advice for a Lambda event source): a receive that Lambda could not hand to the
    # function still counts, and a timer must not be dead-lettered before it ever ran.
    maxReceiveCount = 5
  })

  tags = local.tags
}

resource "aws_lambda_event_source_mapping" "timers" {
  event_source_arn = aws_sqs_queue.timers.arn
  function_name    = aws_lambda_function.launcher.arn
  # One message per invocation: a timer is due now, and one slow start must not hold up the others.
  batch_size                         = 1
  maximum_batching_window_in_seconds = 0
  function_response_types            = ["ReportBatchItemFailures"]

  # Lambda polls no more messages than the function may run at once: without this cap a throttled receive
  # counts towards maxReceiveCount and can dead-letter a timer that never ran.
  scaling_config {
    maximum_concurrency = local.timer_concurrency
  }

  tags = local.tags
}
