"""Loading a declared dataset: read its source, then validate and build the dataset."""

from __future__ import annotations

from pathlib import Path

from mpc.data.schema import CsvSource, DatasetSpec, SqliteSource
from mpc.data.sources.dataset import Dataset
from mpc.data.sources.readers import RawSource, read_csv, read_postgres, read_sqlite
from mpc.data.sources.validation import build_dataset

__all__ = [
    "load_dataset",
    "read_source",
]


def read_source(spec: DatasetSpec, base_dir: Path | None = None) -> RawSource:
    """``spec``'s source, to be read chunk by chunk, unvalidated (see :func:`load_dataset` for
    paths and errors)."""
    source = spec.source
    if isinstance(source, CsvSource):
        return read_csv(spec, source, base_dir)
    if isinstance(source, SqliteSource):
        return read_sqlite(spec, source, base_dir)
    return read_postgres(spec, source)


def load_dataset(spec: DatasetSpec, base_dir: Path | None = None) -> Dataset:
    """Read, validate and load every row of ``spec``'s source.

    The source is read in chunks and each chunk validated as it comes, so what the load holds is
    the loaded rows in arrays (the ids at a fixed width, the values as integers), not the raw rows.

    Relative CSV and SQLite paths resolve against ``base_dir`` (the current directory when
    None). PostgreSQL tables are read in one read-only transaction through a server-side cursor,
    with every identifier quoted by :class:`psycopg.sql.Identifier`.

    Rows are checked in this order, and a rejected row is recorded in exactly one list of the
    report and excluded from the dataset:

    1. **Id** (``report.invalid_ids``): normalised by :func:`mpc.data.ids.normalize_column`
       according to ``schema.id_kind``; a missing or invalid id is recorded with the
       normaliser's reason. Invalid ids are never loaded, matched or silently dropped.
    2. **Duplicates** (``report.duplicates``), compared after normalisation among rows with a
       valid id. With ``duplicates = "reject"`` every row of a repeated id is excluded and
       recorded (the data cannot say which row is right). With ``"first_wins"`` the first row in
       source order is kept and each later one recorded; if that first row then fails step 3, the
       id is absent altogether -- a later row never stands in for it. (Source order is file order
       for CSV, and the database's scan order for SQLite and PostgreSQL, which is not guaranteed:
       prefer ``"reject"`` for database sources.)
    3. **Values** (``report.invalid_values``, one entry per bad column): ``int`` values must be
       integers written in ASCII digits with an optional sign (surrounding whitespace allowed; no
       blanks, decimal points, exponents or underscores; database integers and integral decimals
       accepted, floats not) and lie within ``[min, max]`` -- out-of-bounds values are errors,
       never clamped; ``bool`` accepts 0/1/true/false (any case) and database booleans;
       ``category`` must be a non-empty printable string of at most 64 characters after
       stripping surrounding whitespace (database integers are accepted as their decimal text)
       and one of the column's declared ``categories`` -- a value outside the declared domain is
       an error, never added to it.
       A CSV row whose field count differs from the header's is recorded here with column ``""``.

    Raises :class:`DataSourceError` when the source cannot be read as declared: a missing file or
    table, an unreachable database, a declared column (or the id column) absent from the source
    (the message names every missing column), a column repeated in a CSV header, an empty CSV
    file, or a file that does not decode. Source columns not declared in the schema are ignored.
    """
    return build_dataset(spec, read_source(spec, base_dir))
