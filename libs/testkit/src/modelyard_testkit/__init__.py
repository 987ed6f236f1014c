"""Test support for the Modelyard suites: databases, vhosts, tokens, private servers, fake devices.

Installed in the development venv only (`make install`); no service depends on it and no image
ships it.
"""
