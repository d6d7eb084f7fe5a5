"""The gateway's records: researchers (API tokens stored hashed), projects (approved purpose, the
datasets and columns they may touch), privacy budgets, and jobs with their released cells.

SQLite (a file under the gateway's state directory, the embedded default) or PostgreSQL
(``postgresql://...``). Spending is one transaction that checks and debits both budgets, under
``BEGIN IMMEDIATE`` (SQLite) or row locks (PostgreSQL ``SELECT ... FOR UPDATE``), so concurrent
queries can never overspend.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS researchers (name TEXT PRIMARY KEY, token_hash TEXT NOT NULL UNIQUE,
       epsilon_total DOUBLE PRECISION NOT NULL, epsilon_spent DOUBLE PRECISION NOT NULL DEFAULT 0,
       created DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS projects (name TEXT PRIMARY KEY, purpose TEXT NOT NULL, scope TEXT NOT NULL,
       epsilon_total DOUBLE PRECISION NOT NULL, epsilon_spent DOUBLE PRECISION NOT NULL DEFAULT 0)""",
    """CREATE TABLE IF NOT EXISTS members (researcher TEXT NOT NULL REFERENCES researchers(name),
       project TEXT NOT NULL REFERENCES projects(name), PRIMARY KEY (researcher, project))""",
    """CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, researcher TEXT NOT NULL, project TEXT NOT NULL,
       sql TEXT NOT NULL, epsilon DOUBLE PRECISION NOT NULL, status TEXT NOT NULL, progress DOUBLE PRECISION NOT NULL,
       result TEXT, error TEXT, created DOUBLE PRECISION NOT NULL, finished DOUBLE PRECISION)""",
]
EPSILON_SLACK = 1e-9  # float sums of equal shares must not refuse the last one


class StoreError(ValueError):
    """A record that does not exist or cannot be created as asked."""


class BudgetExceeded(RuntimeError):
    """A query would spend more than a budget has left; says what is left."""

    def __init__(self, message: str, researcher_left: float, project_left: float) -> None:
        super().__init__(message)
        self.researcher_left, self.project_left = researcher_left, project_left


@dataclass(frozen=True)
class Project:
    name: str
    purpose: str
    scope: dict[str, list[str]]  # "party.dataset" -> columns the project may touch
    epsilon_total: float
    epsilon_spent: float

    @property
    def epsilon_left(self) -> float:
        return max(0.0, self.epsilon_total - self.epsilon_spent)


@dataclass(frozen=True)
class Budget:
    researcher_left: float
    project_left: float


@dataclass
class Job:
    id: str
    researcher: str
    project: str
    sql: str
    epsilon: float
    status: str  # queued, running, done, failed
    progress: float
    result: dict[str, Any] | None = None
    error: str | None = None
    created: float = field(default_factory=time.time)
    finished: float | None = None


