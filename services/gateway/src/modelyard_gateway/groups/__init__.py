"""Model groups: the names clients send as `model`, each an ordered list of instances."""
