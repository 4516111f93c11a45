"""Resource and data source handlers of the provider double; importing the package fills both registries."""

from __future__ import annotations

from tests.terraform.provider.resources import (  # noqa: F401  (each module registers its handlers)
    batch,
    cloudwatch,
    data,
    dynamodb,
    ec2,
    ec2_launch_template,
    ec2_network,
    ecr,
    events,
    iam,
    kms,
    lambda_,
    logs,
    scheduler,
    sns,
    sqs,
    ssm,
)
from tests.terraform.provider.resources.base import DATA_SOURCES, RESOURCES

__all__ = ["DATA_SOURCES", "RESOURCES"]
