"""Deterministic synthetic agency data for demos and benchmarks.

(Over 500 lines on purpose: one generator whose four agency tables must stay consistent with
each other, households and ids included; split, its invariants would be spread over modules.)

:func:`generate` draws a population of residents living in households in the 16 districts of a
Beijing-like city and derives the table each of four agencies would hold about them:

* ``tax`` (resident_id, annual_income, tax_year): about 85% of adults (18+);
* ``civil_affairs`` (resident_id, household_id, household_size, relation, district, disabled,
  minimum_living_allowance): about 95% of households, whole households, so ~95% of residents;
* ``housing`` (resident_id, property_count, district): about 70% of residents;
* ``public_security`` (resident_id, local_resident, registered_district, birth_date as ISO
  ``YYYY-MM-DD``): every resident.

Each agency's coverage is drawn independently, so intersections are non-trivial, and each table's
rows are shuffled independently, so joins cannot rely on row order.

Model (all from one seed, numpy ``Generator`` streams, no global state):

* Households have 1-6 members (sizes 1..6 with probabilities 14/27/28/18/8/5%), share one
  ``household_id`` and one district. A household has a head, a spouse (80% when size >= 2),
  children and sometimes parents of the head. Relations are ``head``, ``spouse``, ``child``,
  ``parent``.
* Ages are consistent within a household (spouse near the head's age, children 20-40 years
  younger, parents 20-35 years older, nobody over 100). Birth dates are counted back from
  :data:`REFERENCE_DATE`, not from today, so the data do not change over time.
* Annual income (CNY, int) is lognormal with a household effect (incomes correlate within a
  household), a district effect, a pension cut from age 60 and a Pareto boost (capped at x101)
  for 0.5% of people; about 6% of adults have 0 and about 1% a negative income (business
  losses). Residents under 18 have income 0 and are not in the tax table.
* ``minimum_living_allowance`` (dibao) goes to most households in the bottom 3% of per-capita
  income, to all members; ``disabled`` rises with age (about 6% overall).
* ``property_count`` is 0..5, mostly 0 or 1 (always 0 for minors).
* About 88% of households are local (``local_resident = 1``); their ids carry the area code of
  their registered district, which is their current district 90% of the time. Non-local
  residents' ids carry an area code from another province and ``registered_district`` is
  ``"non-local"`` (:data:`NON_LOCAL`).
* Ids are valid 18-digit GB 11643 numbers made by :func:`mpc.data.ids.make_resident_id`, unique,
  with odd sequence numbers for men and even for women.

**Deliberately defective ids**: about 0.1% of the tax rows (at least one when the table is not
empty) carry a defective id. Their row indexes and kinds are in
:attr:`AgencyTables.tax_id_defects`; the kinds (:data:`TAX_ID_DEFECT_KINDS`) are:

* ``"legacy15"`` - the person's 15-digit legacy number (only for people born 1900-1999); it is
  valid and normalises (upgraded) to the person's 18-digit id.
* ``"formatting"`` - full-width digits with surrounding whitespace and a lower-case ``x``; valid,
  normalises to the person's id.
* ``"bad_check"`` - the right body with a wrong check character: invalid.
* ``"truncated"`` - the last character missing (17 characters): invalid.
* ``"missing"`` - an empty string: invalid (``"missing id"``).

Every other id in every table is exactly the canonical id of a resident.
"""

from __future__ import annotations

import csv
import datetime
import sqlite3
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np

from mpc.data.ids import make_resident_id

__all__ = [
    "AREA_CODES",
    "DISTRICTS",
    "NON_LOCAL",
    "REFERENCE_DATE",
    "TABLE_COLUMNS",
    "TAX_ID_DEFECT_KINDS",
    "TAX_YEAR",
    "AgencyTables",
    "Resident",
    "generate",
    "write_csv",
    "write_sqlite",
]

REFERENCE_DATE: Final = datetime.date(2025, 12, 31)
NON_LOCAL: Final = "non-local"
TAX_YEAR: Final = 2025

