"""The agent's durable memory: one JSON file per deployment in the data directory.

A record holds the last accepted `DeviceCommand` (the desired state) and what the agent knows of
the deployment's actual state. Every write is atomic (temp file, fsync, rename, fsync of the
directory), so a power cut leaves either the old or the new record, never half of one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from pathlib import Path
from uuid import UUID

from pydantic import BaseModel

from modelyard_common.contracts import DeploymentState, DesiredState, DeviceCommand, VersionSpec

log = logging.getLogger("modelyard.agent.store")


class DeploymentRecord(BaseModel):
    """Desired state of one deployment plus the agent's own facts about it."""

    command: DeviceCommand
    state: DeploymentState = DeploymentState.pending
    message: str = ""
    # Last report sequence used; grows across agent restarts because it is persisted.
    sequence: int = 0
    # Generation whose one-shot action (e.g. restart) has been carried out.
    applied_generation: int = 0
    # Generation that failed permanently: not retried until a newer command arrives.
    failed_generation: int | None = None
    # The version currently serving (possibly older than the desired one after a rollback).
    active_version: VersionSpec | None = None
    host_port: int | None = None

    @property
    def deployment_id(self) -> UUID:
        """Return the id of the deployment."""
        return self.command.deployment_id

    @property
    def is_tombstone(self) -> bool:
        """Return whether the deployment was removed (kept only to refuse stale commands)."""
        return (
            self.command.desired_state is DesiredState.removed
            and self.state is DeploymentState.removed
        )


def write_atomically(path: Path, payload: bytes) -> None:
    """Replace `path` with `payload` so a crash leaves either the old or the new content."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class DesiredStateStore:
    """Deployment records on disk, cached in memory; the files are the source of truth."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._records: dict[UUID, DeploymentRecord] = {}
        self._accept_lock = asyncio.Lock()
        # Saves of one record may be requested back to back; writing them one at a time keeps
        # an older snapshot from landing after a newer one.
        self._write_lock = asyncio.Lock()

    def load(self) -> None:
        """Read every record from disk (called once at start, off the event loop)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for leftover in self.directory.glob(".*.json.*"):
            leftover.unlink(missing_ok=True)  # temp file of a write cut short
        for path in sorted(self.directory.glob("*.json")):
            try:
                record = DeploymentRecord.model_validate_json(path.read_bytes())
            except ValueError:
                # Keep the agent starting; the file is kept aside for a person to look at.
                log.exception("unreadable desired state %s; moved aside", path.name)
                path.rename(path.with_suffix(".corrupt"))
                continue
            self._records[record.deployment_id] = record

    def get(self, deployment_id: UUID) -> DeploymentRecord | None:
        """Return the record of a deployment, if the agent knows it."""
        return self._records.get(deployment_id)

    def all(self) -> list[DeploymentRecord]:
        """Return every record, tombstones included."""
        return list(self._records.values())

    async def save(self, record: DeploymentRecord) -> None:
        """Write a record durably (off the event loop), then cache it."""
        path = self.directory / f"{record.deployment_id}.json"
        async with self._write_lock:
            payload = record.model_dump_json(indent=1).encode()
            await asyncio.to_thread(write_atomically, path, payload)
        self._records[record.deployment_id] = record

    async def accept(self, command: DeviceCommand) -> DeploymentRecord | None:
        """Persist a command if it is newer than the one held; return the record, else None.

        Returns only after the record is on disk, so the caller may ack the message.
        """
        async with self._accept_lock:
            record = self._records.get(command.deployment_id)
            if record is not None and command.generation <= record.command.generation:
                return None
            if record is None:
                record = DeploymentRecord(command=command)
            else:
                # In place: the reconciler holds this same object, and must see the new command.
                record.command = command
            await self.save(record)
            return record
