"""Safe zip handling: good zips extract, malicious ones are refused with nothing written."""

from __future__ import annotations

import io
import stat
import struct
import zipfile
from pathlib import Path

import pytest

from modelyard_common.archive import (
    ArchiveLimits,
    UnsafeArchiveError,
    extract_archive,
    inspect_archive,
)


def _zip(entries: list[tuple[zipfile.ZipInfo | str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for info, payload in entries:
            archive.writestr(info, payload)
    return buffer.getvalue()


def _info(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = mode << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def _files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def test_good_archive_is_summarised_and_extracted(tmp_path: Path) -> None:
    raw = _zip(
        [
            ("main.py", b"def predict(p):\n    return p\n"),
            ("model/weights.bin", b"\x00\x01" * 100),
            (_info("run.sh", stat.S_IFREG | 0o755), b"#!/bin/sh\n"),
        ]
    )
    summary = inspect_archive(io.BytesIO(raw), ArchiveLimits())
    assert sorted(summary.members) == ["main.py", "model/weights.bin", "run.sh"]
    assert summary.total_bytes == 29 + 200 + 10

    target = tmp_path / "out" / "v1"
    extract_archive(io.BytesIO(raw), target, ArchiveLimits())
    assert (target / "model" / "weights.bin").read_bytes() == b"\x00\x01" * 100
    assert (target / "run.sh").stat().st_mode & 0o111
    # Nothing but the target itself is left beside it (the staging dir was renamed).
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["v1"]


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../evil.py", "'..'"),
        ("a/../../evil.py", "'..'"),
        ("/etc/evil", "absolute"),
        ("C:/evil", "absolute"),
        ("..\\evil.py", "backslash"),
        ("a\\..\\..\\evil", "backslash"),
    ],
)
def test_escaping_names_are_refused(tmp_path: Path, name: str, reason: str) -> None:
    raw = _zip([("ok.txt", b"fine"), (name, b"pwned")])
    with pytest.raises(UnsafeArchiveError, match=reason):
        inspect_archive(io.BytesIO(raw), ArchiveLimits())
    target = tmp_path / "data" / "v1"
    with pytest.raises(UnsafeArchiveError):
        extract_archive(io.BytesIO(raw), target, ArchiveLimits())
    assert _files_under(tmp_path) == {"data"}


def test_symlink_is_refused(tmp_path: Path) -> None:
    raw = _zip([(_info("link", stat.S_IFLNK | 0o777), b"/etc/passwd")])
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        extract_archive(io.BytesIO(raw), tmp_path / "v1", ArchiveLimits())
    assert _files_under(tmp_path) == set()


def test_device_file_is_refused() -> None:
    raw = _zip([(_info("dev", stat.S_IFCHR | 0o600), b"")])
    with pytest.raises(UnsafeArchiveError, match="special file"):
        inspect_archive(io.BytesIO(raw), ArchiveLimits())


def test_zip_bomb_is_refused_by_ratio(tmp_path: Path) -> None:
    raw = _zip([("zeros.bin", b"\x00" * (8 * 1024 * 1024))])
    limits = ArchiveLimits(max_ratio=100)
    with pytest.raises(UnsafeArchiveError, match="compression ratio"):
        inspect_archive(io.BytesIO(raw), limits)
    with pytest.raises(UnsafeArchiveError, match="compression ratio"):
        extract_archive(io.BytesIO(raw), tmp_path / "v1", limits)
    assert _files_under(tmp_path) == set()


def test_total_size_and_member_count_limits() -> None:
    raw = _zip([(f"f{i}.txt", b"x" * 100) for i in range(5)])
    with pytest.raises(UnsafeArchiveError, match="more than 300 bytes"):
        inspect_archive(io.BytesIO(raw), ArchiveLimits(max_total_bytes=300))
    with pytest.raises(UnsafeArchiveError, match="at most 4"):
        inspect_archive(io.BytesIO(raw), ArchiveLimits(max_members=4))


def test_lying_header_sizes_are_caught_while_streaming(tmp_path: Path) -> None:
    """A member whose headers claim 10 bytes but which inflates to 64 KiB is cut off."""
    raw = bytearray(_zip([("big.bin", b"A" * 65536)]))
    # The uncompressed size sits in the local header (offset 22) and in the central directory
    # entry (offset 24): rewrite both so every header agrees on the lie.
    local = raw.index(b"PK\x03\x04")
    central = raw.index(b"PK\x01\x02")
    assert struct.unpack_from("<I", raw, local + 22)[0] == 65536
    struct.pack_into("<I", raw, local + 22, 10)
    struct.pack_into("<I", raw, central + 24, 10)
    limits = ArchiveLimits(max_total_bytes=1000, max_member_bytes=1000)
    assert inspect_archive(io.BytesIO(bytes(raw)), limits).total_bytes == 10
    with pytest.raises(UnsafeArchiveError):
        extract_archive(io.BytesIO(bytes(raw)), tmp_path / "v1", limits)
    assert _files_under(tmp_path) == set()


def test_not_a_zip_is_refused() -> None:
    with pytest.raises(UnsafeArchiveError, match="not a readable zip"):
        inspect_archive(io.BytesIO(b"definitely not a zip"), ArchiveLimits())


def test_duplicate_members_are_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("main.py", b"a")
        with pytest.warns(UserWarning, match="Duplicate name"):
            archive.writestr("main.py", b"b")
    with pytest.raises(UnsafeArchiveError, match="more than once"):
        inspect_archive(io.BytesIO(buffer.getvalue()), ArchiveLimits())
