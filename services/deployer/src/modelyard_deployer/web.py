"""Small HTTP helpers shared by the deployer's routers."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Header

# The caller's own bearer token, forwarded to the registry so it answers as the caller.
AuthorizationHeader = Annotated[str | None, Header(alias="Authorization", include_in_schema=False)]


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
