"""The local API: the models running on this device, listed and called by name at stable URLs."""
