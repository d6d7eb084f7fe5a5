"""Loading in chunks: a dataset is read and validated :data:`~mpc.data.sources.readers.CHUNK_ROWS`
rows at a time, so that a large register never sits whole in memory as Python objects. Whatever
the chunk size, the dataset and its report must be the ones of a load in one piece: the ids,
the values, every refused row with its reason and its file line, and duplicates found across
chunks (the first row of an id in one chunk, its repeat in a later one).
"""

from __future__ import annotations

import datetime
import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mpc.data.ids import make_resident_id
from mpc.data.schema import DatasetSpec
from mpc.data.sources import load_dataset, readers
from mpc.data.sources.dataset import IdColumn
from mpc.data.sources.report import check_dataset

IDS = [make_resident_id("110101", datetime.date(1950 + k, 3, 4), k) for k in range(12)]
LEGACY = [i[:6] + i[8:17] for i in IDS]  # the 15-digit forms (upgraded to the 18-digit ones)
DISTRICTS = ["north", "south", "东城"]

# one source row: (id cell, age cell, district cell), or a line with the wrong field count, or a blank line
cells = st.tuples(
    st.one_of(st.sampled_from(IDS), st.sampled_from(LEGACY), st.sampled_from(["", "123", " " + IDS[0] + " "])),
    st.one_of(st.integers(0, 120).map(str), st.sampled_from(["", "-1", "4.5", "x"])),
    st.sampled_from([*DISTRICTS, "west", ""]),
)
lines = st.lists(st.one_of(cells, st.just("malformed"), st.just("blank")), max_size=40)


def spec(path: Path, duplicates: str, kind: str = "csv") -> DatasetSpec:
    source: dict[str, Any] = {"kind": kind, "path": str(path)}
    if kind == "sqlite":
        source["table"] = "people"
    return DatasetSpec.model_validate(
        {
            "name": "people",
            "source": source,
            "schema": {
                "id_column": "resident_id",
                "duplicates": duplicates,
                "columns": {
                    "age": {"type": "int", "min": 0, "max": 120},
                    "district": {"type": "category", "categories": DISTRICTS},
                },
            },
        }
    )


def write_csv(path: Path, rows: list[Any]) -> None:
    text = ["resident_id,age,district"]
    for row in rows:
        if row == "malformed":
            text.append(f"{IDS[1]},7")
        elif row == "blank":
            text.append("")
        else:
            text.append(",".join(row))
    path.write_text("\n".join(text) + "\n", encoding="utf-8")


def loaded(spec: DatasetSpec, chunk: int, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, ...]:
    """Everything a load gives, with ``chunk`` rows a chunk."""
    monkeypatch.setattr(readers, "CHUNK_ROWS", chunk)
    dataset = load_dataset(spec)
    report = check_dataset(spec)
    return (
        list(dataset.ids),
        {name: column.tolist() for name, column in dataset.columns.items()},
        dataset.values("district").tolist(),
        dataset.report.invalid_ids,
        dataset.report.duplicates,
        dataset.report.invalid_values,
        dataset.report.rows_read,
        dataset.report.upgraded_ids,
        report.problems,
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=lines, duplicates=st.sampled_from(["reject", "first_wins"]), chunk=st.integers(1, 5))
def test_a_csv_load_in_chunks_equals_the_load_in_one_piece(
    rows: list[Any], duplicates: str, chunk: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "people.csv"
    write_csv(path, rows)
    whole = loaded(spec(path, duplicates), 1_000_000, monkeypatch)
    assert loaded(spec(path, duplicates), chunk, monkeypatch) == whole


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(cells, max_size=30), duplicates=st.sampled_from(["reject", "first_wins"]), chunk=st.integers(1, 4))
def test_an_sqlite_load_in_chunks_equals_the_load_in_one_piece(
    rows: list[Any], duplicates: str, chunk: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / f"people-{chunk}-{len(rows)}.db"
    path.unlink(missing_ok=True)
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE people (resident_id TEXT, age TEXT, district TEXT)")
        db.executemany("INSERT INTO people VALUES (?, ?, ?)", rows)
    whole = loaded(spec(path, duplicates, "sqlite"), 1_000_000, monkeypatch)
    assert loaded(spec(path, duplicates, "sqlite"), chunk, monkeypatch) == whole


def test_a_duplicate_across_chunks_is_found_with_its_rows_and_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "people.csv"
    write_csv(
        path,
        [
            (IDS[0], "30", "north"),
            "blank",
            (IDS[1], "31", "south"),
            (IDS[2], "32", "north"),
            (LEGACY[0], "33", "north"),
        ],
    )
    monkeypatch.setattr(readers, "CHUNK_ROWS", 2)
    dataset = load_dataset(spec(path, "first_wins"))
    assert list(dataset.ids) == [IDS[0], IDS[1], IDS[2]]
    assert dataset.columns["age"].tolist() == [30, 31, 32]
    [repeat] = dataset.report.duplicates
    assert (repeat.row, repeat.raw) == (4, LEGACY[0])  # its raw text, not the normalised id
    assert repeat.reason == "duplicate id (rows 1, 4); policy 'first_wins' keeps row 1"
    [problem] = check_dataset(spec(path, "first_wins")).problems
    assert (problem.row, problem.line) == (4, 6)  # the header and the blank line come before it


def test_the_ids_are_one_fixed_width_array_and_read_as_text(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    write_csv(path, [(IDS[k], "30", "north") for k in (3, 1, 2)])
    dataset = load_dataset(spec(path, "reject"))
    assert isinstance(dataset.ids, IdColumn)
    assert dataset.ids.array.dtype == np.dtype("S18")
    assert dataset.ids == [IDS[3], IDS[1], IDS[2]] and dataset.ids[1:] == [IDS[1], IDS[2]]
    assert [dataset.index_of(IDS[k]) for k in (1, 2, 3, 4)] == [1, 2, 0, None]
    assert dataset.index_of(IDS[1] + "0") is None  # longer than any id held
    assert dataset.ids.where(np.array([True, False, True])) == [IDS[3], IDS[2]]
    joined = "\n".join([IDS[3], IDS[1], IDS[2]]).encode()
    assert dataset.ids.digest().hexdigest() == hashlib.sha256(joined).hexdigest()
    # every row of a category column holds the declared label itself (one string object, not one per row)
    assert all(value is dataset.labels("district")[0] for value in dataset.columns["district"].tolist())
    assert repr(dataset.ids) == "IdColumn(rows=3)"
