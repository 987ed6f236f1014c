"""Every test suite runs the services in development mode unless a test says otherwise.

Services default to MODELYARD_ENV=prod (which refuses development secrets and HS256 tokens);
tests use development secrets, so they set dev explicitly here, for in-process apps and for the
subprocesses they start with this environment.

Services also default to the policy gate `enforce` (nothing unapproved is deployed or served).
Tests of other features deploy models nobody reviewed, so workspaces without a chosen gate are
`off` here; the gate's own tests choose `enforce` or `warn` per workspace (`PUT /v1/policy`),
and the compose suite (README walkthrough) runs with the real default.
"""

import os

os.environ["MODELYARD_ENV"] = "dev"
os.environ.setdefault("MODELYARD_POLICY_DEFAULT_GATE", "off")
