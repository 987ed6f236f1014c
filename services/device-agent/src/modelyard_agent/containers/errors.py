"""Docker failures, each with a message fit for a deployment report."""

from __future__ import annotations

import docker.errors


class DockerError(RuntimeError):
    """A Docker operation failed; the message is fit for a deployment report."""


class NetworkPoolExhaustedError(DockerError):
    """The engine has no free address range left for another deployment network."""


class BuildFailedError(DockerError):
    """`docker build` of a project failed; `log_tail` holds the end of the build output."""

    def __init__(self, message: str, log_tail: list[str]) -> None:
        super().__init__(message)
        self.log_tail = log_tail


def explain(exc: docker.errors.APIError) -> str:
    """Return the engine's own words for a failed call."""
    return str(exc.explanation or exc)
