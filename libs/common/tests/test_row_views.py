"""`view_of` reads a view from a row's attributes, the computed fields from its keywords."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import pytest
from pydantic import BaseModel, ValidationError

from modelyard_common.row_views import view_of


class Colour(enum.StrEnum):
    red = "red"
    blue = "blue"


@dataclass
class Row:
    id: int
    colour: str
    revision: int
    secret: str = "never shown"


class View(BaseModel):
    id: int
    colour: Colour
    etag: str


def test_the_row_gives_the_columns_and_the_keywords_the_rest() -> None:
    view = view_of(View, Row(id=7, colour="blue", revision=3), etag='"3"')

    assert view == View(id=7, colour=Colour.blue, etag='"3"')


def test_a_keyword_wins_over_the_row() -> None:
    view = view_of(View, Row(id=7, colour="blue", revision=3), colour="red", etag='"3"')

    assert view.colour is Colour.red


def test_a_field_neither_gives_is_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="etag"):
        view_of(View, Row(id=7, colour="blue", revision=3))
