"""`python -m modelyard_gateway` is `modelyard-gateway`."""

from modelyard_gateway.cli import main

main()
