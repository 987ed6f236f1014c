"""Modelyard deployer: model versions, devices, deployments and their history."""

__version__ = "0.1.0"
