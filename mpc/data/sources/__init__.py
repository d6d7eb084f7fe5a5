"""Loading a declared dataset into memory, validated row by row.

:func:`load_dataset` reads every row of a CSV file, an SQLite table or a PostgreSQL table,
normalises the id column with :func:`mpc.data.ids.normalize_column`, parses each declared column
strictly, and returns a :class:`Dataset` whose rows are exactly the rows that passed every check,
together with a :class:`LoadReport` that accounts for every row that did not.

Problems with the *source* (file or table missing, database unreachable, declared column absent,
undecodable file) raise :class:`DataSourceError`. Problems with *rows* never raise: each rejected
row is recorded with its 1-based data row number (the header is not counted) and excluded.

The report holds raw values from the agency's own data (including raw ids); it is meant for the
owning agency's operators and must not be sent to other parties. :meth:`Dataset.schema_view` is
the part that may be shown to others: names, types, bounds and classifications, never values.

The package has one module per job:

* :mod:`mpc.data.sources.dataset` -- :class:`Dataset`, :class:`LoadReport`, :class:`RowError`,
  :class:`DataSourceError`.
* :mod:`mpc.data.sources.readers` -- one reader per source (CSV, SQLite, PostgreSQL) into raw rows.
* :mod:`mpc.data.sources.validation` -- parsing values and building the :class:`Dataset`.
* :mod:`mpc.data.sources.load` -- :func:`load_dataset`, which reads a source and builds its dataset.

This module re-exports their public names. ``POSTGRES_CONNECT_TIMEOUT_S`` is read where it is
used, in :mod:`mpc.data.sources.readers`: to change it, set it there.
"""

from __future__ import annotations

from mpc.data.sources.dataset import Dataset, DataSourceError, LoadReport, RowError
from mpc.data.sources.load import load_dataset
from mpc.data.sources.readers import POSTGRES_CONNECT_TIMEOUT_S as POSTGRES_CONNECT_TIMEOUT_S

__all__ = [
    "DataSourceError",
    "Dataset",
    "LoadReport",
    "RowError",
    "load_dataset",
]
