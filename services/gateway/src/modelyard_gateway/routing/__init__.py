"""What every gateway replica keeps in memory: routing config, shared health, upstream client."""
