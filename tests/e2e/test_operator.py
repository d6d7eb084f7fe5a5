"""An owner's operator before and while serving (issue 16): ``mpc-party check`` against a real
coordinator, on the running configuration and on a table of broken ones, and ``mpc-party status``
of a running daemon."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from typer.testing import CliRunner

from demo.cluster import LocalCluster
from parties.cli.party import app

runner = CliRunner()


def test_check_of_a_serving_owner_reports_its_refused_rows_without_ids(cluster: LocalCluster, tmp_path: Path) -> None:
    """tax's income table holds deliberately defective ids: refused rows are a warning (exit 3),
    listed in the rejects file by row and reason with the ids masked; no error."""
    rejects = tmp_path / "rejects.txt"
    result = runner.invoke(app, ["check", "--config", str(cluster.config("tax")), "--rejects", str(rejects)])
    assert result.exit_code == 3, result.output
    assert "0 error(s)" in result.output and "rows refused" in result.output
    listed = rejects.read_text()
    assert "invalid id" in listed and "row " in listed
    raw = tomllib.loads(cluster.config("tax").read_text())
    source = Path(raw["datasets"][0]["source"]["path"])
    ids = [line.split(",")[0] for line in source.read_text().splitlines()[1:] if line]
    assert not [i for i in ids if len(i) >= 12 and i in listed]  # never an id in full


def _broken(cluster: LocalCluster, tmp_path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    raw = tomllib.loads(cluster.config("tax").read_text())
    change(raw)
    path = tmp_path / "tax-broken.toml"
    path.write_bytes(tomli_w.dumps(raw).encode())
    return path


def _first_grant(raw: dict[str, Any]) -> dict[str, Any]:
    peers = raw["policy"]["peers"]
    return peers[sorted(peers)[0]]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("change", "code", "message"),
    [
        (  # a near miss of a registered party: an error
            lambda raw: raw["policy"]["peers"].update({"spar": _first_grant(raw)}),
            4,
            "policy.peers.spar: no party 'spar' in the coordinator's directory (did you mean 'spare'?)",
        ),
        (  # a party the directory does not list (a requester runs no daemon): a warning
            lambda raw: raw["policy"]["peers"].update({"welfare-office": _first_grant(raw)}),
            3,
            "warning: policy.peers.welfare-office: no party 'welfare-office' in the coordinator's directory",
        ),
        (
            lambda raw: next(iter(_first_grant(raw)["datasets"].values()))["columns"].update(
                {"anual_income": ["lookup"]}
            ),
            4,
            "has no column 'anual_income' (did you mean 'annual_income'?)",
        ),
        (
            lambda raw: raw["party"].update({"coordinator": "127.0.0.1:9"}),
            4,
            "party.coordinator: 127.0.0.1:9 does not answer (UNAVAILABLE",
        ),
        (
            lambda raw: raw["datasets"][0]["schema"].update({"id_column": "resident"}),
            4,
            "datasets.0 (income)",
        ),
        (lambda raw: raw["party"].update({"colour": "blue"}), 2, "party.colour"),
    ],
)
def test_check_names_each_broken_setting(
    cluster: LocalCluster, tmp_path: Path, change: Callable[[dict[str, Any]], None], code: int, message: str
) -> None:
    result = runner.invoke(app, ["check", "--config", str(_broken(cluster, tmp_path, change))])
    assert result.exit_code == code, result.output
    assert message in " ".join(result.output.split()), result.output
    assert "Traceback" not in result.output


def test_status_of_a_running_owner(cluster: LocalCluster) -> None:
    result = runner.invoke(app, ["status", "--config", str(cluster.config("tax"))], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "tax at 127.0.0.1:" in result.output and "OPRF epoch" in result.output
    assert "datasets" in result.output and "income" in result.output and "peers and their grants" in result.output
    assert "approved rules:" in result.output