# The 16 districts of Beijing with their GB/T 2260 codes and rough population weights.
_DISTRICT_TABLE: Final[tuple[tuple[str, str, float], ...]] = (
    ("Dongcheng", "110101", 0.032),
    ("Xicheng", "110102", 0.050),
    ("Chaoyang", "110105", 0.158),
    ("Fengtai", "110106", 0.092),
    ("Shijingshan", "110107", 0.026),
    ("Haidian", "110108", 0.143),
    ("Mentougou", "110109", 0.018),
    ("Fangshan", "110111", 0.060),
    ("Tongzhou", "110112", 0.084),
    ("Shunyi", "110113", 0.060),
    ("Changping", "110114", 0.104),
    ("Daxing", "110115", 0.090),
    ("Huairou", "110116", 0.020),
    ("Pinggu", "110117", 0.021),
    ("Miyun", "110118", 0.024),
    ("Yanqing", "110119", 0.018),
)
DISTRICTS: Final[tuple[str, ...]] = tuple(name for name, _, _ in _DISTRICT_TABLE)
AREA_CODES: Final[dict[str, str]] = {name: code for name, code, _ in _DISTRICT_TABLE}
_DISTRICT_WEIGHTS = np.array([w for _, _, w in _DISTRICT_TABLE]) / sum(w for _, _, w in _DISTRICT_TABLE)
_CENTRAL = frozenset({"Dongcheng", "Xicheng", "Chaoyang", "Haidian"})
_OUTER = frozenset({"Mentougou", "Fangshan", "Huairou", "Pinggu", "Miyun", "Yanqing"})

# City-district area codes in other provinces, for the ids of non-local residents.
_OTHER_AREA_CODES: Final[tuple[str, ...]] = (
    "130102",  # Shijiazhuang, Hebei
    "140105",  # Taiyuan, Shanxi
    "230102",  # Harbin, Heilongjiang
    "340102",  # Hefei, Anhui
    "360102",  # Nanchang, Jiangxi
    "370102",  # Jinan, Shandong
    "410102",  # Zhengzhou, Henan
    "420102",  # Wuhan, Hubei
    "430102",  # Changsha, Hunan
    "510104",  # Chengdu, Sichuan
    "610102",  # Xi'an, Shaanxi
    "120101",  # Tianjin
)

_HOUSEHOLD_SIZES = np.arange(1, 7)
_HOUSEHOLD_SIZE_P = np.array([0.14, 0.27, 0.28, 0.18, 0.08, 0.05])
_PROPERTY_P = np.array([0.30, 0.50, 0.13, 0.05, 0.015, 0.005])

TAX_ID_DEFECT_KINDS: Final[tuple[str, ...]] = (
    "legacy15",
    "formatting",
    "bad_check",
    "truncated",
    "missing",
)
_TAX_DEFECT_RATE: Final = 0.001

TABLE_COLUMNS: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "tax": (("resident_id", "TEXT"), ("annual_income", "INTEGER"), ("tax_year", "INTEGER")),
    "civil_affairs": (
        ("resident_id", "TEXT"),
        ("household_id", "TEXT"),
        ("household_size", "INTEGER"),
        ("relation", "TEXT"),
        ("district", "TEXT"),
        ("disabled", "INTEGER"),
        ("minimum_living_allowance", "INTEGER"),
    ),
    "housing": (("resident_id", "TEXT"), ("property_count", "INTEGER"), ("district", "TEXT")),
    "public_security": (
        ("resident_id", "TEXT"),
        ("local_resident", "INTEGER"),
        ("registered_district", "TEXT"),
        ("birth_date", "TEXT"),
    ),
}


