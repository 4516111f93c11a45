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

  notification_email = var.notification_email
  kms_key_arn        = var.kms_key_arn

  tags = {
    team = "reporting"
  }
}
