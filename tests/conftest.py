"""Shared fixtures: Paillier key pairs are slow to generate, so each size is made once; the local
PostgreSQL server (tests that need it skip without it, except under CI=true, where they fail)."""

from __future__ import annotations

import os

import psycopg
import pytest
from hypothesis import HealthCheck, settings

from mpc.crypto.paillier import PaillierPrivateKey, PaillierPublicKey, generate_keypair

settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=60)
# Under CI the examples are derived from each test's name (derandomize): a red run is reproduced
# by running it again; locally every run explores new examples (and prints a seed on failure).
settings.register_profile("ci", parent=settings.get_profile("default"), derandomize=True, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") == "true" else "default")


@pytest.fixture(scope="session")
def keypair_1024() -> tuple[PaillierPublicKey, PaillierPrivateKey]:
    return generate_keypair(1024)


@pytest.fixture(scope="session")
def keypair_2048() -> tuple[PaillierPublicKey, PaillierPrivateKey]:
    return generate_keypair(2048)


PG_DSNS = (
    "postgresql://postgres@127.0.0.1:5432/test",
    "postgresql://root@127.0.0.1:5432/test",
)


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    """A DSN for the local PostgreSQL server; skip (or fail when CI=true) if it is unreachable."""
    errors: list[str] = []
    for dsn in PG_DSNS:
        try:
            with psycopg.connect(dsn, connect_timeout=5) as connection:
                connection.execute("SELECT 1")
            return dsn
        except psycopg.Error as error:
            user = dsn.split("//", 1)[1].split("@", 1)[0]
            lines = str(error).strip().splitlines()
            errors.append(f"as {user}: {lines[0] if lines else type(error).__name__}")
    message = f"PostgreSQL not reachable at 127.0.0.1:5432: {'; '.join(errors)}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)
