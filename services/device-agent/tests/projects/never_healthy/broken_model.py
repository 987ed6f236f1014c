"""A project that can never become healthy: it fails while loading its model."""

raise RuntimeError("model weights missing: weights.bin not found")
