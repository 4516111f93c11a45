################################################################################
# Image
################################################################################

data "aws_ami" "ec2batch" {
  count = var.ami_id == null ? 1 : 0

  most_recent = true
  owners      = ["self"]

  filter {
    name   = "tag:ec2batch:image"
    values = ["instance"]
  }
}

locals {
  ami_id = var.ami_id != null ? var.ami_id : data.aws_ami.ec2batch[0].id
}

################################################################################
# Network: no ingress at all; egress HTTPS for ECR, S3 (image layers), SSM, DynamoDB, Logs, SNS
################################################################################

data "aws_subnet" "first" {
  id = var.subnet_ids[0]
}

resource "aws_security_group" "this" {
  name        = local.names.security_group
  description = "ec2batch ${var.job_name} instances: no ingress; HTTPS out to the AWS APIs and ECR"
  vpc_id      = data.aws_subnet.first.vpc_id
  tags        = local.tags
}

resource "aws_vpc_security_group_egress_rule" "https" {
  security_group_id = aws_security_group.this.id
  description       = "HTTPS to AWS APIs and ECR (through NAT or VPC endpoints)"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0" # AWS API endpoints have no fixed ranges; use VPC endpoints to narrow it
  tags              = local.tags
}

################################################################################
# Launch template
################################################################################

resource "aws_launch_template" "this" {
  name        = local.names.launch_template
  description = "ec2batch ${var.job_name}: the job's machine"

  image_id                             = local.ami_id
  instance_type                        = var.instance_types[0]
  instance_initiated_shutdown_behavior = var.strategy == "ephemeral" ? "terminate" : "stop"
  ebs_optimized                        = true
  update_default_version               = true

  iam_instance_profile {
    arn = aws_iam_instance_profile.instance.arn
  }

  # IMDSv2 only, one hop: the job's containers cannot reach the instance role's credentials.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "enabled"
  }

  # Security groups at the top level, not in a network_interfaces block: the launcher picks the subnet per
  # attempt (capacity fallback), and AWS refuses a request-level SubnetId with a template that has network
  # interfaces ("InvalidParameterCombination"). No public IP comes from using private subnets (see README).
  vpc_security_group_ids = [aws_security_group.this.id]

  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      volume_size           = var.root_volume_size_gb
      volume_type           = "gp3"
      encrypted             = true
      kms_key_id            = var.kms_key_arn
      delete_on_termination = true
    }
  }

  monitoring {
    enabled = true
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(local.tags, { Name = local.base })
  }

  tag_specifications {
    resource_type = "volume"
    tags          = local.tags
  }

  tags = local.tags
}

################################################################################
# The reusable instance (strategy = reuse): created, then left stopped until the first run
################################################################################

resource "aws_instance" "reusable" {
  count = var.strategy == "reuse" ? 1 : 0

  launch_template {
    id      = aws_launch_template.this.id
    version = aws_launch_template.this.latest_version
  }
  subnet_id                   = var.subnet_ids[0]
  associate_public_ip_address = false

  # The template sets all of these; repeating them here keeps them if the template is ever changed by hand,
  # and lets static checks (checkov does not follow launch templates) see them.
  iam_instance_profile = aws_iam_instance_profile.instance.name
  ebs_optimized        = true
  monitoring           = true

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "enabled"
  }

  root_block_device {
    volume_size           = var.root_volume_size_gb
    volume_type           = "gp3"
    encrypted             = true
    kms_key_id            = var.kms_key_arn
    delete_on_termination = true
  }

  # At first boot no run waits for it: the agent records a `boot` run (SKIPPED) and powers off.
  tags = merge(local.tags, { Name = local.base, "ec2batch:lifecycle" = "reuse" })

  lifecycle {
    # The launcher rewrites ec2batch:run-id on every run.
    ignore_changes = [tags["ec2batch:run-id"], tags_all["ec2batch:run-id"]]
  }
}

resource "aws_ec2_instance_state" "reusable" {
  count = var.strategy == "reuse" ? 1 : 0

  instance_id = aws_instance.reusable[0].id
  state       = "stopped"

  lifecycle {
    ignore_changes = [state] # the launcher starts it for every run
  }
}
