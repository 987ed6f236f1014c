"""The audit trail of admin changes: who changed which field of a resource, when, old -> new."""
