"""Small HTTP helpers shared by the deployer's routers (byte ranges, scoped routes)."""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Awaitable, Callable, Collection
from typing import Any, get_args

from modelyard_common.errors import ProblemError
from modelyard_common.http import AuthorizationHeader

__all__ = ["AuthorizationHeader", "RangeNotSatisfiableError", "parse_range", "scoped"]


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


def scoped(
    endpoint: Callable[..., Awaitable[Any]], path_param: str, *, without: Collection[str] = ()
) -> Callable[..., Awaitable[Any]]:
    """Return `endpoint` served under a path naming `path_param` (`/v1/models/{model_id}/...`).

    The same handler answers the wider route and the scoped one: its optional filter
    `path_param` becomes the required path parameter, and the filters in `without` (which the
    scope makes moot) are left out of the route.
    """
    signature = inspect.signature(endpoint, eval_str=True)
    parameters = []
    for parameter in signature.parameters.values():
        if parameter.name in without:
            continue
        if parameter.name == path_param:
            (annotation,) = (t for t in get_args(parameter.annotation) if t is not type(None))
            parameter = parameter.replace(annotation=annotation, default=inspect.Parameter.empty)
        parameters.append(parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY))

    @functools.wraps(endpoint)
    async def route(**values: Any) -> Any:
        return await endpoint(**values)

    route.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    return route