@dataclass(frozen=True, slots=True)
class Resident:
    """One synthetic person: the ground truth the agency tables are derived from."""

    id: str
    household_id: str
    district: str
    birth: datetime.date
    sex: str  # "M" or "F"
    relation: str  # "head", "spouse", "child" or "parent"
    household_size: int
    local_resident: bool
    registered_district: str  # NON_LOCAL for non-local residents
    annual_income: int  # CNY; 0 for minors
    disabled: bool
    minimum_living_allowance: bool
    property_count: int

    @property
    def age(self) -> int:
        """Age in whole years on :data:`REFERENCE_DATE`."""
        years = REFERENCE_DATE.year - self.birth.year
        if (REFERENCE_DATE.month, REFERENCE_DATE.day) < (self.birth.month, self.birth.day):
            years -= 1
        return years


@dataclass
class AgencyTables:
    """The four agencies' tables as lists of row dicts (column name -> value).

    ``residents`` is the ground truth they were derived from (in household order) and
    ``tax_id_defects`` maps a tax row index to the kind of defect injected into its id (see the
    module docstring); all other ids are canonical resident ids.
    """

    tax: list[dict[str, object]]
    civil_affairs: list[dict[str, object]]
    housing: list[dict[str, object]]
    public_security: list[dict[str, object]]
    residents: list[Resident] = field(default_factory=list)
    tax_id_defects: dict[int, str] = field(default_factory=dict)

    def tables(self) -> dict[str, list[dict[str, object]]]:
        """The four agency tables by name, in a fixed order."""
        return {
            "tax": self.tax,
            "civil_affairs": self.civil_affairs,
            "housing": self.housing,
            "public_security": self.public_security,
        }


@dataclass
class _Members:
    """Per-resident columns of the population while it is being drawn."""

    household: list[int] = field(default_factory=list)
    relation: list[str] = field(default_factory=list)
    age_days: list[int] = field(default_factory=list)


