"""Resource and data source handlers of the provider double; importing the package fills both registries."""

from __future__ import annotations

from tests.terraform.provider.resources import dynamodb, ecr, kms, logs, sns, sqs, ssm  # noqa: F401  (each module registers its handlers)
from tests.terraform.provider.resources.base import DATA_SOURCES, RESOURCES

__all__ = ["DATA_SOURCES", "RESOURCES"]