def token_hash(token: str) -> str:
    """Tokens are 256-bit random strings: a plain SHA-256 suffices to store them (no password to guess)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Store:
    def __init__(self, url: str) -> None:
        """``url``: a SQLite file path, or ``postgresql://...`` for PostgreSQL."""
        self.url = url
        self.postgres = url.startswith(("postgresql://", "postgres://"))
        self._lock = threading.Lock()
        if not self.postgres:
            Path(url).parent.mkdir(parents=True, exist_ok=True)
        with self._transaction() as cur:
            for statement in _SCHEMA:
                cur.execute(statement)

    # ------------------------------------------------------------------ plumbing
    @contextmanager
    def _transaction(self, immediate: bool = False) -> Iterator[Any]:
        """A cursor inside one transaction (committed on success); ``immediate``: take the write
        lock at once (SQLite), so that check-then-update cannot interleave."""
        if self.postgres:
            import psycopg

            with psycopg.connect(self.url, autocommit=False) as conn, conn.cursor() as cur:
                yield _Cursor(cur, postgres=True)
                conn.commit()
            return
        with self._lock:
            lite = sqlite3.connect(self.url, timeout=30, isolation_level=None)
            try:
                lite.execute("PRAGMA foreign_keys = ON")
                lite.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
                try:
                    yield _Cursor(lite.cursor(), postgres=False)
                    lite.execute("COMMIT")
                except BaseException:
                    lite.execute("ROLLBACK")
                    raise
            finally:
                lite.close()

    # ------------------------------------------------------------------ researchers and projects
    def add_researcher(self, name: str, epsilon_total: float) -> str:
        """Create a researcher; returns its API token (shown once, stored hashed)."""
        if epsilon_total < 0:
            raise StoreError("a budget is not negative")
        token = secrets.token_urlsafe(32)
        with self._transaction() as cur:
            if cur.one("SELECT name FROM researchers WHERE name = ?", (name,)):
                raise StoreError(f"researcher {name!r} exists")
            cur.execute(
                "INSERT INTO researchers (name, token_hash, epsilon_total, created) VALUES (?, ?, ?, ?)",
                (name, token_hash(token), epsilon_total, time.time()),
            )
        return token

    def rotate_token(self, name: str) -> str:
        """A new API token for ``name`` (shown once); the old one stops working at once."""
        token = secrets.token_urlsafe(32)
        self._set_token(name, token_hash(token))
        return token

    def revoke_token(self, name: str) -> None:
        """``name``'s token stops working; no token signs in until one is rotated in."""
        self._set_token(name, "revoked:" + secrets.token_hex(32))  # no token hashes to this

    def _set_token(self, name: str, stored: str) -> None:
        with self._transaction() as cur:
            if cur.one("SELECT name FROM researchers WHERE name = ?", (name,)) is None:
                raise StoreError(f"no researcher {name!r}")
            cur.execute("UPDATE researchers SET token_hash = ? WHERE name = ?", (stored, name))

    def totals(self, researcher: str, project: str) -> tuple[float, float]:
        """The researcher's and the project's whole budgets (ε)."""
        with self._transaction() as cur:
            mine = cur.one("SELECT epsilon_total FROM researchers WHERE name = ?", (researcher,))
            theirs = cur.one("SELECT epsilon_total FROM projects WHERE name = ?", (project,))
        if mine is None or theirs is None:
            raise StoreError(f"no budget for {researcher!r} in {project!r}")
        return float(mine[0]), float(theirs[0])

    def researcher_for(self, token: str) -> str | None:
        with self._transaction() as cur:
            row = cur.one("SELECT name FROM researchers WHERE token_hash = ?", (token_hash(token),))
        return None if row is None else str(row[0])

    def add_project(self, name: str, purpose: str, epsilon_total: float, scope: dict[str, list[str]]) -> None:
        if epsilon_total < 0:
            raise StoreError("a budget is not negative")
        with self._transaction() as cur:
            if cur.one("SELECT name FROM projects WHERE name = ?", (name,)):
                raise StoreError(f"project {name!r} exists")
            cur.execute(
                "INSERT INTO projects (name, purpose, scope, epsilon_total) VALUES (?, ?, ?, ?)",
                (name, purpose, json.dumps(scope, sort_keys=True), epsilon_total),
            )

    def add_member(self, researcher: str, project: str) -> None:
        with self._transaction() as cur:
            if not cur.one("SELECT name FROM researchers WHERE name = ?", (researcher,)):
                raise StoreError(f"no researcher {researcher!r}")
            if not cur.one("SELECT name FROM projects WHERE name = ?", (project,)):
                raise StoreError(f"no project {project!r}")
            if not cur.one(
                "SELECT researcher FROM members WHERE researcher = ? AND project = ?", (researcher, project)
            ):
                cur.execute("INSERT INTO members (researcher, project) VALUES (?, ?)", (researcher, project))

    def projects_of(self, researcher: str) -> list[Project]:
        with self._transaction() as cur:
            rows = cur.all(
                "SELECT p.name, p.purpose, p.scope, p.epsilon_total, p.epsilon_spent FROM projects p "
                "JOIN members m ON m.project = p.name WHERE m.researcher = ? ORDER BY p.name",
                (researcher,),
            )
        return [Project(r[0], r[1], json.loads(r[2]), float(r[3]), float(r[4])) for r in rows]

    def project_for(self, researcher: str, project: str) -> Project:
        """The project, if the researcher is a member (else StoreError: no such project for you)."""
        found = [p for p in self.projects_of(researcher) if p.name == project]
        if not found:
            raise StoreError(f"researcher {researcher!r} is not a member of a project {project!r}")
        return found[0]

    def researchers(self) -> list[tuple[str, float, float]]:
        with self._transaction() as cur:
            return [
                (r[0], float(r[1]), float(r[2]))
                for r in cur.all("SELECT name, epsilon_total, epsilon_spent FROM researchers ORDER BY name", ())
            ]

    # ------------------------------------------------------------------ budgets
    def budget(self, researcher: str, project: str) -> Budget:
        with self._transaction() as cur:
            return self._budget(cur, researcher, project, lock=False)

    def _budget(self, cur: _Cursor, researcher: str, project: str, lock: bool) -> Budget:
        suffix = " FOR UPDATE" if lock and self.postgres else ""
        mine = cur.one("SELECT epsilon_total, epsilon_spent FROM researchers WHERE name = ?" + suffix, (researcher,))
        theirs = cur.one("SELECT epsilon_total, epsilon_spent FROM projects WHERE name = ?" + suffix, (project,))
        if mine is None or theirs is None:
            raise StoreError(f"no budget for {researcher!r} in {project!r}")
        return Budget(max(0.0, float(mine[0]) - float(mine[1])), max(0.0, float(theirs[0]) - float(theirs[1])))

    def spend(self, researcher: str, project: str, epsilon: float) -> Budget:
        """Debit both budgets at once, or refuse with what is left (BudgetExceeded)."""
        if epsilon <= 0:
            raise StoreError("a query costs a positive epsilon")
        with self._transaction(immediate=True) as cur:
            left = self._budget(cur, researcher, project, lock=True)
            if epsilon > left.researcher_left + EPSILON_SLACK or epsilon > left.project_left + EPSILON_SLACK:
                raise BudgetExceeded(
                    f"the query costs epsilon {epsilon:g}; left: researcher {left.researcher_left:g}, "
                    f"project {left.project_left:g}",
                    left.researcher_left,
                    left.project_left,
                )
            cur.execute(
                "UPDATE researchers SET epsilon_spent = epsilon_spent + ? WHERE name = ?", (epsilon, researcher)
            )
            cur.execute("UPDATE projects SET epsilon_spent = epsilon_spent + ? WHERE name = ?", (epsilon, project))
            return Budget(left.researcher_left - epsilon, left.project_left - epsilon)

    def refund(self, researcher: str, project: str, epsilon: float) -> None:
        """Give back what a query that released nothing had reserved."""
        with self._transaction(immediate=True) as cur:
            cur.execute(
                "UPDATE researchers SET epsilon_spent = epsilon_spent - ? WHERE name = ?", (epsilon, researcher)
            )
            cur.execute("UPDATE projects SET epsilon_spent = epsilon_spent - ? WHERE name = ?", (epsilon, project))

    # ------------------------------------------------------------------ jobs
    def add_job(self, job: Job) -> None:
        with self._transaction() as cur:
            cur.execute(
                "INSERT INTO jobs (id, researcher, project, sql, epsilon, status, progress, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (job.id, job.researcher, job.project, job.sql, job.epsilon, job.status, job.progress, job.created),
            )

    def update_job(
        self,
        job_id: str,
        *,
        status: str | None = None,
        progress: float | None = None,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        sets, values = [], []
        for column, value in (
            ("status", status),
            ("progress", progress),
            ("result", None if result is None else json.dumps(result)),
            ("error", error),
        ):
            if value is not None:
                sets.append(f"{column} = ?")
                values.append(value)
        if status in ("done", "failed"):
            sets.append("finished = ?")
            values.append(time.time())
        with self._transaction() as cur:
            cur.execute(f"UPDATE jobs SET {', '.join(sets)} WHERE id = ?", (*values, job_id))

    def job(self, job_id: str, researcher: str) -> Job:
        with self._transaction() as cur:
            row = cur.one(
                "SELECT id, researcher, project, sql, epsilon, status, progress, result, error, created, finished "
                "FROM jobs WHERE id = ? AND researcher = ?",
                (job_id, researcher),
            )
        if row is None:
            raise StoreError(f"no job {job_id!r} of yours")
        return _job(row)

    def jobs_of(self, researcher: str, limit: int = 50) -> list[Job]:
        with self._transaction() as cur:
            rows = cur.all(
                "SELECT id, researcher, project, sql, epsilon, status, progress, result, error, created, finished "
                "FROM jobs WHERE researcher = ? ORDER BY created DESC LIMIT ?",
                (researcher, limit),
            )
        return [_job(r) for r in rows]


def _job(row: Sequence[Any]) -> Job:
    return Job(
        str(row[0]),
        str(row[1]),
        str(row[2]),
        str(row[3]),
        float(row[4]),
        str(row[5]),
        float(row[6]),
        json.loads(row[7]) if row[7] else None,
        row[8],
        float(row[9]),
        None if row[10] is None else float(row[10]),
    )


class _Cursor:
    """``?`` placeholders on both backends (psycopg uses ``%s``)."""

    def __init__(self, cursor: Any, postgres: bool) -> None:
        self._cursor, self._postgres = cursor, postgres

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._cursor.execute(sql.replace("?", "%s") if self._postgres else sql, tuple(params))

    def one(self, sql: str, params: Sequence[Any]) -> Sequence[Any] | None:
        self.execute(sql, params)
        row: Sequence[Any] | None = self._cursor.fetchone()
        return row

    def all(self, sql: str, params: Sequence[Any]) -> list[Sequence[Any]]:
        self.execute(sql, params)
        return list(self._cursor.fetchall())
