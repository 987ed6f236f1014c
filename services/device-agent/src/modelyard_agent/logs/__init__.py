"""Container logs asked for by the deployer, read from Docker and answered in chunks."""
