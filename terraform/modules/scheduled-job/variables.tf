################################################################################
# Job
################################################################################

variable "job_name" {
  description = "Name of the job. Every AWS name derives from it (ec2batch-<job>, /ec2batch/<job>, ...)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}$", var.job_name))
    error_message = "job_name must be 2-31 characters: lowercase letters, digits and '-', starting with a letter."
  }
}

variable "image" {
  description = "Container image of the job. Null: this module's ECR repository, tag `image_tag`."
  type        = string
  default     = null
}

variable "image_tag" {
  description = "Tag used when `image` is null."
  type        = string
  default     = "latest"
}

variable "command" {
  description = "Exec-form command of the job container; null keeps the image's CMD."
  type        = list(string)
  default     = null
}

variable "environment" {
  description = "Plain environment variables of the job container."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.environment) : can(regex("^[A-Za-z_][A-Za-z0-9_]*$", k))])
    error_message = "environment keys must be valid variable names (letters, digits and '_', not starting with a digit)."
  }
}

variable "secrets" {
  description = "Variables whose values are read at run time: NAME => { ssm = parameter name } or { secretsmanager = secret ARN, key = optional JSON key }. Values never enter Terraform state."
  type = map(object({
    ssm            = optional(string)
    secretsmanager = optional(string)
    key            = optional(string)
  }))
  default = {}

  validation {
    condition     = alltrue([for s in values(var.secrets) : (s.ssm == null) != (s.secretsmanager == null)])
    error_message = "each secret names exactly one of ssm or secretsmanager."
  }

  # The IAM policy names each secret by ARN: a bare name would render an invalid resource and fail at apply.
  validation {
    condition     = alltrue([for s in values(var.secrets) : s.secretsmanager == null || can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+$", s.secretsmanager))])
    error_message = "secrets[*].secretsmanager must be the secret's full ARN (arn:aws:secretsmanager:<region>:<account>:secret:<name>-<6 characters>)."
  }

  # SSM names: "name" or "/path/to/name" (a name with '/' must start with one); the policy derives the ARN from it.
  validation {
    condition     = alltrue([for s in values(var.secrets) : s.ssm == null || can(regex("^(/[A-Za-z0-9_.-]+)+$|^[A-Za-z0-9_.-]+$", s.ssm))])
    error_message = "secrets[*].ssm must be a parameter name: name or /path/to/name (letters, digits, _ . -), not an ARN."
  }
}

variable "max_runtime_seconds" {
  description = "The agent stops the job after this long (SIGTERM, then SIGKILL after stop_grace_seconds): TIMED_OUT."
  type        = number
  default     = 3600

  validation {
    condition     = var.max_runtime_seconds >= 10 && var.max_runtime_seconds <= 1209600 && floor(var.max_runtime_seconds) == var.max_runtime_seconds
    error_message = "max_runtime_seconds must be a whole number from 10 to 1209600 (14 days)."
  }
}

variable "stop_grace_seconds" {
  description = "Seconds between SIGTERM and SIGKILL when the job is stopped."
  type        = number
  default     = 30

  validation {
    condition     = var.stop_grace_seconds >= 0 && var.stop_grace_seconds <= 3600
    error_message = "stop_grace_seconds must be from 0 to 3600."
  }
}

variable "deadline_slack_seconds" {
  description = "Extra time (boot, image pull) before the external deadline stops a run still going after max_runtime_seconds + stop_grace_seconds."
  type        = number
  default     = 300

  validation {
    condition     = var.deadline_slack_seconds >= 0 && var.deadline_slack_seconds <= 86400
    error_message = "deadline_slack_seconds must be from 0 to 86400."
  }
}

variable "network" {
  description = "The job container's network. bridge: its own namespace, the machine's role out of reach (IMDS hop limit 1 and a DOCKER-USER drop); host: the machine's network, for jobs that need it, IMDS still blocked for the job's processes (docs/config.md)."
  type        = string
  default     = "bridge"

  validation {
    condition     = contains(["bridge", "host"], var.network)
    error_message = "network must be bridge or host."
  }
}

variable "strategy" {
  description = "reuse: one instance, stopped between runs; ephemeral: a fresh instance per run, terminated at the end."
  type        = string
  default     = "reuse"

  validation {
    condition     = contains(["reuse", "ephemeral"], var.strategy)
    error_message = "strategy must be reuse or ephemeral."
  }
}

variable "market" {
  description = "Market of a run's first attempt. on-demand; spot: one-time Spot instances only (terminated when EC2 interrupts them), every instance type and subnet in turn; spot-then-on-demand: the same, then on-demand in the same order. Spot needs strategy ephemeral. The launcher's role may launch Spot instances only when this or retry.market is not on-demand."
  type        = string
  default     = "on-demand"
  nullable    = false

  validation {
    condition     = contains(["on-demand", "spot", "spot-then-on-demand"], var.market)
    error_message = "market must be on-demand, spot or spot-then-on-demand."
  }

  # The same refusal as ec2batch.config.SPOT_NEEDS_EPHEMERAL (cross-variable validation: Terraform >= 1.9).
  validation {
    condition     = var.market == "on-demand" || var.strategy == "ephemeral"
    error_message = "market: Spot needs strategy ephemeral: a Spot instance is one-time and terminates when interrupted, so it cannot be the reusable instance that stops after a run and starts for the next."
  }
}

variable "retry" {
  description = "When a run gets another attempt, as config.retry (docs/config.md, Spot and retries); an attribute left out takes the Python default. attempts (1-10, default 1: no retry); on: causes retried (start-failure, interruption, instance-lost, agent-lost; default all four); exit_codes: exit codes retried, each a code or an inclusive range like \"100-119\" from 1 to 255, as strings because a Terraform list has one element type (75 and \"75\" are the same; the config document gets 75); interval_seconds (0-900, default 30, at most max_delay_seconds), backoff_rate (1-10, default 2), max_delay_seconds (0-900, SQS's longest delay, default 900): the delay before attempt n is interval x rate^(n-2), at most max_delay; market of every retry (default on-demand after spot-then-on-demand, otherwise var.market)."
  type = object({
    attempts          = optional(number, 1)
    on                = optional(list(string), ["start-failure", "interruption", "instance-lost", "agent-lost"])
    exit_codes        = optional(list(string), [])
    interval_seconds  = optional(number, 30)
    backoff_rate      = optional(number, 2)
    max_delay_seconds = optional(number, 900)
    market            = optional(string)
  })
  default  = {}
  nullable = false

  validation {
    condition     = var.retry.attempts >= 1 && var.retry.attempts <= 10 && floor(var.retry.attempts) == var.retry.attempts
    error_message = "retry.attempts must be a whole number from 1 to 10."
  }

  validation {
    condition     = alltrue([for cause in var.retry.on : contains(["start-failure", "interruption", "instance-lost", "agent-lost"], cause)]) && length(distinct(var.retry.on)) == length(var.retry.on)
    error_message = "retry.on must list causes from start-failure, interruption, instance-lost and agent-lost, each once."
  }

  validation {
    condition = alltrue([for code in var.retry.exit_codes : (
      can(regex("^[0-9]{1,3}$", code)) ? try(tonumber(code) >= 1 && tonumber(code) <= 255, false) :
      can(regex("^[0-9]{1,3}-[0-9]{1,3}$", code)) && try(tonumber(split("-", code)[0]) >= 1 && tonumber(split("-", code)[0]) <= tonumber(split("-", code)[1]) && tonumber(split("-", code)[1]) <= 255, false)
    )])
    error_message = "retry.exit_codes must be exit codes from 1 to 255 or ranges like \"100-199\" (0 is success and never retried)."
  }

  validation {
    condition     = var.retry.interval_seconds >= 0 && var.retry.interval_seconds <= 900 && floor(var.retry.interval_seconds) == var.retry.interval_seconds
    error_message = "retry.interval_seconds must be a whole number from 0 to 900."
  }

  validation {
    condition     = var.retry.backoff_rate >= 1 && var.retry.backoff_rate <= 10
    error_message = "retry.backoff_rate must be a number from 1 to 10."
  }

  validation {
    condition     = var.retry.max_delay_seconds >= 0 && var.retry.max_delay_seconds <= 900 && floor(var.retry.max_delay_seconds) == var.retry.max_delay_seconds
    error_message = "retry.max_delay_seconds must be a whole number from 0 to 900 (SQS's longest delay)."
  }

  validation {
    condition     = var.retry.interval_seconds <= var.retry.max_delay_seconds
    error_message = "retry.interval_seconds must not be above retry.max_delay_seconds."
  }

  validation {
    condition     = var.retry.market == null ? true : contains(["on-demand", "spot", "spot-then-on-demand"], var.retry.market)
    error_message = "retry.market must be on-demand, spot or spot-then-on-demand (or left out)."
  }

  # As ec2batch.config: only a retry market given here is a second mistake to name (left out, it follows market).
  validation {
    condition     = var.retry.market == null || var.retry.market == "on-demand" || var.strategy == "ephemeral"
    error_message = "retry.market: Spot needs strategy ephemeral: a Spot instance is one-time and terminates when interrupted, so it cannot be the reusable instance that stops after a run and starts for the next."
  }
}

variable "shards" {
  description = "Shards of every run: 1 runs it on the job's own machine; more runs it as one AWS Batch array job of this many children (docs/config.md), each with EC2BATCH_SHARD_INDEX = 0..shards-1. Needs `command`."
  type        = number
  default     = 1
  nullable    = false

  validation {
    condition     = var.shards >= 1 && var.shards <= 10000 && floor(var.shards) == var.shards
    error_message = "shards must be a whole number from 1 to 10000 (AWS Batch's largest array job)."
  }

  # The job definition runs the command behind a shell shim that exports the shard index: the image's CMD is not
  # known to Terraform, so there would be nothing to wrap.
  validation {
    condition     = var.shards == 1 || var.command != null
    error_message = "shards above 1 need command: each shard runs it behind a shell shim that exports EC2BATCH_SHARD_INDEX, and the image's CMD cannot be wrapped."
  }
}

variable "batch" {
  description = "How the shards run on AWS Batch (shards > 1 only): compute ec2 (a managed EC2 compute environment of `instance_types`, scaling to zero; Spot as `market` says) or fargate; max_vcpus (1-100000, default 256) the environment's ceiling, shards beyond it wait their turn; vcpus (default 1: whole numbers on EC2; on Fargate 0.25, 0.5, 1, 2, 4, 8 or 16) and memory_mb (default 2048; on Fargate within the size's range) per shard."
  type = object({
    compute   = optional(string, "ec2")
    max_vcpus = optional(number, 256)
    vcpus     = optional(number, 1)
    memory_mb = optional(number, 2048)
  })
  default  = {}
  nullable = false

  validation {
    condition     = contains(["ec2", "fargate"], var.batch.compute)
    error_message = "batch.compute must be ec2 or fargate."
  }

  validation {
    condition     = var.batch.max_vcpus >= 1 && var.batch.max_vcpus <= 100000 && floor(var.batch.max_vcpus) == var.batch.max_vcpus
    error_message = "batch.max_vcpus must be a whole number from 1 to 100000."
  }

  validation {
    condition     = var.batch.memory_mb >= 512 && var.batch.memory_mb <= 25165824 && floor(var.batch.memory_mb) == var.batch.memory_mb
    error_message = "batch.memory_mb must be a whole number from 512 to 25165824."
  }

  validation {
    condition     = var.batch.vcpus > 0 && var.batch.vcpus <= 192
    error_message = "batch.vcpus must be a number above 0 and at most 192."
  }

  validation {
    condition     = var.batch.compute != "ec2" || floor(var.batch.vcpus) == var.batch.vcpus
    error_message = "batch.vcpus: on EC2 a shard has whole vCPUs (fractions are Fargate's)."
  }

  validation {
    condition     = var.batch.compute != "fargate" || contains([0.25, 0.5, 1, 2, 4, 8, 16], var.batch.vcpus)
    error_message = "batch.vcpus: ${var.batch.vcpus} is not a Fargate size: one of 0.25, 0.5, 1, 2, 4, 8, 16."
  }

  # AWS Batch's Fargate sizes (user guide, Fargate job definitions), as ec2batch.config.FARGATE_MEMORY.
  validation {
    condition = var.batch.compute != "fargate" || contains(lookup({
      "0.25" = [512, 1024, 2048]
      "0.5"  = range(1024, 4097, 1024)
      "1"    = range(2048, 8193, 1024)
      "2"    = range(4096, 16385, 1024)
      "4"    = range(8192, 30721, 1024)
      "8"    = range(16384, 61441, 4096)
      "16"   = range(32768, 122881, 8192)
    }, tostring(var.batch.vcpus), []), var.batch.memory_mb)
    error_message = "batch.memory_mb: ${var.batch.memory_mb} is not allowed with ${var.batch.vcpus} Fargate vCPUs: 0.25 takes 512, 1024 or 2048; 0.5 1024 to 4096 and 1 2048 to 8192, 2 4096 to 16384, 4 8192 to 30720, each in steps of 1024; 8 16384 to 61440 in steps of 4096; 16 32768 to 122880 in steps of 8192."
  }

  # A shard larger than the environment's ceiling would wait in RUNNABLE for ever.
  validation {
    condition     = var.batch.vcpus <= var.batch.max_vcpus
    error_message = "batch.vcpus must not be above batch.max_vcpus (a shard larger than the compute environment never starts)."
  }

  # As ec2batch.config: a run of one shard has its own machine, so settings for Batch would be silently unused.
  validation {
    condition     = var.shards > 1 || var.batch == { compute = "ec2", max_vcpus = 256, vcpus = 1, memory_mb = 2048 }
    error_message = "batch: only applies with shards above 1 (a run of one shard has its own machine)."
  }
}

variable "concurrency" {
  description = "forbid: a trigger while a run is active is SKIPPED; allow: it gets an extra instance."
  type        = string
  default     = "forbid"

  validation {
    condition     = contains(["forbid", "allow"], var.concurrency)
    error_message = "concurrency must be forbid or allow."
  }
}

variable "starting_deadline_seconds" {
  description = "A schedule fire reaching the launcher later than this after its time is SKIPPED as missed."
  type        = number
  default     = 900

  validation {
    condition     = var.starting_deadline_seconds >= 10 && var.starting_deadline_seconds <= 86400
    error_message = "starting_deadline_seconds must be from 10 to 86400."
  }
}

variable "instance_types" {
  description = "Instance types, preferred first; the others are fallbacks when AWS has no capacity."
  type        = list(string)

  validation {
    condition     = length(var.instance_types) > 0 && alltrue([for t in var.instance_types : can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", t))])
    error_message = "instance_types must list at least one instance type, like m7i.2xlarge."
  }
}

variable "subnet_ids" {
  description = "Private subnets to run in, tried in order when AWS has no capacity. The first hosts the reusable instance."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) > 0 && alltrue([for s in var.subnet_ids : can(regex("^subnet-[0-9a-f]{8,17}$", s))])
    error_message = "subnet_ids must list at least one subnet id (subnet-...)."
  }
}

variable "limits" {
  description = "Container limits: memory_mb, cpus, shm_size_mb."
  type = object({
    memory_mb   = optional(number)
    cpus        = optional(number)
    shm_size_mb = optional(number)
  })
  default = {}
}

variable "root_volume_size_gb" {
  description = "Size of the instance's encrypted gp3 root volume (the image cache lives there)."
  type        = number
  default     = 30

  validation {
    condition     = var.root_volume_size_gb >= 8 && var.root_volume_size_gb <= 16384
    error_message = "root_volume_size_gb must be from 8 to 16384."
  }
}

################################################################################
# Image
################################################################################

variable "ami_id" {
  description = "AMI to run. Null: the newest AMI that `make ami` built (tag ec2batch:image = instance) in this account."
  type        = string
  default     = null

  validation {
    condition     = var.ami_id == null || can(regex("^ami-[0-9a-f]{8,17}$", var.ami_id))
    error_message = "ami_id must be an AMI id (ami-...) or null."
  }
}

################################################################################
# Schedule
################################################################################

variable "schedule_expression" {
  description = "When the job runs: cron(min hour day-of-month month day-of-week year), rate(...) or at(...). Null: no schedule (run-now only)."
  type        = string
  default     = "cron(0 2 * * ? *)"

  validation {
    condition     = var.schedule_expression == null || can(regex("^(cron\\(([^ ]+ ){5}[^ ]+\\)|rate\\([1-9][0-9]* (minute|minutes|hour|hours|day|days)\\)|at\\([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\))$", var.schedule_expression))
    error_message = "schedule_expression must be cron(6 fields), rate(N unit) or at(yyyy-mm-ddThh:mm:ss); check it with `ec2batch next -e EXPR`."
  }
}

variable "schedule_timezone" {
  description = "IANA time zone of the schedule (daylight saving handled by EventBridge Scheduler)."
  type        = string
  default     = "UTC"

  validation {
    condition     = can(regex("^(UTC|[A-Z][A-Za-z_+-]+(/[A-Za-z0-9_+-]+){1,2})$", var.schedule_timezone))
    error_message = "schedule_timezone must be an IANA time zone name such as Europe/Berlin or UTC."
  }
}

variable "planner_enabled" {
  description = "Run the 15-minute planner for exact-time runs (`ec2batch run-at`) and external run deadlines."
  type        = bool
  default     = true
}

################################################################################
# Notifications, logs, tags
################################################################################

variable "notify_on" {
  description = "Run statuses that publish to the job's SNS topic."
  type        = list(string)
  default     = ["FAILED", "TIMED_OUT"]

  validation {
    condition     = alltrue([for s in var.notify_on : contains(["SUCCEEDED", "FAILED", "TIMED_OUT", "SKIPPED"], s)])
    error_message = "notify_on may contain SUCCEEDED, FAILED, TIMED_OUT and SKIPPED."
  }
}

variable "notification_email" {
  description = "Optional e-mail address subscribed to the job's topic (AWS sends a confirmation mail)."
  type        = string
  default     = null
}

variable "log_retention_days" {
  description = "Retention of the job's and the launcher's CloudWatch log groups."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, ..., 365, ..., 3653)."
  }
}

