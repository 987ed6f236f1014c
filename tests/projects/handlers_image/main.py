"""A handlers-protocol project whose input type is `image`: the handler gets the raw bytes.

Standard library only: it reads a PNG's header and answers its size and a digest of the bytes,
so a test can tell that the very bytes it sent arrived.
"""

import hashlib
import struct


def predict(data):
    """Return the PNG's width and height, how many bytes came and their SHA-256."""
    if not isinstance(data, (bytes, bytearray)) or data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("expected the bytes of a PNG image")
    width, height = struct.unpack(">II", bytes(data[16:24]))
    return {
        "format": "png",
        "width": width,
        "height": height,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
