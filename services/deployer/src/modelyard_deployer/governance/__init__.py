"""The policy gate's one address in the deployer: what the registry says about models.

`models` keeps the projection of registry models (exists, archived, deleted, name) and says
which ones a caller may see or extend; `service` judges deployments under the workspace's gate
(the shared `modelyard_common.governance` rules, confirmed with the registry through the one
`RegistryConfirmation`) and applies registry events to both projections; `repository` holds
their SQL and the advisory locks that order judgements against changes.
"""
