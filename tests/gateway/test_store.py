"""The gateway's records on SQLite and PostgreSQL: tokens stored hashed, projects and members,
budgets spent atomically (concurrent queries never overspend), jobs."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from parties.gateway.store import BudgetExceeded, Job, Store, StoreError, token_hash


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        yield Store(str(tmp_path / "gateway.sqlite"))
        return
    dsn = request.getfixturevalue("pg_dsn")
    schema = f"gw_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield Store(f"{dsn}?options=-csearch_path%3D{schema}")
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def test_tokens_are_stored_hashed_and_authenticate(store: Store) -> None:
    token = store.add_researcher("alice", 3.0)
    assert store.researcher_for(token) == "alice" and store.researcher_for(token + "x") is None
    if not store.postgres:
        import sqlite3

        stored = sqlite3.connect(store.url).execute("SELECT token_hash FROM researchers").fetchone()[0]
        assert stored == token_hash(token) and token not in stored
    with pytest.raises(StoreError, match="exists"):
        store.add_researcher("alice", 1.0)


def test_projects_members_and_budgets(store: Store) -> None:
    store.add_researcher("bob", 2.0)
    store.add_project("health", "statistics", 1.5, {"tax.income": ["annual_income"]})
    with pytest.raises(StoreError, match="not a member"):
        store.project_for("bob", "health")
    store.add_member("bob", "health")
    project = store.project_for("bob", "health")
    assert (project.purpose, project.scope, project.epsilon_left) == (
        "statistics",
        {"tax.income": ["annual_income"]},
        1.5,
    )
    assert store.spend("bob", "health", 1.0).project_left == pytest.approx(0.5)
    with pytest.raises(BudgetExceeded) as refused:
        store.spend("bob", "health", 0.6)
    assert refused.value.researcher_left == pytest.approx(1.0) and refused.value.project_left == pytest.approx(0.5)
    store.refund("bob", "health", 1.0)
    assert store.budget("bob", "health").project_left == pytest.approx(1.5)


def test_concurrent_spending_never_overspends(store: Store) -> None:
    store.add_researcher("carol", 100.0)
    store.add_project("census", "statistics", 1.0, {})
    store.add_member("carol", "census")
    granted, refused = [], []

    def spend() -> None:
        try:
            store.spend("carol", "census", 0.1)
            granted.append(1)
        except BudgetExceeded:
            refused.append(1)

    threads = [threading.Thread(target=spend) for _ in range(25)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (len(granted), len(refused)) == (10, 15)
    assert store.budget("carol", "census").project_left == pytest.approx(0.0, abs=1e-9)


def test_jobs(store: Store) -> None:
    store.add_researcher("dan", 1.0)
    store.add_project("p", "statistics", 1.0, {})
    job = Job("j1", "dan", "p", "SELECT COUNT(*) FROM a.t", 0.5, "queued", 0.0)
    store.add_job(job)
    store.update_job("j1", status="done", progress=1.0, result={"cells": [1]})
    got = store.job("j1", "dan")
    assert (got.status, got.progress, got.result, got.finished is not None) == ("done", 1.0, {"cells": [1]}, True)
    with pytest.raises(StoreError):
        store.job("j1", "eve")  # another researcher's job is not found
    assert [j.id for j in store.jobs_of("dan")] == ["j1"]
