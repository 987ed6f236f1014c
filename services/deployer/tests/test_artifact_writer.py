"""The upload writer: a writer thread and a hasher thread over the same batches, in order.

Whatever the chunk sizes and however small the in-flight bound (so `write` waits on both
workers again and again), the file holds exactly the bytes handed over and the digest is theirs.
"""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import pytest

from modelyard_deployer.artifacts.writing import HashingFileWriter


@pytest.mark.parametrize("limit", [1, 4096, 1024 * 1024])
async def test_the_file_and_the_digest_are_the_bytes_handed_over(
    tmp_path: Path, limit: int
) -> None:
    rng = random.Random(limit)
    chunks = [rng.randbytes(rng.choice([1, 7, 4096, 65536, 300_000])) for _ in range(300)]
    path = tmp_path / "upload.zip"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        writer = HashingFileWriter(fd, limit=limit)
        for index, chunk in enumerate(chunks):
            # Views as the multipart reader hands them, and plain bytes.
            await writer.write(memoryview(chunk)[:] if index % 2 else chunk)
        await writer.close()
    finally:
        os.close(fd)
    expected = b"".join(chunks)
    assert path.read_bytes() == expected
    assert writer.sha256() == hashlib.sha256(expected).hexdigest()


async def test_an_aborted_writer_stops_and_a_closed_one_refuses_more(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "part", os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        writer = HashingFileWriter(fd, limit=4096)
        for _ in range(50):
            await writer.write(os.urandom(1000))
        await writer.abort()
        with pytest.raises(RuntimeError):
            await writer.write(b"late")
    finally:
        os.close(fd)


async def test_a_failing_disk_is_raised_by_a_write_or_the_close(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "part", os.O_RDONLY | os.O_CREAT)  # writes fail: EBADF
    try:
        writer = HashingFileWriter(fd, limit=4096)

        async def upload() -> None:
            for _ in range(100):
                await writer.write(os.urandom(2048))
            await writer.close()

        with pytest.raises(OSError, match="Bad file descriptor"):
            await upload()
    finally:
        os.close(fd)
