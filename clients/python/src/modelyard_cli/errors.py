"""Which failure gets which exit code, and the one line printed for it."""

from __future__ import annotations


def exit_code_of(exc: Exception) -> tuple[int | None, str]:
    """Return (exit code, message) for a failure the CLI reports; (None, '') for a bug."""
    from modelyard_cli.config import UsageProblem

    if isinstance(exc, UsageProblem):
        return 2, f"error: {exc}"
    # Only now the SDK: a usage problem must not pay for importing httpx.
    from modelyard_cli import oidc
    from modelyard_cli.deployer import DeployFailed, NoTargets
    from modelyard_cli.registry import ConflictReported
    from modelyard_cli.rollouts import RolloutAborted
    from modelyard_cli.session import NameNotFound
    from modelyard_client import ApiError, ModelyardError, TransportError, UnauthorizedError

    if isinstance(exc, UnauthorizedError):
        return 1, f"error: {exc.one_line()} (log in with `modelyard login`)"
    if isinstance(exc, ApiError):
        return 1, f"error: {exc.one_line()}"
    if isinstance(exc, TransportError):
        return 1, f"error: cannot reach {exc.url}: is the service up? ({exc})"
    if isinstance(exc, ModelyardError | oidc.LoginFailed):
        return 1, f"error: {exc}"
    if isinstance(exc, DeployFailed | NoTargets | ConflictReported | NameNotFound | RolloutAborted):
        return 1, f"error: {exc}"
    if isinstance(exc, OSError):
        return 1, f"error: {exc}"
    return None, ""
