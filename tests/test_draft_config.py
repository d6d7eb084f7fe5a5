"""``parties.owner.draft``: a configuration drafted from a CSV loads as it is, declares every
column with a reviewed-looking type, and names the file and line of a CSV it cannot read."""

from __future__ import annotations

import csv
import tomllib
from pathlib import Path

import pytest

from mpc.data.ids import make_resident_id
from mpc.data.sources import load_dataset
from parties.config import PartyConfig
from parties.owner.check import grant_problems
from parties.owner.draft import DraftError, draft_config


def test_a_draft_loads_and_marks_what_to_review(tmp_path: Path) -> None:
    import datetime as dt

    path = tmp_path / "2026 income.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["resident_id", "annual_income", "disabled", "district", "registered", "note"])
        for k in range(50):
            writer.writerow(
                [
                    make_resident_id("110101", dt.date(1980, 1, 1 + k % 28), k),
                    10_499 * k,
                    k % 2,
                    ["north", "south"][k % 2],
                    f"2020-01-{1 + k % 28:02d}",
                    f"free text {k}",
                ]
            )
    text = draft_config(path, "resident_id", "tax")
    raw = tomllib.loads(text)
    config = PartyConfig.model_validate(raw)
    columns = config.datasets[0].schema_.columns
    assert config.datasets[0].name == "d_2026_income"
    assert {n: c.type for n, c in columns.items()} == {
        "annual_income": "int",
        "disabled": "bool",
        "district": "category",
        "registered": "date",
        "note": "code",
    }
    assert (columns["annual_income"].min, columns["annual_income"].max) == (0, 600_000)  # 514 451 rounded out
    assert "# REVIEW annual_income" in text and "# REVIEW district" in text and "# batch = false" in text
    assert grant_problems(config) == [] and config.policy.peers == {}
    assert len(load_dataset(config.datasets[0]).ids) == 50


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty file"),
        ("id,income\n", "line 1: no column 'resident_id' (columns: id, income)"),
        ("resident_id,income\n1,2\n3\n", "line 3: 1 fields where the header has 2"),
        (b"resident_id,income\n\xff\xfe,1\n", "cannot be read as UTF-8 CSV"),
    ],
)
def test_a_csv_that_cannot_be_drafted_names_file_and_line(tmp_path: Path, content: str | bytes, message: str) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DraftError, match=message.replace("(", r"\(").replace(")", r"\)")) as error:
        draft_config(path, "resident_id", "tax")
    assert str(path) in str(error.value)


def test_init_party_from_the_command_line(tmp_path: Path) -> None:
    """`mpc-admin init party --from-csv` writes the draft, never over an existing file."""
    from typer.testing import CliRunner

    from parties.cli.admin import app

    path = tmp_path / "income.csv"
    path.write_text("resident_id,annual_income\n110101198001010011,5\n", encoding="utf-8")
    out = tmp_path / "tax.toml"
    args = ["init", "party", "tax", "--from-csv", str(path), "--id-column", "resident_id", "--out", str(out)]
    runner = CliRunner()
    drafted = runner.invoke(app, args)
    said = " ".join(drafted.output.split())  # rich wraps long paths at the terminal's width
    assert drafted.exit_code == 0 and "3 line(s) marked REVIEW" in said, drafted.output
    assert PartyConfig.model_validate(tomllib.loads(out.read_text())).party.name == "tax"
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "exists" in again.output
    wrong = runner.invoke(app, [*args[:-1], str(tmp_path / "other.toml"), "--id-kind", "passport"])
    assert wrong.exit_code == 2 and "--id-kind must be" in wrong.output
