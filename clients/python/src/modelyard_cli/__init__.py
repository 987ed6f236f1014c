"""`modelyard`: the command line of Modelyard, built on the `modelyard_client` SDK."""