variable "kms_key_arn" {
  description = "Customer managed KMS key for the logs, the ledger, the config, the topic, the queues, the schedules and the EBS volumes; its key policy must allow what the module README lists. Null: AWS managed keys, and a key this module creates for the topic (CloudWatch alarms cannot publish to a topic under the AWS managed key)."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[0-9a-f-]+$", var.kms_key_arn))
    error_message = "kms_key_arn must be a key ARN (arn:aws:kms:<region>:<account>:key/<id>), not an alias: IAM policies name the key."
  }
}

variable "ecr_image_tag_mutability" {
  description = "IMMUTABLE (recommended) or MUTABLE tags in the job's ECR repository."
  type        = string
  default     = "IMMUTABLE"

  validation {
    condition     = contains(["IMMUTABLE", "MUTABLE"], var.ecr_image_tag_mutability)
    error_message = "ecr_image_tag_mutability must be IMMUTABLE or MUTABLE."
  }
}

variable "ecr_keep_images" {
  description = "How many images the ECR lifecycle policy keeps."
  type        = number
  default     = 30

  validation {
    condition     = var.ecr_keep_images >= 1 && var.ecr_keep_images <= 1000
    error_message = "ecr_keep_images must be from 1 to 1000."
  }
}

variable "launcher_zip" {
  description = "Path of the launcher Lambda's zip (`make lambda-zip` writes dist/launcher.zip)."
  type        = string
}

