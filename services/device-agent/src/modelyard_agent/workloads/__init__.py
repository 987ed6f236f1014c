"""What runs on the device, brought in line with the desired state, one deployment at a time."""
