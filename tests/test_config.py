"""Configuration errors name the offending key and never start a daemon."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from parties.config import ConfigError, load_party_config

GOOD = """
[party]
name = "tax"
state_dir = "state"

[tls]
ca = "ca.pem"
cert = "tax.pem"
key = "tax.key"

[[datasets]]
name = "income"
source = { kind = "csv", path = "income.csv" }
[datasets.schema]
id_column = "resident_id"
[datasets.schema.columns.annual_income]
type = "int"
min = 0
max = 1000000

[policy.peers.housing]
purposes = ["public-rental-housing"]
[policy.peers.housing.datasets.income]
psi = true
batch = false
columns = { annual_income = ["compare"] }
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "party.toml"
    path.write_text(text)
    return path


def test_good_config_resolves_paths(tmp_path: Path) -> None:
    config = load_party_config(write(tmp_path, GOOD))
    assert config.party.state_dir == tmp_path / "state"
    assert config.tls.ca == tmp_path / "ca.pem"
    assert config.policy.peers["housing"].datasets["income"].columns["annual_income"] == ["compare"]


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (('name = "tax"', 'name = "Tax Bureau"'), "party.name"),
        (('state_dir = "state"', 'state_dir = "state"\nlisten = "nowhere"'), "party.listen"),
        (("max = 1000000", "max = 1000000\ncolour = 3"), "datasets.0.schema.columns.annual_income.colour"),
        (("min = 0\n", ""), "datasets.0.schema.columns.annual_income"),
        (('purposes = ["public-rental-housing"]', 'purposes = ["Public Housing!"]'), "policy.peers.housing.purposes"),
        (
            ('annual_income = ["compare"]', 'annual_income = ["sell"]'),
            "policy.peers.housing.datasets.income.columns.annual_income.0",
        ),
        (("[tls]\n", "[tls]\nverify = false\n"), "tls.verify"),
    ],
)
def test_errors_name_the_bad_key(tmp_path: Path, change: tuple[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_party_config(write(tmp_path, GOOD.replace(*change)))
    assert f"  {key}: " in str(error.value)


def test_daemon_refuses_to_start_with_a_bad_config(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace('name = "tax"', 'name = "Tax Bureau"'))
    result = subprocess.run(
        [sys.executable, "-m", "parties.cli.party", "serve", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "party.name" in result.stderr


def test_not_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_party_config(write(tmp_path, "[party\nname="))
