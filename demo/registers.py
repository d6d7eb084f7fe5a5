"""Two issuing agencies beside the four of :mod:`demo.deployment`, and applications that declare.

* ``human-resources`` — dataset ``certificates`` (CSV), keyed by holder **and** certificate number
  (a composite key): certificate type (a code), valid from / to (dates), revoked.
* ``market-regulation`` — dataset ``licences`` (SQLite), keyed by a market entity's GB 32100
  credit code **and** the licence type: valid to (a date), revoked.

Both grant civil-affairs, the requester, lookups and comparisons for the purposes of the jobs in
``rules/examples.toml``: ``certificate-valid`` ("whoever issues, verifies"), ``business-licence``
(a licence check for a market entity) and, against tax and housing, ``declaration-audit``
(notification and commitment: declared household income and property re-checked).

Everything is drawn deterministically from the synthetic city, with the cases each rule must tell
apart: certificates cited with the right number, a wrong one, another holder's, an expired, a
not-yet-valid, a revoked one and one of another type; declarations exact, within and just outside
the 10 % tolerance; licences valid, expired, revoked, of another type, and entities unknown.
"""

from __future__ import annotations

import datetime as dt
import random
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from demo.cluster import PartySpec
from demo.deployment import household_applications, with_ids
from demo.synthetic import AgencyTables
from mpc.data.ids import CREDIT_CODE_CHARSET, make_credit_code, organization_code_check
from mpc.data.values import code_value, composite_key, date_value, normalize_code
from mpc.protocols.rules import Application, OwnerValues

__all__ = [
    "APPLICATION_DATE",
    "ISSUERS",
    "Registers",
    "certificate_applications",
    "declaration_applications",
    "generate_registers",
    "issuer_specs",
    "licence_applications",
    "register_values",
]

ISSUERS = ("human-resources", "market-regulation")
APPLICATION_DATE = "2026-12-02"
CERTIFICATE_TYPES = ("ELECTRICIAN", "WELDER", "PLUMBER")
LICENCE_TYPES = ("FOOD-BUSINESS", "PUBLIC-HEALTH", "SECOND-HAND-DEALER")
PURPOSES = ["certificate-verification", "licence-check", "declaration-audit"]


@dataclass(frozen=True)
class Registers:
    """Rows of the two issuers' registers (column name -> value, as in their sources)."""

    certificates: list[dict[str, object]]
    licences: list[dict[str, object]]


def _day(offset: int) -> str:
    return (dt.date.fromisoformat(APPLICATION_DATE) + dt.timedelta(days=offset)).isoformat()


def _credit_code(rng: random.Random) -> str:
    """A valid GB 32100 code: registration authority 9, entity 1, an area, an organisation code."""
    body = "".join(rng.choice("0123456789ABCDEFGHJKLMNPQRTUWXY") for _ in range(8))
    organisation = body + organization_code_check(body)
    code = make_credit_code("91" + "330100" + organisation)
    assert all(c in CREDIT_CODE_CHARSET for c in code)
    return code


def generate_registers(tables: AgencyTables, holders: int = 400, entities: int = 200, seed: int = 15) -> Registers:
    """Certificates of ``holders`` residents (some hold two) and licences of ``entities`` entities."""
    rng = random.Random(seed)
    people = [i for i, _ in with_ids(tables.civil_affairs)]
    certificates: list[dict[str, object]] = []
    for k, holder in enumerate(rng.sample(people, min(holders, len(people)))):
        for n in range(1 + (k % 5 == 0)):
            certificates.append(
                {
                    "holder_id": holder,
                    "certificate_number": f"ZJ-{2020 + k % 6}-{k:05d}{n}",
                    "certificate_type": CERTIFICATE_TYPES[(k + n) % len(CERTIFICATE_TYPES) if k % 3 == 0 else 0],
                    "valid_from": _day(-rng.randrange(0, 2000) if k % 11 else rng.randrange(1, 90)),
                    "valid_to": _day(rng.randrange(1, 1500) if k % 7 else -rng.randrange(1, 400)),
                    "revoked": int(k % 13 == 0),
                }
            )
    licences: list[dict[str, object]] = []
    for k in range(entities):
        code = _credit_code(rng)
        for licence_type in LICENCE_TYPES[: 1 + k % 2]:
            licences.append(
                {
                    "credit_code": code,
                    "licence_type": licence_type,
                    "valid_to": _day(rng.randrange(1, 1000) if k % 6 else -rng.randrange(1, 300)),
                    "revoked": int(k % 10 == 0),
                }
            )
    return Registers(certificates, licences)


