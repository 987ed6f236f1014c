"""Unpacking a verified zip through `modelyard_common.archive` (no escapes, no links, limits)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from modelyard_common.archive import ArchiveLimits, ArchiveSummary, extract_archive


async def unpack_artifact(zip_path: Path, target: Path, limits: ArchiveLimits) -> ArchiveSummary:
    """Extract a verified zip into `target` (all or nothing); an existing target is reused."""

    def unpack() -> ArchiveSummary:
        if target.is_dir():
            return ArchiveSummary()
        return extract_archive(zip_path, target, limits)

    return await asyncio.to_thread(unpack)