def _draw_household_sizes(rng: np.random.Generator, residents: int) -> np.ndarray:
    """Household sizes summing exactly to ``residents`` (the last household is cut to fit)."""
    sizes = rng.choice(_HOUSEHOLD_SIZES, size=residents // 2 + 16, p=_HOUSEHOLD_SIZE_P)
    while int(sizes.sum()) < residents:
        sizes = np.concatenate([sizes, rng.choice(_HOUSEHOLD_SIZES, size=16, p=_HOUSEHOLD_SIZE_P)])
    ends = np.cumsum(sizes)
    count = int(np.searchsorted(ends, residents)) + 1
    sizes = sizes[:count].copy()
    sizes[-1] -= int(ends[count - 1]) - residents
    return sizes


def _draw_members(rng: np.random.Generator, sizes: np.ndarray) -> _Members:
    """Relations and ages (in days on the reference date) of every household's members."""
    members = _Members()
    year = 365.25
    head_ages = np.clip(rng.normal(47.0, 14.0, size=len(sizes)), 20.0, 92.0)
    for household, (size, head_age) in enumerate(zip(sizes.tolist(), head_ages.tolist(), strict=True)):
        relations = ["head"]
        ages = [head_age]
        rest = size - 1
        if rest > 0 and rng.random() < 0.8:
            relations.append("spouse")
            ages.append(float(np.clip(head_age + rng.normal(-1.5, 4.0), 20.0, 99.0)))
            rest -= 1
        if rest > 0:
            parent_p = [0.45, 0.30, 0.25] if size >= 5 else [0.85, 0.10, 0.05]
            parents = min(rest, int(rng.choice(3, p=parent_p)))
            if head_age > 65:  # the parents of an old head are rarely alive
                parents = 0
            for _ in range(parents):
                relations.append("parent")
                ages.append(min(head_age + rng.uniform(20.0, 35.0), 99.5))
            for _ in range(rest - parents):
                relations.append("child")
                ages.append(max(head_age - rng.uniform(20.0, 40.0), rng.uniform(0.0, 3.0)))
        for relation, age in zip(relations, ages, strict=True):
            members.household.append(household)
            members.relation.append(relation)
            members.age_days.append(int(age * year))
    return members


def _draw_incomes(
    rng: np.random.Generator,
    household: np.ndarray,
    household_count: int,
    district_index: np.ndarray,
    age_years: np.ndarray,
) -> np.ndarray:
    """Annual incomes in CNY: lognormal, correlated within households, some 0, some negative."""
    n = len(household)
    district_effect = np.array([0.25 if d in _CENTRAL else -0.2 if d in _OUTER else 0.0 for d in DISTRICTS])
    household_effect = rng.normal(0.0, 0.55, size=household_count)
    log_income = 11.0 + district_effect[district_index] + household_effect[household] + rng.normal(0.0, 0.6, size=n)
    income = np.exp(log_income)
    income = np.where(age_years >= 60, income * 0.55, income)  # pensions
    top = rng.random(n) < 0.005
    boost = 1.0 + np.minimum(rng.pareto(1.5, size=n) * 4.0, 100.0)
    income = np.where(top, income * boost, income)
    category = rng.random(n)
    zero = category < 0.06
    loss = (category >= 0.06) & (category < 0.07)
    losses = -np.exp(rng.normal(9.5, 1.0, size=n))
    income = np.where(zero, 0.0, np.where(loss, losses, income))
    income = np.where(age_years < 18, 0.0, income)
    result: np.ndarray = np.rint(income).astype(np.int64)
    return result


def _assign_ids(area_codes: list[str], births: list[datetime.date], male: list[bool]) -> list[str]:
    """Unique resident ids: sequence numbers counted per (area, birth date, sex).

    The k-th person of a key gets slot ``(37 * k + offset) mod 500`` (a permutation of 0..499,
    with an offset from the area and date) so sequences look assigned rather than 000, 001, ...;
    men get the odd sequence ``2 * slot + 1`` and women the even ``2 * slot``.
    """
    counters: dict[tuple[str, datetime.date, bool], int] = {}
    ids: list[str] = []
    for area, birth, is_male in zip(area_codes, births, male, strict=True):
        key = (area, birth, is_male)
        k = counters.get(key, 0)
        if k >= 500:
            raise RuntimeError(f"more than 500 residents of one sex born {birth} in {area}")
        counters[key] = k + 1
        slot = (37 * k + int(area) + 7 * birth.toordinal()) % 500
        ids.append(make_resident_id(area, birth, 2 * slot + (1 if is_male else 0)))
    return ids


def _defective_id(rng: np.random.Generator, resident_id: str, kind: str) -> str:
    """The id as written with an injected defect of ``kind`` (see the module docstring)."""
    if kind == "legacy15":
        return resident_id[:6] + resident_id[8:17]
    if kind == "formatting":
        full = "".join(chr(0xFF10 + int(c)) if c.isdigit() else c for c in resident_id[:17])
        return "  " + full + resident_id[17].lower() + "\t"
    if kind == "bad_check":
        choices = [c for c in "0123456789X" if c != resident_id[17]]
        return resident_id[:17] + choices[int(rng.integers(len(choices)))]
    if kind == "truncated":
        return resident_id[:17]
    if kind == "missing":
        return ""
    raise ValueError(f"unknown defect kind {kind!r}")


def generate(residents: int = 100_000, seed: int = 2026) -> AgencyTables:
    """Draw a synthetic population and the four agency tables about it, deterministically.

    The same ``residents`` and ``seed`` always give identical tables. See the module docstring
    for the model, the coverage of each agency and the deliberately defective tax ids.
    """
    if residents < 0:
        raise ValueError(f"residents must be non-negative, got {residents}")
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(8)]
    rng_households, rng_members, rng_people, rng_income, rng_cover, rng_order = streams[:6]
    rng_defects = streams[6]
    if residents == 0:
        return AgencyTables(tax=[], civil_affairs=[], housing=[], public_security=[])

    # Households: size, district, locality.
    sizes = _draw_household_sizes(rng_households, residents)
    household_count = len(sizes)
    household_district = rng_households.choice(len(DISTRICTS), size=household_count, p=_DISTRICT_WEIGHTS)
    household_local = rng_households.random(household_count) < 0.88
    household_moved = rng_households.random(household_count) < 0.10
    household_registered = np.where(
        household_moved,
        rng_households.choice(len(DISTRICTS), size=household_count, p=_DISTRICT_WEIGHTS),
        household_district,
    )
    household_origin = rng_households.integers(len(_OTHER_AREA_CODES), size=household_count)

    members = _draw_members(rng_members, sizes)
    household = np.array(members.household, dtype=np.int64)
    age_days = np.array(members.age_days, dtype=np.int64)
    n = len(household)
    # Ages clipped at 20 years all fall on one birth date, which a large city would overfill
    # (500 sequence numbers per area, date and sex): spread them over the next two years, from a
    # stream of their own so that every other draw stays as it was.
    floor = int(20.0 * 365.25)
    clipped = np.flatnonzero(age_days == floor)
    age_days[clipped] += np.random.default_rng([seed, 20]).integers(0, 730, size=len(clipped))

    # People: birth dates, sex, disability, property.
    birth_np = np.datetime64(REFERENCE_DATE.isoformat(), "D") - age_days.astype("timedelta64[D]")
    births: list[datetime.date] = birth_np.tolist()
    age_years = age_days / 365.25
    relation = members.relation
    male_np = rng_people.random(n) < 0.5
    head = np.array([r == "head" for r in relation])
    spouse = np.array([r == "spouse" for r in relation])
    # Spouses have the opposite sex of the head (the head precedes the spouse).
    head_index = np.maximum.accumulate(np.where(head, np.arange(n), 0))
    male_np = np.where(spouse, ~male_np[head_index], male_np)
    disabled = rng_people.random(n) < np.clip(0.015 + 0.0011 * age_years, 0.0, 0.5)
    properties = rng_people.choice(6, size=n, p=_PROPERTY_P)
    properties = np.where(age_years < 18, 0, properties)

    district_index = household_district[household]
    income = _draw_incomes(rng_income, household, household_count, district_index, age_years)

    # Minimum living allowance: most of the bottom 3% of households by per-capita income.
    per_capita = np.bincount(household, weights=np.maximum(income, 0), minlength=household_count)
    per_capita = per_capita / sizes
    threshold = np.quantile(per_capita, 0.03)
    dibao_household = (per_capita <= threshold) & (rng_income.random(household_count) < 0.8)
    dibao = dibao_household[household]

    # Ids.
    local = household_local[household]
    registered = household_registered[household]
    area_codes = [
        AREA_CODES[DISTRICTS[reg]] if is_local else _OTHER_AREA_CODES[origin]
        for is_local, reg, origin in zip(
            local.tolist(),
            registered.tolist(),
            household_origin[household].tolist(),
            strict=True,
        )
    ]
    male = male_np.tolist()
    ids = _assign_ids(area_codes, births, male)

    household_ids = [f"HH{h:07d}" for h in range(household_count)]
    district_names = [DISTRICTS[d] for d in district_index.tolist()]
    registered_names = [
        DISTRICTS[reg] if is_local else NON_LOCAL
        for is_local, reg in zip(local.tolist(), registered.tolist(), strict=True)
    ]
    size_of = sizes[household].tolist()
    income_list = income.tolist()
    disabled_list = disabled.tolist()
    dibao_list = dibao.tolist()
    property_list = properties.tolist()
    household_list = household.tolist()
    local_list = local.tolist()

    people = [
        Resident(
            id=ids[i],
            household_id=household_ids[household_list[i]],
            district=district_names[i],
            birth=births[i],
            sex="M" if male[i] else "F",
            relation=relation[i],
            household_size=size_of[i],
            local_resident=local_list[i],
            registered_district=registered_names[i],
            annual_income=income_list[i],
            disabled=disabled_list[i],
            minimum_living_allowance=dibao_list[i],
            property_count=property_list[i],
        )
        for i in range(n)
    ]

    # Coverage: independent draws per agency.
    adult = (age_years >= 18).tolist()
    in_tax = (rng_cover.random(n) < 0.85).tolist()
    in_civil = (rng_cover.random(household_count) < 0.95)[household].tolist()
    in_housing = (rng_cover.random(n) < 0.70).tolist()

    tax: list[dict[str, object]] = [
        {"resident_id": p.id, "annual_income": p.annual_income, "tax_year": TAX_YEAR}
        for p, a, t in zip(people, adult, in_tax, strict=True)
        if a and t
    ]
    civil_affairs: list[dict[str, object]] = [
        {
            "resident_id": p.id,
            "household_id": p.household_id,
            "household_size": p.household_size,
            "relation": p.relation,
            "district": p.district,
            "disabled": int(p.disabled),
            "minimum_living_allowance": int(p.minimum_living_allowance),
        }
        for p, c in zip(people, in_civil, strict=True)
        if c
    ]
    housing: list[dict[str, object]] = [
        {"resident_id": p.id, "property_count": p.property_count, "district": p.district}
        for p, h in zip(people, in_housing, strict=True)
        if h
    ]
    public_security: list[dict[str, object]] = [
        {
            "resident_id": p.id,
            "local_resident": int(p.local_resident),
            "registered_district": p.registered_district,
            "birth_date": p.birth.isoformat(),
        }
        for p in people
    ]

    # Independent row orders.
    tax = [tax[i] for i in rng_order.permutation(len(tax)).tolist()]
    civil_affairs = [civil_affairs[i] for i in rng_order.permutation(len(civil_affairs)).tolist()]
    housing = [housing[i] for i in rng_order.permutation(len(housing)).tolist()]
    public_security = [public_security[i] for i in rng_order.permutation(len(public_security)).tolist()]

    defects = _inject_tax_defects(rng_defects, tax)
    return AgencyTables(
        tax=tax,
        civil_affairs=civil_affairs,
        housing=housing,
        public_security=public_security,
        residents=people,
        tax_id_defects=defects,
    )


