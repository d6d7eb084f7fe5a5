"""Column policy: each use checked on its own, share-reading uses, secret columns never usable."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from mpc.data.schema import DatasetSpec
from mpc.policy import Policy, PolicyError

POLICY = Policy.model_validate(
    {
        "peers": {
            "tax": {
                "purposes": ["statistics"],
                "datasets": {
                    "households": {
                        "psi": True,
                        "batch": False,
                        "columns": {"district": ["group_by"], "disabled": ["filter"], "size": ["lookup", "compare"]},
                    }
                },
            }
        }
    }
)
SECRET = {"district": "public", "disabled": "sensitive", "size": "internal", "notes": "secret"}


@dataclass(frozen=True)
class Declared:
    """A dataset as the policy reads it (its name and declaration), without data."""

    name: str
    spec: DatasetSpec


def declared(name: str) -> Declared:
    columns = {c: {"type": "int", "min": 0, "max": 10, "classification": k} for c, k in SECRET.items()}
    return Declared(
        name,
        DatasetSpec.model_validate(
            {
                "name": name,
                "source": {"kind": "csv", "path": f"{name}.csv"},
                "schema": {"id_column": "id", "columns": columns},
            }
        ),
    )


HOUSEHOLDS, INCOME = declared("households"), declared("income")


def test_each_use_is_granted_on_its_own() -> None:
    POLICY.check_dataset(
        "tax", "statistics", HOUSEHOLDS, psi=True, columns={"district": "group_by", "disabled": {"filter"}}
    )
    with pytest.raises(PolicyError, match=r"may not use column households\.district for 'filter'"):
        POLICY.check_dataset("tax", "statistics", HOUSEHOLDS, columns={"district": {"filter", "group_by"}})
    with pytest.raises(PolicyError, match="purpose 'marketing' is not allowed"):
        POLICY.check_dataset("tax", "marketing", HOUSEHOLDS)
    with pytest.raises(PolicyError, match="has no grant on dataset 'income'"):
        POLICY.check_dataset("tax", "statistics", INCOME)


def test_any_share_use_lets_a_column_be_looked_up_but_secret_never() -> None:
    POLICY.check_readable("tax", "statistics", HOUSEHOLDS, ["district", "disabled", "size"])
    with pytest.raises(PolicyError, match=r"may not use column households\.other on shares"):
        POLICY.check_readable("tax", "statistics", HOUSEHOLDS, ["other"])
    with pytest.raises(PolicyError, match="classified secret"):
        POLICY.check_readable("tax", "statistics", HOUSEHOLDS, ["notes"])


@pytest.mark.parametrize(
    ("granularity", "rows", "shown"),
    [
        (1000, 0, 0),
        (1000, 1, 1000),
        (1000, 999, 1000),
        (1000, 1000, 1000),
        (1000, 2037, 3000),
        (1, 2037, 2037),
        (500, 2037, 2500),
        (64, 128, 128),
        (64, 129, 192),
    ],
)
def test_catalogue_row_counts_are_rounded_up(granularity: int, rows: int, shown: int) -> None:
    policy = Policy.model_validate({"catalogue_row_granularity": granularity})
    assert policy.catalogue_rows(rows) == shown


def test_catalogue_row_granularity_defaults_to_1000_and_is_positive() -> None:
    assert Policy().catalogue_row_granularity == 1000
    with pytest.raises(ValueError, match="catalogue_row_granularity"):
        Policy.model_validate({"catalogue_row_granularity": 0})
