"""What AI models and AI systems share, written once: lookup, names, lists, CRUD, routes."""
