"""Model instances: the backends the gateway sends requests to."""
