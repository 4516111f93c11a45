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
# Network: no ingress at all; egress as `var.egress` says (default: HTTPS for ECR, S3, SSM, DynamoDB, Logs, SNS)
################################################################################

data "aws_subnet" "first" {
  id = var.subnet_ids[0]
}

resource "aws_security_group" "this" {
  name        = local.names.security_group
  description = "ec2batch ${var.job_name} instances: no ingress; egress as configured (var.egress)"
  vpc_id      = data.aws_subnet.first.vpc_id
  tags        = local.tags
}

resource "aws_vpc_security_group_egress_rule" "this" {
  # Keyed by description (validated unique), so reordering var.egress replaces nothing.
  for_each = { for rule in var.egress : rule.description => rule }

  security_group_id            = aws_security_group.this.id
  description                  = each.value.description
  ip_protocol                  = each.value.protocol
  from_port                    = each.value.protocol == "-1" ? null : each.value.from_port
  to_port                      = each.value.protocol == "-1" ? null : each.value.to_port
  cidr_ipv4                    = each.value.cidr_ipv4
  cidr_ipv6                    = each.value.cidr_ipv6
  prefix_list_id               = each.value.prefix_list_id
  referenced_security_group_id = each.value.security_group_id
  tags                         = local.tags
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

  # IMDSv2 only, one hop: the job's containers cannot reach the instance role's credentials. Tags are not
  # exposed in metadata: the agent reads them with ec2:DescribeTags, and instance_metadata_tags = "enabled"
  # makes AWS refuse tag keys with '/' or spaces (var.tags are the user's).
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
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
  # subnet_id alone: the provider then sends a request-level SubnetId. Setting associate_public_ip_address (even
  # to false) makes it send a network interface instead, which AWS refuses next to the template's security
  # groups (InvalidParameterCombination). No public IP comes from private subnets (see README).
  subnet_id = var.subnet_ids[0]

  # The template sets all of these; repeating them here keeps them if the template is ever changed by hand,
  # and lets static checks (checkov does not follow launch templates) see them.
  iam_instance_profile = aws_iam_instance_profile.instance.name
  ebs_optimized        = true
  monitoring           = true

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
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
