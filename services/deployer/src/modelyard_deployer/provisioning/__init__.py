"""Provisioning tokens: onboard a device in one command."""
