"""Shared building blocks of the Modelyard services."""
