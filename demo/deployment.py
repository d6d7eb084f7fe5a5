"""The embedded default deployment: four agencies on synthetic data (demo, end-to-end tests, benchmarks).

* ``tax`` — dataset ``income`` (CSV): annual income (sensitive), tax year.
* ``civil-affairs`` — dataset ``households`` (CSV): household size, district, disability, allowance
  (the household id stays in the file but is not declared: an identifier, not a category with a
  declarable domain, and no peer is granted it).
* ``housing`` — dataset ``properties`` (SQLite): registered property count, district.
* ``public-security`` — dataset ``residents`` (SQLite): local residency, registered district.

Every agency grants every other one id matching (PSI/OPRF), lookups, comparisons, filters and
aggregates of its non-secret numeric and boolean columns, filters and plain group-by on its public
and internal category columns, for the purposes in :data:`PURPOSES`, the programs in
:data:`PROGRAMS`, and forwarding of shares between agencies acting as a rule's co-party.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from demo.cluster import GATEWAY, PartySpec
from demo.synthetic import DISTRICTS, NON_LOCAL, AgencyTables, write_csv, write_sqlite
from mpc.data.ids import normalize_column
from mpc.protocols.rules import Application, OwnerValues

AGENCIES = ("tax", "civil-affairs", "housing", "public-security")
PURPOSES = [
    "statistics",
    "selftest",
    "public-rental-housing",
    "minimum-living-allowance",
    "income-check",
    "declaration-audit",
]
PROGRAMS = ["selftest-compare", "rule", "aggregate"]
REVEALS_CLAUSES = {
    "housing",
    "public-security",
    "civil-affairs",
}  # the tax bureau keeps clause bits on its data to itself
PREDICATES: dict[str, list[dict[str, Any]]] = {  # published by the owner (P2 OPRF filters)
    "public-security": [
        {
            "name": "local-resident",
            "dataset": "residents",
            "column": "local_resident",
            "compare": "==",
            "value": 1,
            "epoch_hours": 24,
        }
    ],
}
INT_MAX = 10**12


def _int(lo: int, hi: int, classification: str = "internal") -> dict[str, Any]:
    return {"type": "int", "min": lo, "max": hi, "classification": classification}


def dataset_specs(tables: AgencyTables, data_dir: Path) -> dict[str, dict[str, Any]]:
    """Write each agency's data in its own file and return its DatasetSpec (as a dict, absolute paths)."""
    data_dir = data_dir.resolve()
    csv_paths = write_csv(
        AgencyTables(tax=tables.tax, civil_affairs=tables.civil_affairs, housing=[], public_security=[]), data_dir
    )
    write_sqlite(tables, data_dir / "housing.sqlite", only=["housing"])
    write_sqlite(tables, data_dir / "public_security.sqlite", only=["public_security"])
    # Category domains are declared, never read from the data: the districts the synthetic data
    # draws from (demo.synthetic), and "non-local" for a registered district outside the city.
    districts = {"type": "category", "categories": list(DISTRICTS), "classification": "public"}
    return {
        "tax": {
            "name": "income",
            "description": "annual taxable income per resident",
            "source": {"kind": "csv", "path": str(csv_paths["tax"])},
            "schema": {
                "id_column": "resident_id",
                "columns": {"annual_income": _int(-INT_MAX, INT_MAX, "sensitive"), "tax_year": _int(1990, 2100)},
            },
        },
        "civil-affairs": {
            "name": "households",
            "description": "household registration and benefits",
            "source": {"kind": "csv", "path": str(csv_paths["civil_affairs"])},
            "schema": {
                "id_column": "resident_id",
                "columns": {
                    "household_size": _int(1, 20),
                    "district": districts,
                    "disabled": {"type": "bool", "classification": "sensitive"},
                    "minimum_living_allowance": {"type": "bool", "classification": "sensitive"},
                },
            },
        },
        "housing": {
            "name": "properties",
            "description": "registered real estate per resident",
            "source": {"kind": "sqlite", "path": str(data_dir / "housing.sqlite"), "table": "housing"},
            "schema": {
                "id_column": "resident_id",
                "columns": {"property_count": _int(0, 1000, "sensitive"), "district": districts},
            },
        },
        "public-security": {
            "name": "residents",
            "description": "household registration (hukou)",
            "source": {"kind": "sqlite", "path": str(data_dir / "public_security.sqlite"), "table": "public_security"},
            "schema": {
                "id_column": "resident_id",
                "columns": {
                    "local_resident": {"type": "bool", "classification": "internal"},
                    "registered_district": {
                        "type": "category",
                        "classification": "internal",
                        "categories": [*DISTRICTS, NON_LOCAL],
                    },
                },
            },
        },
    }


