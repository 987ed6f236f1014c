"""The EU AI Act obligations of a system, derived from its risk level and role."""
