"""How the command lines print one released cell: thousands separated, means to two decimals."""

from __future__ import annotations

__all__ = ["format_cell"]


def format_cell(value: object, empty: str = "withheld") -> str:
    """``empty`` for a cell that was not released (None)."""
    if value is None:
        return empty
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
