"""Every test suite runs the services in development mode unless a test says otherwise.

Services default to MODELYARD_ENV=prod (which refuses development secrets and HS256 tokens);
tests use development secrets, so they set dev explicitly here, for in-process apps and for the
subprocesses they start with this environment.
"""

import os

os.environ["MODELYARD_ENV"] = "dev"
