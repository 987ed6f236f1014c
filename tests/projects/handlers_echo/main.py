"""A handlers-protocol project: each function listed in the manifest becomes `POST /<name>`."""


def predict(payload):
    """Return a verdict on the record and the fields it looked at."""
    amount = float(payload.get("amount", 0))
    return {"fraud": amount > 1000, "fields": sorted(payload)}


def fail(payload):
    """Raise, to show how a handler's exception reaches the caller."""
    raise ValueError(f"cannot score {payload!r}")
