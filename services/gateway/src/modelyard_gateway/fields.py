"""Field types every admin resource of the gateway shares."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

# The name of a group, instance or key: what clients and admins type.
Name = Annotated[
    str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$")
]
