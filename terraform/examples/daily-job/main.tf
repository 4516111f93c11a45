module "daily_report" {
  source = "../../modules/scheduled-job"

  job_name     = "daily-report"
  image_tag    = var.image_tag
  command      = ["python3", "/app/report.py"]
  environment  = { REPORT_ROWS = "5000000" }
  secrets      = var.secrets
  launcher_zip = "${path.root}/../../../dist/launcher.zip"

  # Every day at 02:00 Berlin time, summer and winter alike.
  schedule_expression = "cron(0 2 * * ? *)"
  schedule_timezone   = "Europe/Berlin"

  strategy            = "reuse"
  concurrency         = "forbid"
  max_runtime_seconds = 7200
  instance_types      = ["r7i.2xlarge", "r6i.2xlarge", "r5.2xlarge"]
  subnet_ids          = var.subnet_ids
  limits              = { memory_mb = 60000 }

  # On Spot instead (docs/config.md, Spot and retries): a fresh one-time Spot instance per attempt, on-demand
  # once no type and subnet has Spot capacity, and up to two more attempts when EC2 reclaims the machine or
  # the job exits 75. Spot needs strategy "ephemeral"; the launcher's role then may launch Spot instances.
  #   strategy = "ephemeral"
  #   market   = "spot-then-on-demand"
  #   retry    = { attempts = 3, on = ["interruption", "start-failure"], exit_codes = [75] }

  notification_email = var.notification_email
  kms_key_arn        = var.kms_key_arn

  tags = {
    team = "reporting"
  }
}
