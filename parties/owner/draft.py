"""A first configuration for an owner, drafted from its CSV (``mpc-admin init party --from-csv``).

The draft declares every column of the file with a type inferred from its values (``int``,
``bool``, ``date``, ``category``, or ``code`` for free text) and, where the type needs one, bounds
or a domain taken from the data. Those are marked ``# REVIEW``: a declared bound or domain is what
peers are shown, so it must be the register's real range, not the extremes of today's rows (a
bound equal to one person's value tells peers that value). Columns start ``internal``; the policy
starts empty, with a commented grant that states ``batch`` explicitly. The draft loads as it is
(``mpc-party check`` accepts it) and is meant to be edited.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from mpc.data.ids import IdKind
from mpc.data.values import ValueParseError, date_value

__all__ = ["DraftError", "draft_config"]

CATEGORY_LIMIT = 20  # at most this many distinct short values: a category; more: a code
SAMPLE_ROWS = 100_000


class DraftError(ValueError):
    """A CSV the draft cannot be made from; the message names the file and line."""


def _round_out(value: int, up: bool) -> int:
    """A bound rounded away from the data to one significant digit (10 499 -> 20 000, -7 -> -10)."""
    if value == 0:
        return 0
    magnitude = 10 ** int(math.log10(abs(value)))
    step = math.ceil if up else math.floor
    return int(step(value / magnitude) * magnitude)


def _column(name: str, values: list[str]) -> tuple[str, list[str]]:
    """The column's TOML inline table and the comment lines above it."""
    present = [v.strip() for v in values if v.strip()]
    if not present:
        return '{ type = "code", classification = "internal" }', [f"# REVIEW {name}: empty in the sample; typed code"]
    lowered = {v.lower() for v in present}
    if lowered <= {"0", "1", "true", "false"}:
        return '{ type = "bool", classification = "internal" }', []
    try:
        numbers = [int(v) for v in present]
    except ValueError:
        numbers = []
    if numbers:
        low, high = _round_out(min(numbers), up=False), _round_out(max(numbers), up=True)
        return (
            f'{{ type = "int", min = {low}, max = {high}, classification = "internal" }}',
            [f"# REVIEW {name}: bounds rounded out from the data's; declare the register's real range"],
        )
    try:
        for value in present[:1000]:
            date_value(value)
        return '{ type = "date", classification = "internal" }', []
    except ValueParseError:
        pass
    distinct = sorted(set(present))
    if len(distinct) <= CATEGORY_LIMIT and all(len(v) <= 64 for v in distinct):
        return (
            f'{{ type = "category", categories = {json.dumps(distinct, ensure_ascii=False)}, '
            'classification = "internal" }',
            [f"# REVIEW {name}: the values found; declare the full domain (peers see it), never only today's"],
        )
    return '{ type = "code", classification = "internal" }', [f"# {name}: free text, compared only as equal or not"]


def draft_config(csv_path: Path, id_column: str, party: str, id_kind: IdKind = "resident_id") -> str:
    """The draft configuration (TOML text) for ``party`` serving ``csv_path`` keyed by ``id_column``."""
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if not header:
                raise DraftError(f"{csv_path}: empty file (a header row is needed)")
            if id_column not in header:
                raise DraftError(f"{csv_path}, line 1: no column {id_column!r} (columns: {', '.join(header)})")
            samples: list[list[str]] = [[] for _ in header]
            for row in reader:
                if len(row) != len(header):
                    raise DraftError(
                        f"{csv_path}, line {reader.line_num}: {len(row)} fields where the header has {len(header)}"
                    )
                for k, value in enumerate(row):
                    samples[k].append(value)
                if reader.line_num > SAMPLE_ROWS:
                    break
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DraftError(f"{csv_path}: cannot be read as UTF-8 CSV: {exc}") from None
    dataset = "".join(c if c.isalnum() else "_" for c in csv_path.stem).strip("_").lower() or "data"
    if dataset[0].isdigit():
        dataset = f"d_{dataset}"
    lines = [
        f"# Drafted from {csv_path.name} by `mpc-admin init party`: review every line marked REVIEW,",
        "# then `mpc-party check --config THIS_FILE` before `mpc-party serve`.",
        "",
        "[party]",
        f'name = "{party}"',
        'listen = "127.0.0.1:7101"            # REVIEW: the address peers reach',
        'state_dir = "state"',
        'coordinator = "127.0.0.1:7000"       # REVIEW: the coordinator of the deployment',
        "",
        "[tls]                                # from `mpc-admin pki request` (your key stays here)",
        'ca = "pki/ca.pem"',
        f'cert = "pki/{party}.pem"',
        f'key = "pki/{party}.key"',
        'crl = "pki/crl.pem"',
        "",
        "[[datasets]]",
        f'name = "{dataset}"',
        f'source = {{ kind = "csv", path = {json.dumps(str(csv_path.resolve()))} }}',
        "",
        "[datasets.schema]",
        f'id_column = "{id_column}"',
        f'id_kind = "{id_kind}"',
        'duplicates = "reject"',
        "",
        "[datasets.schema.columns]",
    ]
    for name, values in zip(header, samples, strict=True):
        if name == id_column:
            continue
        table, comments = _column(name, values)
        lines += [*comments, f"{json.dumps(name)} = {table}"]
    lines += [
        "",
        "[policy]",
        "# No peer is granted anything yet. A grant, for example:",
        "# [policy.peers.civil-affairs]",
        '# purposes = ["public-rental-housing"]',
        '# programs = ["rule"]',
        f"# [policy.peers.civil-affairs.datasets.{dataset}]",
        "# psi = true",
        "# batch = false                     # whole-table access (P1): required, an explicit choice",
        '# columns = { COLUMN = ["lookup", "compare"] }',
        "[policy.peers]",
        "",
    ]
    return "\n".join(lines)
