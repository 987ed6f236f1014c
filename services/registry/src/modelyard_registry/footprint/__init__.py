"""Where each model runs now, and where it ran when: fed by the deployer's events."""
