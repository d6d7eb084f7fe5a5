"""The owner's table cache: one Paillier key per encrypted table, kept across restarts; a ciphertext
decrypts only in the context of the table it came from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mpc.crypto.curve25519 import OprfServer
from mpc.crypto.paillier import PaillierCiphertext
from mpc.data.schema import DatasetSpec
from mpc.data.sources import Dataset, load_dataset
from mpc.data.synthetic import generate, write_csv
from mpc.protocols import lookup
from parties.party.tables import TableCache

SCALAR = bytes(range(1, 33))


@pytest.fixture(scope="module")
def income(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    paths = write_csv(generate(300, seed=11), tmp_path_factory.mktemp("data"))
    return load_dataset(DatasetSpec.model_validate({
        "name": "income", "source": {"kind": "csv", "path": str(paths["tax"])},
        "schema": {"id_column": "resident_id", "columns": {
            "annual_income": {"type": "int", "min": -(10**12), "max": 10**12},
            "tax_year": {"type": "int", "min": 1990, "max": 2100}}}}))


def cache(state: Path) -> TableCache:
    return TableCache(state / "encrypted", state / "keys", 1024, 64,
                      lambda name: OprfServer(SCALAR, domain=f"tax/{name}".encode()))


def owner_shares(tables: TableCache, dataset: Dataset, columns: tuple[str, ...], masked: list[PaillierCiphertext]) -> np.ndarray:
    """What MaskedDecrypt does with ciphertexts sent for the table ``columns``: that table's key and layout."""
    key = tables.private_key(dataset, columns)
    ciphertexts = key.public_key.ciphertexts_from_bytes(b"".join(c.to_bytes() for c in masked))
    return lookup.unmask(tables.layout(dataset, columns), key.decrypt_parallel(ciphertexts))


def test_each_table_has_its_own_key_kept_across_restarts(income: Dataset, tmp_path: Path) -> None:
    first = cache(tmp_path)
    years, incomes = first.table(income, ("tax_year",)), first.table(income, ("annual_income",))
    assert years.public_key != incomes.public_key
    assert years.public_key.bits == incomes.public_key.bits == 1024
    keys = sorted((tmp_path / "keys").iterdir())
    assert len(keys) == 2 and all(k.stat().st_mode & 0o777 == 0o600 for k in keys)
    assert all(k.name.startswith("table-") and len(k.name) == len("table-") + 16 + len(".key") for k in keys)
    again = cache(tmp_path)  # a restarted daemon
    assert again.table(income, ("tax_year",)).public_key == years.public_key
    assert again.private_key(income, ("annual_income",)).public_key == incomes.public_key
    assert sorted((tmp_path / "keys").iterdir()) == keys


def test_a_ciphertext_decrypts_only_as_the_table_it_came_from(income: Dataset, tmp_path: Path) -> None:
    tables = cache(tmp_path)
    years = tables.table(income, ("tax_year",))
    years.ensure_all()
    wrong_key = tables.private_key(income, ("annual_income",)).public_key
    pk = years.public_key
    rows = list(range(40))
    selected: list[PaillierCiphertext | None] = [pk.ciphertext_from_bytes(years.rows_bytes(slice(r, r + 1))) for r in rows]
    masked, mine = lookup.mask_rows(pk, years.layout, selected)
    truth = income.values("tax_year")[rows]

    right = owner_shares(tables, income, ("tax_year",), masked) + mine
    assert right[:, 0].astype(np.int64).tolist() == truth.tolist()

    # the same ciphertexts sent back claiming to be rows of (income, [annual_income]): the owner
    # decrypts with that table's key (ciphertexts beyond its modulus are refused outright)
    fits = [k for k, c in enumerate(masked) if c.value < wrong_key.nsquare]
    assert fits
    wrong = owner_shares(tables, income, ("annual_income",), [masked[k] for k in fits]) + mine[fits]
    values = wrong[:, 0].astype(np.int64)
    assert not np.any(values == truth[fits])
    assert not np.any((values >= 1990) & (values <= 2100))  # noise, not any tax year
    outside = [c for c in masked if c.value >= wrong_key.nsquare]
    if outside:
        with pytest.raises(ValueError, match="out of range"):
            owner_shares(tables, income, ("annual_income",), outside)