def issuer_specs(registers: Registers, data_dir: Path, requester: str = "civil-affairs") -> list[PartySpec]:
    """The two issuers' daemons: their datasets (composite keys) and policies granting ``requester``."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    certificates = data_dir / "certificates.csv"
    header = list(registers.certificates[0]) if registers.certificates else []
    lines = [",".join(header)] + [",".join(str(r[c]) for c in header) for r in registers.certificates]
    certificates.write_text("\n".join(lines) + "\n", encoding="utf-8")
    licences = data_dir / "licences.sqlite"
    licences.unlink(missing_ok=True)
    with sqlite3.connect(licences) as connection:
        connection.execute(
            "CREATE TABLE licences (credit_code TEXT, licence_type TEXT, valid_to TEXT, revoked INTEGER)"
        )
        connection.executemany(
            "INSERT INTO licences VALUES (?, ?, ?, ?)",
            [(r["credit_code"], r["licence_type"], r["valid_to"], r["revoked"]) for r in registers.licences],
        )
    connection.close()
    code = {"type": "code", "classification": "internal"}
    date = {"type": "date", "classification": "internal"}
    flag = {"type": "bool", "classification": "internal"}
    datasets: dict[str, dict[str, Any]] = {
        "human-resources": {
            "name": "certificates",
            "description": "vocational qualification certificates issued, by holder and number",
            "source": {"kind": "csv", "path": str(certificates)},
            "schema": {
                "id_column": "holder_id",
                "key_columns": ["certificate_number"],
                "columns": {
                    "certificate_number": code,
                    "certificate_type": code,
                    "valid_from": date,
                    "valid_to": date,
                    "revoked": flag,
                },
            },
        },
        "market-regulation": {
            "name": "licences",
            "description": "business licences issued, by the entity's credit code and the licence type",
            "source": {"kind": "sqlite", "path": str(licences), "table": "licences"},
            "schema": {
                "id_column": "credit_code",
                "id_kind": "credit_code",
                "key_columns": ["licence_type"],
                "columns": {"licence_type": code, "valid_to": date, "revoked": flag},
            },
        },
    }
    return [
        PartySpec(
            name,
            [spec],
            {
                "peers": {
                    requester: {
                        "purposes": PURPOSES,
                        "programs": ["rule"],
                        "reveal_clauses": True,
                        "datasets": {
                            spec["name"]: {
                                "psi": True,  # lookups by (composite) id
                                "batch": True,
                                "columns": {c: ["lookup", "compare"] for c in spec["schema"]["columns"]},
                            }
                        },
                    }
                }
            },
        )
        for name, spec in datasets.items()
    ]


def register_values(registers: Registers) -> OwnerValues:
    """The issuers' columns as the rules compare them (composite keys, dates as days, codes hashed)."""
    out: dict[tuple[str, str, str], dict[str, int]] = {}
    for row in registers.certificates:
        key = composite_key(str(row["holder_id"]), normalize_code(str(row["certificate_number"])))
        for column in ("certificate_type", "valid_from", "valid_to", "revoked"):
            value = row[column]
            carried = code_value(str(value)) if column == "certificate_type" else value
            carried = date_value(str(value)) if column.startswith("valid") else carried
            out.setdefault(("human-resources", "certificates", column), {})[key] = int(str(carried))
    for row in registers.licences:
        key = composite_key(str(row["credit_code"]), normalize_code(str(row["licence_type"])))
        out.setdefault(("market-regulation", "licences", "valid_to"), {})[key] = date_value(str(row["valid_to"]))
        out.setdefault(("market-regulation", "licences", "revoked"), {})[key] = int(str(row["revoked"]))
    return out


def certificate_applications(registers: Registers, count: int, seed: int = 16) -> list[Application]:
    """Applicants citing a certificate: mostly their own (written in any case), some a wrong number
    or another holder's."""
    rng = random.Random(seed)
    out = []
    for k in range(count):
        row = registers.certificates[rng.randrange(len(registers.certificates))]
        number = str(row["certificate_number"])
        holder = str(row["holder_id"])
        if k % 9 == 4:
            number = number[:-1] + ("7" if number[-1] != "7" else "8")  # a number never issued to them
        elif k % 9 == 7:
            holder = str(registers.certificates[(k * 31) % len(registers.certificates)]["holder_id"])
        cited = number.lower() if k % 2 else f" {number} "
        out.append(
            Application(
                f"CERT-{k:05d}",
                holder,
                (holder,),
                {"certificate_number": cited, "application_date": APPLICATION_DATE},
            )
        )
    return out


def licence_applications(registers: Registers, count: int, seed: int = 17) -> list[Application]:
    """Market entities declaring a licence type: held, not held, and entities with no licence."""
    rng = random.Random(seed)
    out = []
    for k in range(count):
        row = registers.licences[rng.randrange(len(registers.licences))]
        code = str(row["credit_code"]) if k % 8 != 5 else _credit_code(rng)
        licence_type = str(row["licence_type"]) if k % 6 != 3 else LICENCE_TYPES[2]
        out.append(
            Application(
                f"LIC-{k:05d}",
                code,
                (code,),
                {"licence_type": licence_type.lower(), "application_date": APPLICATION_DATE},
            )
        )
    return out


def declaration_applications(tables: AgencyTables, count: int) -> list[Application]:
    """Past applications with the household income and property count the applicants declared:
    exact, within 10 % (either side), just outside, and understated property."""
    income = {i: int(str(r["annual_income"])) for i, r in with_ids(tables.tax)}
    properties = {i: int(str(r["property_count"])) for i, r in with_ids(tables.housing)}
    out = []
    for k, application in enumerate(household_applications(tables, count)):
        true_income = sum(income.get(m, 0) for m in application.members)
        true_property = sum(properties.get(m, 0) for m in application.members)
        factor = (1.0, 0.95, 1.08, 0.85, 1.3)[k % 5]
        declared_income = max(0, round(true_income * factor)) if k % 5 else true_income
        declared_property = max(0, true_property - 1) if k % 7 == 3 else true_property
        out.append(
            Application(
                application.reference,
                application.applicant,
                application.members,
                {"household_income": f"{declared_income:,}", "property_count": str(declared_property)},
            )
        )
    return out
