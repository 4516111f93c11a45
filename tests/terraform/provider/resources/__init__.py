"""Resource and data source handlers of the provider double; importing the package fills both registries."""

from __future__ import annotations

from tests.terraform.provider.resources.base import DATA_SOURCES, RESOURCES

__all__ = ["DATA_SOURCES", "RESOURCES"]
