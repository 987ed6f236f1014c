"""The policy gate in the gateway, in one place: binding groups and serving registry models.

The rules, the projection and the registry confirmation are `modelyard_common.governance`'s;
this package is where the gateway applies them: `projection` (the gateway's tables and its
request dependencies), `binding` (may a group be bound to a model: admin writes), `serving` and
`served` (may an instance's model be served in a group: the routing catalog), `consumer` (the
registry's approval and policy events into the projection).
"""
