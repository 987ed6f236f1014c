"""Artifact store: where version zips live. A local directory by default, or an S3 bucket.

Writes are staged: bytes go to a temporary object that becomes visible under its final key only
on `commit`, and `discard` removes it, so a failed or rejected upload leaves nothing behind.
What a crashed replica leaves half-written (staging files, unfinished multipart uploads) is
removed by `sweep` once it is older than the staging age limit.

Every replica of the deployer must see the same artifacts: either each mounts the same volume
(the local store: staging lives under the same root, so `commit` is one atomic rename on one
filesystem) or all use the same bucket (the S3 store: an object appears only when its multipart
upload completes).
"""

from __future__ import annotations

from modelyard_deployer.artifacts.local import LocalArtifactStore, LocalStagedArtifact
from modelyard_deployer.artifacts.s3 import MIN_PART_BYTES, S3ArtifactStore, S3StagedArtifact
from modelyard_deployer.artifacts.store import READ_CHUNK, ArtifactStore, StagedArtifact
from modelyard_deployer.settings import DeployerSettings

__all__ = [
    "MIN_PART_BYTES",
    "READ_CHUNK",
    "ArtifactStore",
    "LocalArtifactStore",
    "LocalStagedArtifact",
    "S3ArtifactStore",
    "S3StagedArtifact",
    "StagedArtifact",
    "build_store",
]


def build_store(settings: DeployerSettings) -> ArtifactStore:
    """Return the artifact store the settings choose."""
    if settings.artifact_backend == "s3":
        secret = settings.s3_secret_access_key
        return S3ArtifactStore(
            bucket=settings.s3_bucket,
            prefix=settings.s3_prefix,
            spool_dir=settings.artifact_dir,
            part_bytes=settings.s3_part_bytes,
            parts_in_flight=settings.s3_parts_in_flight,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=secret.get_secret_value() if secret else None,
        )
    return LocalArtifactStore(settings.artifact_dir)
