"""Small HTTP helpers shared by the deployer's routers (byte ranges)."""

from __future__ import annotations

import re

from modelyard_common.errors import ProblemError
from modelyard_common.http import AuthorizationHeader

__all__ = ["AuthorizationHeader", "RangeNotSatisfiableError", "parse_range"]


class RangeNotSatisfiableError(ProblemError):
    """The requested byte range lies outside the file (416, with `Content-Range: bytes */size`)."""

    status, title, slug = 416, "Range Not Satisfiable", "range-not-satisfiable"


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """Return (start, end inclusive) of a single `bytes=` range; None means the whole file.

    Raises ValueError for a range that cannot be satisfied. Several ranges at once are answered
    with the whole file, which RFC 9110 allows.
    """
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        suffix = int(last)
        if suffix == 0:
            raise ValueError("empty suffix range")
        return max(size - suffix, 0), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        raise ValueError("range outside the file")
    return start, end