def policy_for(owner: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Every other agency may match ids; look up, compare, filter on and aggregate the non-secret
    numeric and boolean columns; filter on and group by the public and internal category columns
    (plain group-by keys); run the programs; and use the other agencies as co-parties (to which
    shares are forwarded)."""
    columns = {
        c: ["lookup", "compare", "filter", "aggregate"] if col["type"] != "category" else ["filter", "group_by"]
        for c, col in spec["schema"]["columns"].items()
        if col.get("classification", "internal") in ("public", "internal")
        or (col["type"] != "category" and col.get("classification") != "secret")
    }
    peers: dict[str, Any] = {
        peer: {
            "purposes": PURPOSES,
            # an explicit choice: this deployment allows batch lookups and PSI intersections
            "datasets": {spec["name"]: {"psi": True, "psi_intersection": True, "batch": True, "columns": columns}},
            "programs": PROGRAMS,
            "co_parties": [a for a in AGENCIES if a not in (owner, peer)],
            "forward_shares": True,
            "predicates": [p["name"] for p in PREDICATES.get(owner, [])],
            "reveal_clauses": owner in REVEALS_CLAUSES,
        }
        for peer in AGENCIES
        if peer != owner
    }
    # the researcher sandbox may have aggregates computed over these columns and receive them noised
    peers[GATEWAY] = {
        "purposes": ["statistics"],
        "programs": ["aggregate"],
        "gateway": True,
        "datasets": {
            spec["name"]: {
                "columns": {
                    c: [u for u in uses if u in ("filter", "aggregate", "group_by")] for c, uses in columns.items()
                }
            }
        },
    }
    return {"peers": peers}


def party_specs(tables: AgencyTables, data_dir: Path, extra: dict[str, Any] | None = None) -> list[PartySpec]:
    specs = dataset_specs(tables, data_dir)
    return [
        PartySpec(
            name,
            [specs[name]],
            policy_for(name, specs[name]),
            extra=dict(extra or {}),
            predicates=PREDICATES.get(name, []),
        )
        for name in AGENCIES
    ]


def household_applications(tables: AgencyTables, count: int) -> list[Application]:
    """The first ``count`` registered households as applications (the head applies for all)."""
    households: dict[str, list[dict[str, object]]] = {}
    for row in tables.civil_affairs:
        households.setdefault(str(row["household_id"]), []).append(row)
    out = []
    for ref, members in sorted(households.items())[:count]:
        ordered = sorted(members, key=lambda r: r["relation"] != "head")
        out.append(Application(ref, str(ordered[0]["resident_id"]), tuple(str(m["resident_id"]) for m in ordered)))
    return out


def with_ids(rows: list[dict[str, object]]) -> list[tuple[str, dict[str, object]]]:
    """Rows keyed by their ids as every daemon normalises them (GB 11643; invalid ones dropped)."""
    ids, _ = normalize_column([str(r["resident_id"]) for r in rows], "resident_id")
    return [(i, r) for i, r in zip(ids, rows, strict=True) if i is not None]


def plain_values(tables: AgencyTables) -> OwnerValues:
    """The owners' columns the example rules read, for the plaintext oracle."""

    def column(rows: list[dict[str, object]], name: str) -> dict[str, int]:
        return {i: int(str(r[name])) for i, r in with_ids(rows)}

    return {
        ("tax", "income", "annual_income"): column(tables.tax, "annual_income"),
        ("housing", "properties", "property_count"): column(tables.housing, "property_count"),
        ("public-security", "residents", "local_resident"): column(tables.public_security, "local_resident"),
    }
