"""Rules files for tests, as TOML text (owners approve them by name and fingerprint)."""

from __future__ import annotations


def one_clause_rule(
    name: str,
    value: int,
    compare: str = "<",
    column: str = "annual_income",
    owner: str = "tax",
    dataset: str = "income",
) -> str:
    """A rule of one applicant clause, ``column COMPARE value``, false where the owner lacks the row."""
    return f"""
[rules.{name}]
expression = "ok"
[rules.{name}.clauses.ok]
owner = "{owner}"
dataset = "{dataset}"
column = "{column}"
compare = "{compare}"
value = {value}
absent = "false"
"""
