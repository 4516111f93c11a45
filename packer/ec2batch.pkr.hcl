# The ec2batch instance image: one set of provisioners, two sources.
#   amazon-ebs.instance : the AMI for AWS (`make ami`, modern Packer; plugins in versions.pkr.hcl)
#   docker.instance     : the local stack's "instance" (`make instance-image`, Debian's Packer 1.6.6)
# Both run the same scripts from bootstrap/provisioners, so the local instance is the AMI's twin.

variable "agent_version" {
  type        = string
  description = "Version of the ec2batch wheel being installed; tagged on the image."
}

variable "wheels_dir" {
  type        = string
  description = "Folder with the ec2batch wheel and its dependencies (`make wheels` fills dist/wheels)."
  default     = "../dist/wheels"
}

variable "region" {
  type        = string
  description = "AWS region to build the AMI in."
  default     = "eu-central-1"
}

variable "build_instance_type" {
  type        = string
  description = "Instance type of the temporary build instance."
  default     = "t3.small"
}

variable "subnet_id" {
  type        = string
  description = "Subnet for the build instance (empty: the default VPC)."
  default     = ""
}

variable "docker_base_image" {
  type        = string
  description = "Local base image for the docker source (made by `ec2batch local up` with debootstrap)."
  default     = "ec2batch-local/debian:bookworm"
}

variable "docker_image_repository" {
  type        = string
  description = "Repository name of the local instance image."
  default     = "ec2batch-local/instance"
}

variable "docker_image_tag" {
  type        = string
  description = "Tag of the local instance image (the local stack uses a hash of the inputs, to cache it)."
  default     = "latest"
}

locals {
  timestamp = formatdate("YYYYMMDD-hhmmss", timestamp())
  image_tags = {
    "ec2batch:image"         = "instance"
    "ec2batch:agent-version" = var.agent_version
  }
  rootfs_dir = "${path.root}/../bootstrap/rootfs"
  scripts    = "${path.root}/../bootstrap/provisioners"
}

source "amazon-ebs" "instance" {
  region        = var.region
  instance_type = var.build_instance_type
  subnet_id     = var.subnet_id
  ssh_username  = "ec2-user"
  ami_name      = "ec2batch-instance-${var.agent_version}-${local.timestamp}"

  source_ami_filter {
    filters = {
      name                = "al2023-ami-2023.*-x86_64"
      architecture        = "x86_64"
      root-device-type    = "ebs"
      virtualization-type = "hvm"
    }
    owners      = ["amazon"]
    most_recent = true
  }

  launch_block_device_mappings {
    device_name           = "/dev/xvda"
    volume_size           = 30
    volume_type           = "gp3"
    encrypted             = true
    delete_on_termination = true
  }

  # IMDSv2 only, one hop: a container on the instance cannot reach the instance's credentials.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }
  imds_support = "v2.0"

  tags = merge(local.image_tags, {
    "Name"                 = "ec2batch-instance-${var.agent_version}"
    "ec2batch:source-ami"  = "{{ .SourceAMI }}"
    "ec2batch:source-name" = "{{ .SourceAMIName }}"
  })
  run_tags = { "Name" = "ec2batch-ami-build" }
}

source "docker" "instance" {
  image  = var.docker_base_image
  pull   = false # built locally with debootstrap: there is no hub to pull from
  commit = true
  # Host network: the engine has no bridge, and nothing may leave loopback.
  run_command = ["-d", "-i", "-t", "--network=host", "--entrypoint=/bin/sh", "--", "{{.Image}}"]
  # Docker 20.10 refuses STOPSIGNAL in a commit's changes: the local stack passes --stop-signal
  # SIGRTMIN+3 (systemd's "halt") when it runs the image instead.
  changes = [
    "ENTRYPOINT [\"/sbin/init\"]",
    "CMD []",
    "ENV container=docker",
    "LABEL ec2batch.image=instance ec2batch.agent-version=${var.agent_version}",
  ]
}

build {
  sources = ["source.amazon-ebs.instance", "source.docker.instance"]

  provisioner "shell" {
    inline = ["mkdir -p /tmp/ec2batch/wheels /tmp/ec2batch/rootfs /tmp/ec2batch/provisioners"]
  }

  provisioner "file" {
    source      = "${var.wheels_dir}/"
    destination = "/tmp/ec2batch/wheels"
  }

  provisioner "file" {
    source      = "${local.rootfs_dir}/"
    destination = "/tmp/ec2batch/rootfs"
  }

  # The same scripts for both sources, in two blocks: amazon-ebs connects as ec2-user and needs sudo, the
  # docker source is root and uses the host's engine. (Packer 1.6.6 accepts a provisioner `override` but
  # does not apply it: tried, the docker build then ran `sudo`.)
  provisioner "shell" {
    # amazon-ebs connects as ec2-user: the scripts need root there (the docker source already is).
    execute_command = "chmod +x {{ .Path }}; {{ .Vars }} sudo -E bash '{{ .Path }}'"
    environment_vars = [
      "EC2BATCH_WHEELS=/tmp/ec2batch/wheels",
      "EC2BATCH_ROOTFS=/tmp/ec2batch/rootfs",
    ]
    scripts = ["${local.scripts}/install-container-engine.sh", "${local.scripts}/install-agent.sh", "${local.scripts}/install-units.sh", "${local.scripts}/install-job-network.sh"]
    only    = ["amazon-ebs.instance"]
  }

  provisioner "shell" {
    execute_command = "chmod +x {{ .Path }}; {{ .Vars }} bash '{{ .Path }}'"
    environment_vars = [
      "EC2BATCH_WHEELS=/tmp/ec2batch/wheels",
      "EC2BATCH_ROOTFS=/tmp/ec2batch/rootfs",
      "EC2BATCH_CONTAINER_ENGINE=host",
    ]
    scripts = ["${local.scripts}/install-container-engine.sh", "${local.scripts}/install-agent.sh", "${local.scripts}/install-units.sh", "${local.scripts}/install-job-network.sh"]
    only    = ["docker.instance"]
  }

  provisioner "shell" {
    execute_command  = "chmod +x {{ .Path }}; {{ .Vars }} sudo -E bash '{{ .Path }}'"
    environment_vars = []
    scripts          = ["${local.scripts}/cleanup.sh", "${local.scripts}/validate.sh"]
    only             = ["amazon-ebs.instance"]
  }

  provisioner "shell" {
    execute_command  = "chmod +x {{ .Path }}; {{ .Vars }} bash '{{ .Path }}'"
    environment_vars = ["EC2BATCH_CONTAINER_ENGINE=host"]
    scripts          = ["${local.scripts}/cleanup.sh", "${local.scripts}/validate.sh"]
    only             = ["docker.instance"]
  }

  post-processor "docker-tag" {
    repository = var.docker_image_repository
    tags       = [var.docker_image_tag]
    only       = ["docker.instance"]
  }

  # The AMI id, for whoever deploys next (`make ami` creates dist/). The local image is found by its tag.
  post-processor "manifest" {
    output     = "${path.root}/../dist/packer-manifest.json"
    strip_path = true
    only       = ["amazon-ebs.instance"]
  }
}
