"""How the agent sorts failures: worth retrying later, or not fixable by retrying."""

from __future__ import annotations


class PermanentError(Exception):
    """A failure that retrying the same command cannot fix (bad zip, wrong checksum, ...).

    `log_tail` carries lines worth showing next to the message (build output, container logs).
    """

    def __init__(self, message: str, log_tail: list[str] | None = None) -> None:
        super().__init__(message)
        self.log_tail = log_tail or []


class TransientError(Exception):
    """A failure worth retrying later (network, full disk, Docker hiccup)."""