def _inject_tax_defects(rng: np.random.Generator, tax: list[dict[str, object]]) -> dict[int, str]:
    """Replace the ids of ~0.1% of tax rows by defective spellings; return row -> defect kind."""
    if not tax:
        return {}
    count = max(1, round(_TAX_DEFECT_RATE * len(tax)))
    rows = sorted(rng.choice(len(tax), size=count, replace=False).tolist())
    defects: dict[int, str] = {}
    for position, row in enumerate(rows):
        resident_id = str(tax[row]["resident_id"])
        kind = TAX_ID_DEFECT_KINDS[position % len(TAX_ID_DEFECT_KINDS)]
        if kind == "legacy15" and resident_id[6:8] != "19":
            kind = "formatting"  # a legacy number can only express a 19xx birth year
        tax[row] = {**tax[row], "resident_id": _defective_id(rng, resident_id, kind)}
        defects[row] = kind
    return defects


def write_csv(tables: AgencyTables, directory: Path) -> dict[str, Path]:
    """Write one UTF-8 CSV per agency (tax.csv, civil_affairs.csv, housing.csv,
    public_security.csv) with a header row into ``directory`` (created if missing).

    Returns the path of each file by table name.
    """
    directory.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, rows in tables.tables().items():
        path = directory / f"{name}.csv"
        columns = [column for column, _ in TABLE_COLUMNS[name]]
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
        paths[name] = path
    return paths


def write_sqlite(tables: AgencyTables, path: Path, only: Collection[str] | None = None) -> None:
    """Write the agency tables (all four, or those named in ``only``) into one SQLite file, one
    table each (replacing old ones)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path)
    try:
        with connection:
            for name, rows in tables.tables().items():
                if only is not None and name not in only:
                    continue
                spec = TABLE_COLUMNS[name]
                columns = [column for column, _ in spec]
                connection.execute(f'DROP TABLE IF EXISTS "{name}"')
                definition = ", ".join(f'"{column}" {sql_type}' for column, sql_type in spec)
                connection.execute(f'CREATE TABLE "{name}" ({definition})')
                placeholders = ", ".join("?" for _ in columns)
                connection.executemany(
                    f'INSERT INTO "{name}" VALUES ({placeholders})',
                    ([row[column] for column in columns] for row in rows),
                )
    finally:
        connection.close()
