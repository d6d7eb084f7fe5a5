"""A project's scope checked against, or derived from, what the owners grant the gateway.

``mpc-gateway project add --table party.dataset=col1,col2`` asks each owner (``ListDatasets``
with the project's purpose, as the gateway itself will) and refuses a table or column it does not
grant the gateway for research (filter, aggregate or group_by), naming it and the nearest granted
name; ``--table party.dataset`` alone takes every column the owner grants for research. So the
research permissions are written once, by the owners, and the project only narrows them.
"""

from __future__ import annotations

from collections.abc import Callable

from parties.config import closest
from parties.requester import Client, RemoteError

__all__ = ["RESEARCH_USES", "ScopeError", "resolve_scope"]

RESEARCH_USES = ("filter", "aggregate", "group_by")


class ScopeError(ValueError):
    """A project scope the owners do not grant; the message names the table or column."""


def _near(name: str, known: list[str]) -> str:
    match = closest(name, known)
    return f" (did you mean {match!r}?)" if match else f" (granted: {', '.join(known) or 'none'})"


def resolve_scope(make_client: Callable[[], Client], scope: dict[str, list[str]]) -> dict[str, list[str]]:
    """``scope`` (table -> columns; an empty list: every column granted for research) checked
    against each owner's grants to the gateway, with the empty lists filled in."""
    resolved: dict[str, list[str]] = {}
    client = make_client()
    try:
        for table, columns in scope.items():
            party, _, dataset = table.partition(".")
            try:
                listing = client.list_datasets(party)
            except (RemoteError, LookupError) as exc:
                raise ScopeError(
                    f"{table}: the owner {party} cannot be asked ({exc}); --offline skips the check"
                ) from None
            granted = next((d for d in listing.datasets if d.name == dataset), None)
            if granted is None:
                names = [d.name for d in listing.datasets]
                raise ScopeError(f"{table}: {party} grants the gateway no dataset {dataset!r}{_near(dataset, names)}")
            research = [c.name for c in granted.columns if set(c.allowed_uses) & set(RESEARCH_USES)]
            for column in columns:
                if column not in research:
                    raise ScopeError(
                        f"{table}.{column}: {party} does not grant the gateway this column for research"
                        f"{_near(column, research)}"
                    )
            resolved[table] = list(columns) or research
    finally:
        client.close()
    return resolved