variable "launcher_reserved_concurrency" {
  description = "Opt-in reserved concurrency of the launcher (null: none). A reservation must leave 10 unreserved in the account: new accounts often have a quota of only 10, where any reservation is refused. Not needed as a cap: a run starts at most one machine whatever the concurrency."
  type        = number
  default     = null

  validation {
    # At least 4: the timer queue's event source mapping takes half (its maximum_concurrency is at least 2).
    condition     = var.launcher_reserved_concurrency == null || try(var.launcher_reserved_concurrency >= 4 && var.launcher_reserved_concurrency <= 100 && floor(var.launcher_reserved_concurrency) == var.launcher_reserved_concurrency, false)
    error_message = "launcher_reserved_concurrency must be null or a whole number from 4 to 100."
  }
}

variable "egress" {
  description = "Outbound rules of the job's security group (there is never any inbound rule). Default: HTTPS anywhere, which ECR, S3, SSM, DynamoDB, Logs and SNS need (through NAT or VPC endpoints); add what the job itself talks to, e.g. a database. DNS (the VPC resolver) and NTP (169.254.169.123) are not filtered by security groups."
  type = list(object({
    description       = string
    protocol          = string # tcp, udp, icmp or -1 (all)
    from_port         = optional(number)
    to_port           = optional(number)
    cidr_ipv4         = optional(string)
    cidr_ipv6         = optional(string)
    prefix_list_id    = optional(string)
    security_group_id = optional(string)
  }))
  default = [
    { description = "HTTPS to AWS APIs and ECR (through NAT or VPC endpoints)", protocol = "tcp", from_port = 443, to_port = 443, cidr_ipv4 = "0.0.0.0/0" },
  ]

  validation {
    condition     = length(var.egress) > 0 && length(distinct([for r in var.egress : r.description])) == length(var.egress)
    error_message = "egress must list at least one rule (the agent needs HTTPS to the AWS APIs), each with a unique description."
  }

  validation {
    condition     = alltrue([for r in var.egress : contains(["tcp", "udp", "icmp", "-1"], r.protocol)])
    error_message = "egress[*].protocol must be tcp, udp, icmp or -1 (all)."
  }

  validation {
    condition     = alltrue([for r in var.egress : r.protocol == "-1" || (r.from_port != null && r.to_port != null && try(r.from_port >= (r.protocol == "icmp" ? -1 : 0) && r.from_port <= r.to_port && r.to_port <= 65535, false))])
    error_message = "egress[*] needs from_port <= to_port within 0-65535 (icmp: type and code, -1 for all) unless protocol is -1."
  }

  validation {
    condition     = alltrue([for r in var.egress : length([for d in [r.cidr_ipv4, r.cidr_ipv6, r.prefix_list_id, r.security_group_id] : d if d != null]) == 1])
    error_message = "egress[*] must name exactly one destination: cidr_ipv4, cidr_ipv6, prefix_list_id or security_group_id."
  }

  validation {
    condition     = alltrue([for r in var.egress : (r.cidr_ipv4 == null || can(cidrhost(r.cidr_ipv4, 0))) && (r.cidr_ipv6 == null || can(cidrhost(r.cidr_ipv6, 0)))])
    error_message = "egress[*].cidr_ipv4 / cidr_ipv6 must be CIDR blocks, like 10.0.0.0/16."
  }
}

