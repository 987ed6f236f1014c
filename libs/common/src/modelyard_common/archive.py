"""Safe handling of uploaded AI project zips: inspect without extracting, extract with limits.

Used by the deployer (check an upload before storing it) and the device agent (extract a
downloaded version). Both entry points apply the same rules and raise one exception class,
`UnsafeArchiveError`, whose message can be shown to the person who uploaded the zip:

* the file is a readable zip;
* member names are relative paths that stay inside the target: no absolute path, no drive letter,
  no backslash, no `..` component, no NUL byte;
* no symlinks, device files, FIFOs or sockets (read from the Unix mode in `external_attr`);
* at most `limits.max_members` members, at most `limits.max_total_bytes` uncompressed in total,
  at most `limits.max_member_bytes` per member, and no member whose uncompressed size is more than
  `limits.max_ratio` times its compressed size (zip bombs); the ratio also holds for the archive
  as a whole, so many small members of zeros (each under `ratio_min_bytes`) do not add up to one.

`inspect_archive` trusts the sizes in the zip's headers, which is fine to refuse early;
`extract_archive` does not: it counts the bytes it actually writes and aborts past the limits,
extracting into a temporary directory next to the target and renaming it into place, so the target
either appears complete or not at all.

    >>> summary = inspect_archive("project.zip", ArchiveLimits(max_total_bytes=50 * 2**20))
    >>> extract_archive("project.zip", Path("/data/versions/abc"), ArchiveLimits())
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

__all__ = [
    "ArchiveLimits",
    "ArchiveSummary",
    "UnsafeArchiveError",
    "extract_archive",
    "inspect_archive",
]

_CHUNK = 64 * 1024


class UnsafeArchiveError(ValueError):
    """The zip is unreadable or breaks a safety rule; the message says which and why."""


@dataclass(frozen=True, slots=True)
class ArchiveLimits:
    """Limits one archive must stay under; the defaults suit a small edge device."""

    max_total_bytes: int = 2 * 1024**3
    max_member_bytes: int = 2 * 1024**3
    max_members: int = 10_000
    max_ratio: float = 200.0
    # Tiny members compress "infinitely" well (an empty or all-zero file); the ratio rule only
    # applies to members whose uncompressed size is above this, so normal projects pass.
    ratio_min_bytes: int = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ArchiveSummary:
    """What a checked archive holds: file names (directories excluded) and their total size."""

    members: list[str] = field(default_factory=list)
    total_bytes: int = 0


def inspect_archive(
    source: str | os.PathLike[str] | IO[bytes], limits: ArchiveLimits
) -> ArchiveSummary:
    """Return the summary of a zip after checking every rule, without extracting anything.

    Raises `UnsafeArchiveError` naming the first broken rule.
    """
    with _open_zip(source) as archive:
        return _check_headers(archive, limits)


def extract_archive(
    source: str | os.PathLike[str] | IO[bytes], target: Path, limits: ArchiveLimits
) -> ArchiveSummary:
    """Extract a zip into `target` (which must not exist yet) and return its summary.

    Checks the headers first, then streams each member while counting the bytes actually written,
    so a zip lying about its sizes is caught too. Extraction happens in a temporary directory
    beside `target` that is renamed into place only when complete; on any error nothing is left.
    """
    target = Path(target)
    if target.exists():
        raise FileExistsError(f"{target} already exists")
    target.parent.mkdir(parents=True, exist_ok=True)
    with _open_zip(source) as archive:
        summary = _check_headers(archive, limits)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            _extract_members(archive, staging, limits)
            os.replace(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    _fsync_dir(target.parent)
    return summary


def _open_zip(source: str | os.PathLike[str] | IO[bytes]) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(source)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError) as exc:
        raise UnsafeArchiveError(f"The file is not a readable zip archive ({exc}).") from exc


def _check_headers(archive: zipfile.ZipFile, limits: ArchiveLimits) -> ArchiveSummary:
    infos = archive.infolist()
    if len(infos) > limits.max_members:
        raise UnsafeArchiveError(
            f"The archive has {len(infos)} members; at most {limits.max_members} are allowed."
        )
    names: list[str] = []
    seen: set[str] = set()
    total = 0
    compressed = 0
    for info in infos:
        relative = _safe_relative_name(info.filename)
        _check_file_type(info)
        if info.flag_bits & 0x1:
            raise UnsafeArchiveError(f"Member {info.filename!r} is encrypted.")
        key = relative.as_posix().casefold()
        if key in seen:
            raise UnsafeArchiveError(f"Member {info.filename!r} appears more than once.")
        seen.add(key)
        if info.is_dir():
            continue
        _check_member_size(info.filename, info.file_size, info.compress_size, limits)
        total += info.file_size
        compressed += info.compress_size
        if total > limits.max_total_bytes:
            raise UnsafeArchiveError(
                f"The archive unpacks to more than {limits.max_total_bytes} bytes."
            )
        names.append(relative.as_posix())
    _check_archive_ratio(total, compressed, limits)
    return ArchiveSummary(members=names, total_bytes=total)


def _check_archive_ratio(size: int, compressed: int, limits: ArchiveLimits) -> None:
    if size > limits.ratio_min_bytes and size > limits.max_ratio * max(compressed, 1):
        raise UnsafeArchiveError(
            f"The archive as a whole has a compression ratio above {limits.max_ratio:g} "
            "(a zip bomb?)."
        )


def _safe_relative_name(name: str) -> PurePosixPath:
    """Return a member name as a relative path, or refuse names that could leave the target."""
    if not name or "\x00" in name:
        raise UnsafeArchiveError("A member has an empty name or a NUL byte in its name.")
    if "\\" in name:
        # Windows tools write `..\..\x`; on extraction elsewhere the backslash could become a
        # separator, so a backslash is never accepted.
        raise UnsafeArchiveError(f"Member {name!r} contains a backslash.")
    if name.startswith("/") or (len(name) >= 2 and name[1] == ":"):
        raise UnsafeArchiveError(f"Member {name!r} has an absolute path.")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"Member {name!r} escapes the target directory with '..'.")
    if not parts:
        raise UnsafeArchiveError(f"Member {name!r} has no file name.")
    return PurePosixPath(*parts)


def _check_file_type(info: zipfile.ZipInfo) -> None:
    mode = info.external_attr >> 16
    if mode == 0:
        return  # no Unix mode recorded (e.g. written on Windows): a plain file or directory
    kind = stat.S_IFMT(mode)
    if kind == stat.S_IFLNK:
        raise UnsafeArchiveError(f"Member {info.filename!r} is a symbolic link.")
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise UnsafeArchiveError(
            f"Member {info.filename!r} is a special file (device, FIFO or socket)."
        )


def _check_member_size(name: str, size: int, compressed: int, limits: ArchiveLimits) -> None:
    if size > limits.max_member_bytes:
        raise UnsafeArchiveError(
            f"Member {name!r} unpacks to {size} bytes; "
            f"at most {limits.max_member_bytes} are allowed."
        )
    if size > limits.ratio_min_bytes and size > limits.max_ratio * max(compressed, 1):
        raise UnsafeArchiveError(
            f"Member {name!r} has a compression ratio above {limits.max_ratio:g} (a zip bomb?)."
        )


def _extract_members(archive: zipfile.ZipFile, staging: Path, limits: ArchiveLimits) -> None:
    root = staging.resolve()
    written_total = 0
    compressed_total = sum(i.compress_size for i in archive.infolist() if not i.is_dir())
    for info in archive.infolist():
        relative = _safe_relative_name(info.filename)
        destination = (root / relative).resolve()
        # Belt and braces: the name check already forbids escapes; this also catches anything a
        # future change to the name rules might let through.
        if destination != root and root not in destination.parents:
            raise UnsafeArchiveError(f"Member {info.filename!r} escapes the target directory.")
        if info.is_dir():
            destination.mkdir(parents=True, exist_ok=True)
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        written = 0
        # O_EXCL + O_NOFOLLOW: never write through something already at that path.
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(destination, flags, 0o644)
        try:
            with os.fdopen(fd, "wb") as out, archive.open(info) as member:
                while chunk := member.read(_CHUNK):
                    written += len(chunk)
                    written_total += len(chunk)
                    if written > limits.max_member_bytes:
                        raise UnsafeArchiveError(
                            f"Member {info.filename!r} unpacks to more than "
                            f"{limits.max_member_bytes} bytes."
                        )
                    if written_total > limits.max_total_bytes:
                        raise UnsafeArchiveError(
                            f"The archive unpacks to more than {limits.max_total_bytes} bytes."
                        )
                    _check_archive_ratio(written_total, compressed_total, limits)
                    if written > limits.ratio_min_bytes and written > limits.max_ratio * max(
                        info.compress_size, 1
                    ):
                        raise UnsafeArchiveError(
                            f"Member {info.filename!r} has a compression ratio above "
                            f"{limits.max_ratio:g} (a zip bomb?)."
                        )
                    out.write(chunk)
        except zipfile.BadZipFile as exc:
            raise UnsafeArchiveError(f"Member {info.filename!r} is corrupt ({exc}).") from exc
        if info.external_attr >> 16 & 0o111:
            os.chmod(destination, 0o755)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
