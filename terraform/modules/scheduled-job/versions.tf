terraform {
  required_version = ">= 1.9" # cross-variable validation (market, retry.market and strategy)

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 6.0: data.aws_region's `region` attribute (`name` is deprecated); every other argument used is older.
      # A new major version may rename or drop arguments: take it on purpose, not by `terraform init -upgrade`.
      version = ">= 6.0, < 7.0"
    }
  }
}
