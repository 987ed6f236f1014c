"""What the device tells the deployer: deployment state reports and heartbeats, via an outbox."""
