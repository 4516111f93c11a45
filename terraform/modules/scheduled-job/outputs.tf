output "job_name" {
  description = "The job's name (what `ec2batch` commands take)."
  value       = var.job_name
}

output "names" {
  description = "Every AWS name of the job, as ec2batch.names derives them."
  value       = local.names
}

output "ecr_repository_url" {
  description = "Push the job's image here."
  value       = aws_ecr_repository.this.repository_url
}

output "launcher_function_name" {
  description = "The launcher Lambda; `ec2batch run-now` invokes it."
  value       = aws_lambda_function.launcher.function_name
}

output "ledger_table_name" {
  description = "The run ledger's DynamoDB table."
  value       = aws_dynamodb_table.ledger.name
}

output "log_group_name" {
  description = "The job's log group (streams <run_id>/job and <run_id>/agent)."
  value       = aws_cloudwatch_log_group.job.name
}

output "topic_arn" {
  description = "SNS topic of the job's notifications and alarms."
  value       = aws_sns_topic.this.arn
}

output "launch_template_id" {
  description = "The job's launch template."
  value       = aws_launch_template.this.id
}

output "reusable_instance_id" {
  description = "The job's reusable instance (strategy reuse), or null."
  value       = try(aws_instance.reusable[0].id, null)
}

output "config_parameter_name" {
  description = "SSM parameter holding the job config."
  value       = aws_ssm_parameter.config.name
}

output "timer_queue_url" {
  description = "SQS queue of exact-time runs and deadlines."
  value       = aws_sqs_queue.timers.url
}

output "instance_role_arn" {
  description = "The role of the job's machine."
  value       = aws_iam_role.instance.arn
}

output "job_role_arn" {
  description = "The job's own role (ec2batch-<job>-job): what the job's code gets from the credentials endpoint."
  value       = aws_iam_role.job.arn
}

output "batch_job_queue_arn" {
  description = "The AWS Batch job queue of the job's shards (shards > 1), or null."
  value       = try(aws_batch_job_queue.this[0].arn, null)
}

output "batch_job_definition_arn" {
  description = "The AWS Batch job definition of the job's shards, its current revision (shards > 1), or null."
  value       = try(aws_batch_job_definition.this[0].arn, null)
}

output "dashboard_name" {
  description = "The job's CloudWatch dashboard (run metrics, docs/metrics.md)."
  value       = aws_cloudwatch_dashboard.this.dashboard_name
}
