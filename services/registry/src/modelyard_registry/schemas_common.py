"""Field types shared by the registry's API schemas."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

ShortText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
LongText = Annotated[str, Field(max_length=20_000)]
# No whitespace (Unicode White_Space, spelled out: regex engines disagree on `\s`) and no comma.
_WHITESPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_STRIPPED = "\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000\ufeff" + "".join(
    map(chr, range(0x2000, 0x200B))
)
# Limits and patterns hold for the text as sent (what the OpenAPI can say); surrounding
# whitespace is stripped afterwards.
TAG_PATTERN = f"^[{_WHITESPACE}]*[^{_WHITESPACE},\x00]+[{_WHITESPACE}]*$"
NON_BLANK = f"^[^\x00]*[^{_WHITESPACE}\x00][^\x00]*$"
Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200, pattern=NON_BLANK),
    AfterValidator(lambda value: value.strip(_STRIPPED)),
]
Tag = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=TAG_PATTERN),
    AfterValidator(lambda value: value.strip(_STRIPPED).lower()),
]


def _unique_tags(tags: list[str]) -> list[str]:
    return list(dict.fromkeys(tags))


Tags = Annotated[
    list[Tag],
    Field(max_length=50, description="Lower-cased labels without spaces or commas."),
    AfterValidator(_unique_tags),
]


# An absolute http(s) URL with a plain host (name or IPv4) and optional port: one that parses.
URL_VALUE = r"^https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:[/?#][^\s\u0000]*)?$"


def _typed(kind: str, value: dict[str, Any]) -> dict[str, Any]:
    return {
        "properties": {"type": {"const": kind}, "value": value},
        "required": ["type", "value"],
    }


class CustomProperty(BaseModel):
    """A typed custom property; `value` must match `type`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            # The rule `_value_matches_type` enforces, so generated clients know each value type.
            "oneOf": [
                _typed("string", {"type": "string", "maxLength": 2000}),
                _typed("number", {"type": "number"}),
                _typed("boolean", {"type": "boolean"}),
                _typed("date", {"type": "string", "format": "date"}),
                _typed("url", {"type": "string", "pattern": URL_VALUE, "maxLength": 2000}),
            ],
            "examples": [
                {"type": "number", "value": 0.97},
                {"type": "date", "value": "2026-01-31"},
            ],
        },
    )

    type: Literal["string", "number", "boolean", "date", "url"]
    value: Any

    @model_validator(mode="after")
    def _value_matches_type(self) -> CustomProperty:
        v = self.value
        ok = {
            "string": isinstance(v, str) and len(v) <= 2000,
            "number": isinstance(v, int | float) and not isinstance(v, bool),
            "boolean": isinstance(v, bool),
            "date": isinstance(v, str) and _is_date(v),
            "url": isinstance(v, str) and re.match(URL_VALUE, v) is not None and len(v) <= 2000,
        }[self.type]
        if not ok:
            raise ValueError(f"value does not match type {self.type!r}")
        return self


def _is_date(value: str) -> bool:
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


PROPERTY_NAME = r"^[A-Za-z0-9_-]{1,64}$"


def _property_keys(props: dict[str, CustomProperty]) -> dict[str, CustomProperty]:
    for key in props:
        if not re.match(PROPERTY_NAME, key):
            raise ValueError(f"property name {key!r} must be 1-64 letters, digits, - or _")
    return props


Properties = Annotated[
    dict[str, CustomProperty],
    Field(
        max_length=100,
        description="Typed custom properties by name.",
        json_schema_extra={"propertyNames": {"pattern": PROPERTY_NAME}},
    ),
    AfterValidator(_property_keys),
]
