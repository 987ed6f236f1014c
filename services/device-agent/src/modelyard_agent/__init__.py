"""Modelyard device agent: runs zipped AI projects in Docker containers and keeps them running."""

__version__ = "0.1.0"
