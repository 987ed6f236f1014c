"""The request log: one record per client request, kept for the configured retention."""
