"""Checks of an uploaded project before it becomes a version: the zip, its manifest, the text.

Each failure is a 422 naming the field at fault; nothing here touches the database or the store.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from modelyard_common.archive import ArchiveLimits, UnsafeArchiveError, inspect_archive
from modelyard_common.errors import FieldError, UnprocessableError
from modelyard_common.inputs import reject_nul
from modelyard_common.manifest import MANIFEST_FILENAMES, Manifest, parse_manifest_document
from modelyard_deployer.settings import DeployerSettings
from modelyard_deployer.versions import schemas


def _unprocessable(field: str, message: str, kind: str) -> UnprocessableError:
    return UnprocessableError(
        message,
        errors=[FieldError(loc=["body", field], field=field, message=message, type=kind)],
    )


@dataclass(frozen=True)
class CheckedProject:
    """What validation learnt about an uploaded zip."""

    manifest: Manifest
    members: frozenset[str]
    uncompressed_bytes: int


def archive_limits(settings: DeployerSettings) -> ArchiveLimits:
    """Return the limits an uploaded zip must stay under."""
    return ArchiveLimits(
        max_total_bytes=settings.max_uncompressed_bytes,
        max_member_bytes=settings.max_uncompressed_bytes,
        max_members=settings.max_archive_members,
        max_ratio=settings.max_compression_ratio,
    )


def _manifest_from_form(raw: str) -> Manifest:
    try:
        document = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise _unprocessable(
            "manifest", f"The manifest is not valid JSON ({exc}).", "json"
        ) from exc
    except (RecursionError, ValueError) as exc:
        raise _too_deep("manifest", "The manifest") from exc
    return _validate_manifest(document, ["body", "manifest"])


def _too_deep(field: str, what: str) -> UnprocessableError:
    # Whatever limit the parser hit (nesting, size), the answer names the manifest: a
    # manifest is a flat document a few levels deep, never a reason for a 5xx.
    return _unprocessable(
        field, f"{what} is nested too deeply or too large to read as a run manifest.", "too_deep"
    )


def _validate_manifest(document: Any, loc: list[str | int]) -> Manifest:
    try:
        reject_nul(document, loc)
        return Manifest.model_validate(document)
    except RecursionError as exc:
        raise _too_deep("manifest", "The manifest") from exc
    except ValidationError as exc:
        errors = []
        for err in exc.errors():
            where = [*loc, *(p if isinstance(p, int) else str(p) for p in err["loc"])]
            errors.append(
                FieldError(
                    loc=where,
                    field=".".join(str(p) for p in where[1:]),
                    message=err["msg"],
                    type=err["type"],
                )
            )
        raise UnprocessableError("The run manifest is invalid.", errors=errors) from exc


def _manifest_from_zip(path: Path, members: frozenset[str], max_bytes: int) -> Manifest:
    name = next((n for n in MANIFEST_FILENAMES if n in members), None)
    if name is None:
        raise _unprocessable(
            "manifest",
            "No run manifest: send the `manifest` field or put modelyard.json or modelyard.yaml "
            "at the root of the zip.",
            "missing",
        )
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(name)
        if info.file_size > max_bytes:
            raise _unprocessable(
                "manifest", f"{name} is larger than {max_bytes} bytes.", "too_long"
            )
        try:
            # Bounded: zipfile stops at the member's declared size and checks its CRC.
            raw = archive.read(info)
        except (zipfile.BadZipFile, EOFError, OSError) as exc:
            raise _unprocessable(
                "file", f"{name} is corrupt in the zip ({exc}).", "corrupt"
            ) from exc
    try:
        document = parse_manifest_document(name, raw)
    except RecursionError as exc:
        raise _too_deep("manifest", name) from exc
    except (ValueError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise _unprocessable(
            "manifest", f"{name} is unreadable ({str(exc)[:500]}).", "parse"
        ) from exc
    return _validate_manifest(document, ["body", "file", name])


def check_project(
    path: Path, *, manifest_field: str | None, settings: DeployerSettings
) -> CheckedProject:
    """Return the checked manifest and contents of a zip, without extracting it (blocking).

    Raises a 422 naming what is wrong: unsafe or unreadable zip, bad manifest, missing files.
    """
    try:
        summary = inspect_archive(path, archive_limits(settings))
    except UnsafeArchiveError as exc:
        raise _unprocessable("file", str(exc), "unsafe_archive") from exc
    members = frozenset(summary.members)
    if manifest_field is not None and manifest_field.strip():
        manifest = _manifest_from_form(manifest_field)
    else:
        manifest = _manifest_from_zip(path, members, settings.max_manifest_bytes)
    if manifest.main not in members:
        raise _unprocessable(
            "file",
            f"The manifest's main file {manifest.main!r} is not in the zip "
            "(paths are relative to the zip's root).",
            "missing_main",
        )
    if manifest.dockerfile and "Dockerfile" not in members:
        raise _unprocessable(
            "file",
            "The manifest says `dockerfile: true` but the zip has no Dockerfile at its root.",
            "missing_dockerfile",
        )
    return CheckedProject(
        manifest=manifest, members=members, uncompressed_bytes=summary.total_bytes
    )


def check_text_fields(fields: dict[str, str]) -> tuple[str | None, str]:
    """Return the upload's title (None: default) and comment; 422 when too long."""
    reject_nul(fields, ["body"])
    title = fields.get("title")
    if title is not None:
        title = title.strip() or None
    if title is not None and len(title) > schemas.TITLE_MAX:
        raise _unprocessable(
            "title", f"The title has at most {schemas.TITLE_MAX} characters.", "string_too_long"
        )
    comment = fields.get("comment", "")
    if len(comment) > schemas.COMMENT_MAX:
        raise _unprocessable(
            "comment",
            f"The comment has at most {schemas.COMMENT_MAX} characters.",
            "string_too_long",
        )
    return title, comment
