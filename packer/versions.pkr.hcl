# Plugin requirements for current Packer (`packer init packer/`), read when building the folder.
# Debian's Packer 1.6.6 (the local stack) builds ec2batch.pkr.hcl on its own and never reads this
# file: it predates `required_plugins` and would refuse the block.
packer {
  required_version = ">= 1.6.6"
  required_plugins {
    amazon = {
      source  = "github.com/hashicorp/amazon"
      version = ">= 1.2.0"
    }
    docker = {
      source  = "github.com/hashicorp/docker"
      version = ">= 1.0.8"
    }
  }
}
