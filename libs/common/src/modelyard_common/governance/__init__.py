"""The policy gate: what registry approvals allow the deployer to ship and the gateway to serve.

The registry decides (a model's `approval`, a workspace's `gate`); the deployer and the gateway
enforce, each from its own projection of `registry.model.*` and `registry.policy.*` events, so
the gate holds while the registry is down. Both projections are the tables of `projection`,
migrated by each service (`governance_ddl`), and both judge with the functions of `rules`;
`confirmation` is the one way both ask the registry when the projection is silent or refuses.

Gates, per workspace:
- `enforce`: refuse what the approval does not allow (deploy, start, bind, serve);
- `warn`: allow it, and say so on every step (responses, history, logs);
- `off`: the approval is recorded and shown, nothing is checked.

A workspace that never chose a gate gets the service's `policy_default_gate` (`enforce` unless
configured; every service of one installation must agree).

Each enforcing service keeps its own use of these in its `governance/` package.
"""

# Each module's `__all__` names what the package offers.
from modelyard_common.governance.confirmation import *  # noqa: F403
from modelyard_common.governance.projection import *  # noqa: F403
from modelyard_common.governance.rules import *  # noqa: F403
