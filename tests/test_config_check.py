"""``parties.owner.check``: a table of broken grants and certificates, each named with its key and
the nearest valid name."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from parties.config import PartyConfig, format_validation_error
from parties.owner.check import certificate_problems, grant_problems
from parties.pki import Pki

BASE: dict[str, Any] = {
    "party": {"name": "tax", "state_dir": "state"},
    "tls": {"ca": "ca.pem", "cert": "tax.pem", "key": "tax.key", "crl": "crl.pem"},
    "datasets": [
        {
            "name": "income",
            "source": {"kind": "csv", "path": "income.csv"},
            "schema": {
                "id_column": "resident_id",
                "columns": {
                    "annual_income": {"type": "int", "min": 0, "max": 10**9},
                    "pin": {"type": "int", "min": 0, "max": 9999, "classification": "secret"},
                },
            },
        }
    ],
    "predicates": [],
    "policy": {
        "peers": {
            "housing": {
                "purposes": ["statistics"],
                "co_parties": ["civil-affairs"],
                "datasets": {"income": {"psi": True, "batch": False, "columns": {"annual_income": ["lookup"]}}},
            }
        }
    },
}


def config_with(change: Any) -> PartyConfig:
    raw = copy.deepcopy(BASE)
    change(raw)
    return PartyConfig.model_validate(raw)


def grant(raw: dict[str, Any]) -> dict[str, Any]:
    return raw["policy"]["peers"]["housing"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda raw: None, None),
        (
            lambda raw: raw["policy"]["peers"].update({"housng": raw["policy"]["peers"].pop("housing")}),
            "policy.peers.housng: no party 'housng' in the coordinator's directory (did you mean 'housing'?)",
        ),
        (
            lambda raw: grant(raw).update({"datasets": {"incme": {"psi": True, "batch": False}}}),
            "policy.peers.housing.datasets.incme: no dataset 'incme' (did you mean 'income'?)",
        ),
        (
            lambda raw: grant(raw)["datasets"]["income"].update({"columns": {"anual_income": ["lookup"]}}),
            "policy.peers.housing.datasets.income.columns.anual_income: dataset 'income' has no column "
            "'anual_income' (did you mean 'annual_income'?)",
        ),
        (
            lambda raw: grant(raw)["datasets"]["income"].update({"columns": {"pin": ["lookup"]}}),
            "policy.peers.housing.datasets.income.columns.pin: the column is classified secret",
        ),
        (
            lambda raw: grant(raw).update({"co_parties": ["civil-afairs"]}),
            "policy.peers.housing.co_parties: no party 'civil-afairs' in the coordinator's directory "
            "(did you mean 'civil-affairs'?)",
        ),
        (
            lambda raw: grant(raw).update({"predicates": ["local"]}),
            "policy.peers.housing.predicates: no predicate 'local' (known: none)",
        ),
    ],
)
def test_every_grant_is_checked_against_the_schema_and_the_directory(change: Any, problem: str | None) -> None:
    problems = grant_problems(config_with(change), directory={"tax", "housing", "civil-affairs", "coordinator"})
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problems[0].message.startswith(problem), problems


def test_a_grant_without_an_explicit_batch_choice_does_not_load(tmp_path: Path) -> None:
    """Whole-table access is a choice the owner states in every grant: omitted, the configuration
    is refused when it loads (``check`` and ``serve`` alike), naming the grant."""
    with pytest.raises(ValidationError) as refused:
        config_with(lambda raw: grant(raw)["datasets"]["income"].pop("batch"))
    message = format_validation_error(refused.value, "tax.toml")
    assert "policy.peers.housing.datasets.income: Value error, batch: state it (true or false)" in message


def test_the_certificate_name_expiry_and_revocation(tmp_path: Path) -> None:
    pki = Pki.init(tmp_path / "pki")
    good = pki.issue("tax")
    soon = pki.issue("soon", not_after=datetime.now(UTC) + timedelta(days=3))
    past = pki.issue(
        "old", not_before=datetime.now(UTC) - timedelta(days=9), not_after=datetime.now(UTC) - timedelta(days=1)
    )

    def checked(cert: Path, name: str = "tax", revoked: set[int] | None = None) -> list[str]:
        raw = copy.deepcopy(BASE)
        raw["party"]["name"] = name
        raw["tls"]["cert"] = str(cert)
        return [p.message for p in certificate_problems(PartyConfig.model_validate(raw), revoked)]

    assert checked(good.cert_path) == []
    assert checked(good.cert_path, "housing") == ["tls.cert: issued to 'tax', not to party.name 'housing'"]
    assert "expires in 3 days" in checked(soon.cert_path, "soon")[0]
    assert "expired on" in checked(past.cert_path, "old")[0]
    assert "is revoked by the CRL" in checked(good.cert_path, revoked={good.serial})[0]
