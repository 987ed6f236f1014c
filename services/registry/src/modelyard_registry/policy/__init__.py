"""The workspace's policy gate: how approvals govern deploying and serving."""
