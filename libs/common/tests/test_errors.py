"""The problem classes named by their status, and the one-field 422."""

from __future__ import annotations

from modelyard_common.errors import (
    STANDARD_PROBLEMS,
    NotFoundError,
    PolicyRefusedError,
    ProblemError,
    invalid_field,
)


def test_a_problem_named_by_its_status_takes_the_standard_title_and_type() -> None:
    class GoneModelError(ProblemError, status=404):
        pass

    body = GoneModelError("No model x.").to_problem("/v1/models/x")

    assert body == {
        "type": "https://modelyard.dev/problems/not-found",
        "title": "Not Found",
        "status": 404,
        "detail": "No model x.",
        "instance": "/v1/models/x",
    }
    assert NotFoundError().to_problem()["type"] == body["type"]
    assert STANDARD_PROBLEMS[413] == ("Content Too Large", "too-large")


def test_a_problem_declaring_its_own_title_keeps_it() -> None:
    body = PolicyRefusedError("Blocked.").to_problem()

    assert (body["status"], body["title"], body["type"]) == (
        409,
        "Refused by policy",
        "https://modelyard.dev/problems/policy-refused",
    )


def test_invalid_field_names_the_field_inside_its_location() -> None:
    body = invalid_field(
        "The cursor is invalid.", ["query", "cursor"], message="invalid cursor", type="cursor"
    ).to_problem()

    assert body["status"] == 422
    assert body["detail"] == "The cursor is invalid."
    assert body["errors"] == [
        {
            "loc": ["query", "cursor"],
            "field": "cursor",
            "message": "invalid cursor",
            "type": "cursor",
        }
    ]
