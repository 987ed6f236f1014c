"""Groups bound to a registry model follow the deployer's endpoint events."""
