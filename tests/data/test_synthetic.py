"""Synthetic agency data: determinism, coverage, households, ids, CSV and SQLite round trips."""

from __future__ import annotations

import csv
import datetime
import sqlite3
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

from demo.synthetic import (
    AREA_CODES,
    DISTRICTS,
    NON_LOCAL,
    REFERENCE_DATE,
    TABLE_COLUMNS,
    TAX_ID_DEFECT_KINDS,
    TAX_YEAR,
    AgencyTables,
    generate,
    write_csv,
    write_sqlite,
)
from mpc.data.ids import InvalidIdError, normalize_column, normalize_resident_id

N = 20_000


@pytest.fixture(scope="module")
def tables() -> AgencyTables:
    return generate(N, seed=7)


def _ids(rows: list[dict[str, object]]) -> list[str]:
    return [str(row["resident_id"]) for row in rows]


def test_deterministic_for_a_seed() -> None:
    a = generate(3_000, seed=11)
    b = generate(3_000, seed=11)
    c = generate(3_000, seed=12)
    assert a == b
    assert a.tables() == b.tables()
    assert a.tax != c.tax
    assert _ids(a.public_security) != _ids(c.public_security)


def test_sizes_and_coverage(tables: AgencyTables) -> None:
    residents = tables.residents
    assert len(residents) == N
    assert len(tables.public_security) == N
    adults = {p.id for p in residents if p.age >= 18}
    assert 0.75 < len(adults) / N < 0.88
    tax_ids = set(_ids(tables.tax)) - {str(tables.tax[r]["resident_id"]) for r in tables.tax_id_defects}
    assert tax_ids <= adults
    assert len(tables.tax) / len(adults) == pytest.approx(0.85, abs=0.015)
    assert len(tables.civil_affairs) / N == pytest.approx(0.95, abs=0.015)
    assert len(tables.housing) / N == pytest.approx(0.70, abs=0.015)
    # Non-trivial intersections: every pair of agencies shares most, but not all, residents.
    sets = {name: set(_ids(rows)) for name, rows in tables.tables().items()}
    for first in sets:
        for second in sets:
            if first < second:
                common = len(sets[first] & sets[second])
                assert 0 < common < max(len(sets[first]), len(sets[second]))


def test_ids_unique_and_valid_except_documented_defects(tables: AgencyTables) -> None:
    truth = [p.id for p in tables.residents]
    truth_set = set(truth)
    assert len(truth_set) == len(truth)
    for rid in truth:
        assert normalize_resident_id(rid) == rid
    for name, rows in tables.tables().items():
        skip = tables.tax_id_defects if name == "tax" else {}
        ids = [rid for index, rid in enumerate(_ids(rows)) if index not in skip]
        assert len(set(ids)) == len(ids), name
        assert set(ids) <= truth_set, name
    assert set(_ids(tables.public_security)) == truth_set


def test_tax_defects(tables: AgencyTables) -> None:
    defects = tables.tax_id_defects
    assert len(defects) == round(0.001 * len(tables.tax))
    assert set(defects.values()) <= set(TAX_ID_DEFECT_KINDS)
    assert set(defects.values()) == set(TAX_ID_DEFECT_KINDS)  # every kind occurs at this size
    truth = {p.id for p in tables.residents}
    for row, kind in defects.items():
        raw = str(tables.tax[row]["resident_id"])
        if kind in ("legacy15", "formatting"):
            assert raw not in truth
            assert normalize_resident_id(raw) in truth
            if kind == "legacy15":
                assert len(raw) == 15
        else:
            with pytest.raises(InvalidIdError):
                normalize_resident_id(raw)
    ids, report = normalize_column(_ids(tables.tax), "resident_id")
    invalid = {row for row, kind in defects.items() if kind in ("bad_check", "truncated", "missing")}
    assert {r.row for r in report.invalid} == invalid
    assert report.upgraded == sum(kind == "legacy15" for kind in defects.values())
    assert report.duplicates == []
    assert all(rid in truth for rid in ids if rid is not None)


def test_household_consistency(tables: AgencyTables) -> None:
    households: dict[str, list[int]] = defaultdict(list)
    for index, person in enumerate(tables.residents):
        households[person.household_id].append(index)
    sizes: Counter[int] = Counter()
    for members in households.values():
        people = [tables.residents[i] for i in members]
        assert 1 <= len(people) <= 6
        assert {p.household_size for p in people} == {len(people)}
        assert len({p.district for p in people}) == 1
        assert len({p.local_resident for p in people}) == 1
        assert len({p.minimum_living_allowance for p in people}) == 1
        relations = Counter(p.relation for p in people)
        assert relations["head"] == 1
        assert relations["spouse"] <= 1
        assert relations["parent"] <= 2
        head = next(p for p in people if p.relation == "head")
        assert head.age >= 18
        for p in people:
            if p.relation == "spouse":
                assert p.sex != head.sex
                assert p.age >= 18
            if p.relation == "child":
                assert p.age < head.age
            if p.relation == "parent":
                assert p.age > head.age
        sizes[len(people)] += 1
    # Size distribution skewed to 2-4 members.
    total = sum(sizes.values())
    assert (sizes[2] + sizes[3] + sizes[4]) / total > 0.65
    assert sizes[6] < sizes[5] < sizes[4]
    # Civil affairs covers whole households and agrees with the ground truth.
    by_id = {p.id: p for p in tables.residents}
    per_household: Counter[str] = Counter()
    for row in tables.civil_affairs:
        person = by_id[str(row["resident_id"])]
        assert row["household_id"] == person.household_id
        assert row["household_size"] == person.household_size
        assert row["district"] == person.district
        assert row["relation"] == person.relation
        per_household[person.household_id] += 1
    for household_id, count in per_household.items():
        assert count == len(households[household_id])


