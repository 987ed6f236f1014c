"""What the benchmarks share: their report table."""

from __future__ import annotations

from collections.abc import Sequence


def print_metrics(rows: Sequence[tuple[str, object]], value_heading: str = "value") -> None:
    """Print `rows` as a two-column table: each metric's name, then its value."""
    width = max(len(name) for name, _ in rows)
    print(f"{'metric':<{width}}  {value_heading}")
    print(f"{'-' * width}  {'-' * max(len(value_heading), 14)}")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
