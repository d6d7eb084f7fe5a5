"""How the command lines print: a released cell (thousands separated, means to two decimals),
messages, and the end of a command on an expected error. rich is imported on first use only, so
that a command line starts at once."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, NoReturn

import typer

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["console", "fail", "format_cell", "say"]


def format_cell(value: object, empty: str = "withheld") -> str:
    """``empty`` for a cell that was not released (None)."""
    if value is None:
        return empty
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


@functools.cache
def console() -> Console:
    """Where the commands print tables and progress."""
    from rich.console import Console

    return Console()


def say(message: str, style: str = "") -> None:
    """Print ``message`` as it is (no markup), on one line however wide."""
    console().print(message, style=style, soft_wrap=True, markup=False, highlight=False)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``message`` (one line naming the file, key or line, and the fix) on stderr and end the
    command with exit status ``code`` (2: it could not start)."""
    typer.echo(message, err=True)
    raise typer.Exit(code)