def test_districts_and_people(tables: AgencyTables) -> None:
    assert len(DISTRICTS) == 16
    used = Counter(p.district for p in tables.residents)
    assert set(used) == set(DISTRICTS)
    for person in tables.residents:
        assert datetime.date(1900, 1, 1) <= person.birth <= REFERENCE_DATE
        assert 0 <= person.age <= 100
        assert int(person.id[16]) % 2 == (1 if person.sex == "M" else 0)
        assert person.id[6:14] == person.birth.strftime("%Y%m%d")
        if person.local_resident:
            assert person.registered_district in DISTRICTS
            assert person.id[:6] == AREA_CODES[person.registered_district]
        else:
            assert person.registered_district == NON_LOCAL
            assert person.id[:6] not in AREA_CODES.values()
    local = np.mean([p.local_resident for p in tables.residents])
    assert 0.8 < local < 0.95
    moved = np.mean([p.registered_district != p.district for p in tables.residents if p.local_resident])
    assert 0.03 < moved < 0.2


def test_incomes(tables: AgencyTables) -> None:
    adults = [p for p in tables.residents if p.age >= 18]
    minors = [p for p in tables.residents if p.age < 18]
    assert minors
    assert all(p.annual_income == 0 for p in minors)
    incomes = np.array([p.annual_income for p in adults])
    assert 0.03 < np.mean(incomes == 0) < 0.09
    assert 0.005 < np.mean(incomes < 0) < 0.02
    positive = incomes[incomes > 0]
    assert 30_000 < np.median(positive) < 100_000
    assert np.mean(positive) > 1.2 * np.median(positive)  # long right tail
    assert positive.max() > 20 * np.median(positive)
    # Incomes correlate within households: spouses' log incomes correlate positively.
    by_household: dict[str, dict[str, int]] = defaultdict(dict)
    for p in adults:
        if p.relation in ("head", "spouse") and p.annual_income > 0:
            by_household[p.household_id][p.relation] = p.annual_income
    pairs = np.array([(h["head"], h["spouse"]) for h in by_household.values() if len(h) == 2], dtype=float)
    correlation = np.corrcoef(np.log(pairs[:, 0]), np.log(pairs[:, 1]))[0, 1]
    assert correlation > 0.25
    for row in tables.tax:
        assert row["tax_year"] == TAX_YEAR
        assert isinstance(row["annual_income"], int)


def test_flags_and_property(tables: AgencyTables) -> None:
    residents = tables.residents
    assert 0.03 < np.mean([p.disabled for p in residents]) < 0.1
    assert 0.005 < np.mean([p.minimum_living_allowance for p in residents]) < 0.05
    counts = Counter(p.property_count for p in residents)
    assert set(counts) <= set(range(6))
    assert (counts[0] + counts[1]) / len(residents) > 0.75
    assert all(p.property_count == 0 for p in residents if p.age < 18)
    for row in tables.housing:
        assert row["property_count"] in range(6)
    for row in tables.civil_affairs:
        assert row["disabled"] in (0, 1)
        assert row["minimum_living_allowance"] in (0, 1)
        assert row["relation"] in ("head", "spouse", "child", "parent")


def test_columns_match_schema(tables: AgencyTables) -> None:
    for name, rows in tables.tables().items():
        columns = [column for column, _ in TABLE_COLUMNS[name]]
        assert all(list(row) == columns for row in rows)


def _as_text(rows: list[dict[str, object]]) -> list[dict[str, str]]:
    return [{key: str(value) for key, value in row.items()} for row in rows]


def test_csv_round_trip(tmp_path: Path) -> None:
    small = generate(2_000, seed=3)
    paths = write_csv(small, tmp_path / "out")
    assert {name: path.name for name, path in paths.items()} == {
        "tax": "tax.csv",
        "civil_affairs": "civil_affairs.csv",
        "housing": "housing.csv",
        "public_security": "public_security.csv",
    }
    for name, rows in small.tables().items():
        with paths[name].open(encoding="utf-8", newline="") as handle:
            read = list(csv.DictReader(handle))
        assert read == _as_text(rows)
    # The defective tax ids (full-width digits, whitespace, empty) survive the CSV intact.
    with paths["tax"].open(encoding="utf-8", newline="") as handle:
        tax_ids = [row["resident_id"] for row in csv.DictReader(handle)]
    for row in small.tax_id_defects:
        assert tax_ids[row] == small.tax[row]["resident_id"]


def test_sqlite_round_trip(tmp_path: Path) -> None:
    small = generate(2_000, seed=3)
    path = tmp_path / "agencies.sqlite"
    write_sqlite(small, path)
    write_sqlite(small, path)  # rewriting replaces, never appends
    connection = sqlite3.connect(path)
    try:
        for name, rows in small.tables().items():
            columns = [column for column, _ in TABLE_COLUMNS[name]]
            quoted = ", ".join(f'"{c}"' for c in columns)
            read = connection.execute(f'SELECT {quoted} FROM "{name}" ORDER BY rowid').fetchall()
            assert read == [tuple(row[c] for c in columns) for row in rows]
    finally:
        connection.close()


def test_edge_sizes() -> None:
    empty = generate(0)
    assert empty.tables() == {"tax": [], "civil_affairs": [], "housing": [], "public_security": []}
    one = generate(1, seed=5)
    assert len(one.residents) == len(one.public_security) == 1
    assert one.residents[0].relation == "head"
    with pytest.raises(ValueError, match="non-negative"):
        generate(-1)


def test_default_size() -> None:
    full = generate()
    assert len(full.public_security) == 100_000
