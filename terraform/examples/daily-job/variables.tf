variable "region" {
  description = "AWS region to deploy the job in."
  type        = string
  default     = "eu-central-1"
}

variable "subnet_ids" {
  description = "Private subnets for the job's machine (with a NAT gateway or VPC endpoints for ECR, S3, SSM, DynamoDB, Logs, SNS)."
  type        = list(string)
}

variable "notification_email" {
  description = "Where failed runs are reported (optional)."
  type        = string
  default     = null
}

variable "image_tag" {
  description = "Tag of the job's image in its ECR repository."
  type        = string
  default     = "2026-11-24"
}

variable "kms_key_arn" {
  description = "Optional customer managed KMS key ARN for everything the job stores (its key policy: see the module README, Encryption). Null: AWS managed keys."
  type        = string
  default     = null
}

variable "secrets" {
  description = "Optional variables the job reads at run time: NAME => { ssm = parameter name } or { secretsmanager = secret ARN, key = optional JSON key }."
  type = map(object({
    ssm            = optional(string)
    secretsmanager = optional(string)
    key            = optional(string)
  }))
  default = {}
}
