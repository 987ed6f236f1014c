"""Commands for this device (deploy, start, stop, restart, remove) from its broker queue."""