variable "job_policy_json" {
  description = "IAM policy (JSON) of the job's own role ec2batch-<job>-job, what the job's code may do in AWS (read S3, write a table). Null: none. The job never gets the machine's role."
  type        = string
  default     = null

  validation {
    condition     = var.job_policy_json == null || can(jsondecode(var.job_policy_json).Statement)
    error_message = "job_policy_json must be a JSON IAM policy document with a Statement (aws_iam_policy_document.json, or jsonencode({...}))."
  }
}

variable "job_policy_arns" {
  description = "ARNs of managed IAM policies attached to the job's own role. Default: none."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.job_policy_arns : can(regex("^arn:aws[a-z-]*:iam::([0-9]{12}|aws):policy/.+$", arn))])
    error_message = "job_policy_arns must be IAM policy ARNs (arn:aws:iam::<account>:policy/<name> or arn:aws:iam::aws:policy/<name>)."
  }
}

variable "tags" {
  description = "Tags added to every resource (ec2batch:job is always added)."
  type        = map(string)
  default     = {}
}

variable "after" {
  description = "The jobs this one runs after (docs/events.md): each { job, status } with status SUCCEEDED (default), FAILED, TIMED_OUT or CANCELLED. With several, it runs once each has a matching run since its own last such run. At most 5; an unknown job or a cycle across jobs is refused by `ec2batch graph` (this module sees only its own job). Default: none."
  type = list(object({
    job    = string
    status = optional(string, "SUCCEEDED")
  }))
  default  = []
  nullable = false

  validation {
    condition     = length(var.after) <= 5
    error_message = "after may list at most 5 jobs."
  }

  validation {
    condition     = alltrue([for a in var.after : can(regex("^[a-z][a-z0-9-]{1,30}$", a.job))])
    error_message = "after[*].job must be job names (lowercase letters, digits and '-', 2 to 31 characters, starting with a letter)."
  }

  validation {
    condition     = alltrue([for a in var.after : a.job != var.job_name])
    error_message = "after must not list the job itself: a job cannot run after itself."
  }

  validation {
    condition     = length(distinct([for a in var.after : a.job])) == length(var.after)
    error_message = "after must list each job once."
  }

  validation {
    condition     = alltrue([for a in var.after : contains(["SUCCEEDED", "FAILED", "TIMED_OUT", "CANCELLED"], a.status)])
    error_message = "after[*].status must be SUCCEEDED, FAILED, TIMED_OUT or CANCELLED."
  }
}

variable "event_bus_name" {
  description = "The EventBridge bus the launcher publishes the job's run state change events to (from the ledger's stream), and its after rule listens on (docs/events.md). Default: the account's default bus."
  type        = string
  default     = "default"
  nullable    = false

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]{1,256}$", var.event_bus_name))
    error_message = "event_bus_name must be an event bus name (letters, digits, '.', '-', '_'; 1 to 256 characters)."
  }
}

variable "memory_alarm_threshold_percent" {
  description = "The memory alarm fires when a run's peak memory exceeds this share (%) of its machine's memory, or of limits.memory_mb when set; its notification names an instance type that would fit."
  type        = number
  default     = 85

  validation {
    condition     = var.memory_alarm_threshold_percent > 0 && var.memory_alarm_threshold_percent <= 100
    error_message = "memory_alarm_threshold_percent must be more than 0 and at most 100."
  }
}
