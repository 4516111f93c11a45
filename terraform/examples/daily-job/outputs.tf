output "ecr_repository_url" {
  description = "Push the job's image here (tag it with var.image_tag)."
  value       = module.daily_report.ecr_repository_url
}

output "launcher_function_name" {
  description = "What `ec2batch run-now daily-report` invokes."
  value       = module.daily_report.launcher_function_name
}

output "names" {
  description = "Every AWS name of the job."
  value       = module.daily_report.names
}
