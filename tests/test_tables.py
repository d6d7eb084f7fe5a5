"""The owner's table cache: one Paillier key per encrypted table, kept across restarts; a ciphertext
decrypts only in the context of the table it came from; tags and tables per OPRF epoch."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from gmpy2 import mpz

from demo.synthetic import generate, write_csv
from mpc.crypto.curve25519 import OprfServer
from mpc.crypto.paillier import PaillierCiphertext
from mpc.data.schema import DatasetSpec
from mpc.data.sources import Dataset, load_dataset
from mpc.protocols import lookup, oprf_filter
from parties.owner.tables import TableCache

MASTER = bytes(range(1, 33))
EPOCH = 20_000


@pytest.fixture(scope="module")
def income(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    paths = write_csv(generate(300, seed=11), tmp_path_factory.mktemp("data"))
    return load_dataset(
        DatasetSpec.model_validate(
            {
                "name": "income",
                "source": {"kind": "csv", "path": str(paths["tax"])},
                "schema": {
                    "id_column": "resident_id",
                    "columns": {
                        "annual_income": {"type": "int", "min": -(10**12), "max": 10**12},
                        "tax_year": {"type": "int", "min": 1990, "max": 2100},
                    },
                },
            }
        )
    )


def cache(state: Path, anonymity_set: int = 64) -> TableCache:
    return TableCache(
        state / "encrypted",
        state / "keys",
        1024,
        anonymity_set,
        lambda name, epoch: oprf_filter.dataset_key(MASTER, "tax", name, epoch),
    )


def owner_shares(
    tables: TableCache, dataset: Dataset, columns: tuple[str, ...], masked: list[PaillierCiphertext]
) -> np.ndarray:
    """What MaskedDecrypt does with ciphertexts sent for the table ``columns``: that table's key and layout."""
    key = tables.private_key(dataset, columns, EPOCH)
    ciphertexts = key.public_key.ciphertexts_from_bytes(b"".join(c.to_bytes() for c in masked))
    return lookup.unmask(tables.layout(dataset, columns), key.decrypt_parallel(ciphertexts))


def test_each_table_has_its_own_key_kept_across_restarts(income: Dataset, tmp_path: Path) -> None:
    first = cache(tmp_path)
    years, incomes = first.table(income, ("tax_year",), EPOCH), first.table(income, ("annual_income",), EPOCH)
    assert years.public_key != incomes.public_key
    assert years.public_key.bits == incomes.public_key.bits == 1024
    keys = sorted((tmp_path / "keys").iterdir())
    assert len(keys) == 2 and all(k.stat().st_mode & 0o777 == 0o600 for k in keys)
    assert all(k.name.startswith("table-") and k.name.endswith(f"-epoch-{EPOCH}.key") for k in keys)
    again = cache(tmp_path)  # a restarted daemon
    assert again.table(income, ("tax_year",), EPOCH).public_key == years.public_key
    assert again.private_key(income, ("annual_income",), EPOCH).public_key == incomes.public_key
    assert sorted((tmp_path / "keys").iterdir()) == keys


def test_a_ciphertext_decrypts_only_as_the_table_it_came_from(income: Dataset, tmp_path: Path) -> None:
    tables = cache(tmp_path)
    years = tables.table(income, ("tax_year",), EPOCH)
    years.ensure_all()
    wrong_key = tables.private_key(income, ("annual_income",), EPOCH).public_key
    pk = years.public_key
    rows = list(range(40))
    selected: list[PaillierCiphertext | None] = [
        pk.ciphertext_from_bytes(years.rows_bytes(slice(r, r + 1))) for r in rows
    ]
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


def test_tags_and_tables_are_per_epoch_and_old_epochs_are_deleted(income: Dataset, tmp_path: Path) -> None:
    tables = cache(tmp_path)
    encrypted = tmp_path / "encrypted"
    first = tables.buckets(income, EPOCH)
    table = tables.table(income, ("tax_year",), EPOCH)
    table.ensure_all()
    assert {p.name for p in encrypted.glob("epoch-*")} == {f"epoch-{EPOCH}"}
    assert {p.suffix for p in (encrypted / f"epoch-{EPOCH}").iterdir()} == {".tags", ".bin", ".done"}
    second = tables.buckets(income, EPOCH + 1)
    assert len(first.tags) == len(second.tags) == len(income.ids)
    assert not set(first.tags.tolist()) & set(second.tags.tolist())  # a tag of one epoch matches nothing in the next
    # the OPRF an SDK would run in each epoch gives those same tags
    key = oprf_filter.dataset_key(MASTER, "tax", "income", EPOCH + 1)
    assert key.evaluate_ids(income.ids[:3]) == [second.tag(i) for i in range(3)]
    later = tables.table(income, ("tax_year",), EPOCH + 1)
    assert later.public_key != table.public_key  # the table key is per epoch: a kept ciphertext dies with it
    assert tables.buckets(income, EPOCH) is first  # the previous epoch is kept
    assert {p.name for p in encrypted.glob("epoch-*")} == {f"epoch-{EPOCH}", f"epoch-{EPOCH + 1}"}
    tables.buckets(income, EPOCH + 2)
    assert {p.name for p in encrypted.glob("epoch-*")} == {f"epoch-{EPOCH + 1}", f"epoch-{EPOCH + 2}"}
    assert [k.name.endswith(f"-epoch-{EPOCH + 1}.key") for k in (tmp_path / "keys").iterdir()] == [
        True
    ]  # old keys deleted
    restarted = cache(tmp_path)  # cached tags are reused across a restart
    assert np.array_equal(restarted.buckets(income, EPOCH + 2).tags, tables.buckets(income, EPOCH + 2).tags)
    assert {p.name for p in encrypted.glob("epoch-*")} == {f"epoch-{EPOCH + 1}", f"epoch-{EPOCH + 2}"}


def test_a_table_stopped_midway_resumes_where_it_stopped(
    income: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The encrypted table is written chunk by chunk, each chunk marked done once on disk: a daemon
    killed midway keeps what it finished and encrypts only the rest (the result decrypts right)."""
    import parties.owner.tables as tables_module

    monkeypatch.setattr(tables_module, "ENCRYPT_CHUNK_ROWS", 16)
    first = cache(tmp_path, 8).table(income, ("tax_year",), EPOCH)
    buckets = len(first.done)
    assert buckets > 2
    calls = 0
    real = first._encrypt

    def dies_on_the_third_chunk(rows: np.ndarray):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls == 3:
            raise KeyboardInterrupt("killed")
        yield from real(rows)

    first._encrypt = dies_on_the_third_chunk
    with pytest.raises(KeyboardInterrupt):
        first.ensure_all()
    kept = (tmp_path / "encrypted" / f"epoch-{EPOCH}").glob("*.done")
    finished = sum(next(kept).read_bytes())
    assert 0 < finished < buckets  # two chunks' buckets are on disk and marked

    again = cache(tmp_path, 8).table(income, ("tax_year",), EPOCH)  # the restarted daemon
    assert sum(again.done) == finished
    encrypted: list[int] = []
    real_again = again._encrypt

    def counting(rows: np.ndarray):  # type: ignore[no-untyped-def]
        encrypted.append(len(rows))
        yield from real_again(rows)

    again._encrypt = counting
    again.ensure_all()
    assert all(again.done) and sum(encrypted) == len(income.ids) - sum(
        len(again.index.rows(b)) for b in range(buckets) if first.done[b]
    )
    key = cache(tmp_path, 8).private_key(income, ("tax_year",), EPOCH)
    positions = again.layout.positions(again.index.tags)
    for row in (0, len(income.ids) // 2, len(income.ids) - 1):
        plain = key.decrypt_raw(mpz(int.from_bytes(again.rows_bytes(slice(row, row + 1)), "big")))
        assert plain == again.layout.plaintexts(income.values("tax_year")[[row]].reshape(1, 1), positions[[row]])[0]


def test_rows_are_read_back_in_any_order_and_runs(income: Dataset, tmp_path: Path) -> None:
    """The file is read at row offsets: a slice, scattered rows, repeated and reversed rows give
    the ciphertexts of those rows in that order."""
    table = cache(tmp_path, 8).table(income, ("tax_year",), EPOCH)
    table.ensure_all()
    every = table.rows_bytes(slice(0, table.rows))
    width = table.width
    assert len(every) == table.rows * width
    for rows in ([0], [3, 4, 5, 9, 2, 2, 1], list(range(table.rows - 1, -1, -7)), []):
        expected = b"".join(every[r * width : (r + 1) * width] for r in rows)
        assert table.rows_bytes(np.array(rows, dtype=np.int64)) == expected
    assert table.rows_bytes(slice(5, 5)) == b"" and table.rows_bytes(slice(2, 4)) == every[2 * width : 4 * width]


def test_tags_stopped_midway_resume_after_the_last_whole_chunk(
    income: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tags are computed and synced to disk a chunk of ids at a time: a daemon stopped midway
    computes only the chunks it had not finished, and the tags are those of a run never stopped."""
    import parties.owner.tables as tables_module

    monkeypatch.setattr(tables_module, "ID_CHUNK_ROWS", 64)
    evaluated: list[int] = []
    stop_at = 3  # the call that is killed (0: none)

    class Counting(OprfServer):
        def evaluate_ids(self, ids: Sequence[bytes | str], tag_bytes: int = 8, parallel: bool = True) -> list[bytes]:
            evaluated.append(len(ids))
            if len(evaluated) == stop_at:
                raise KeyboardInterrupt("killed")
            return super().evaluate_ids(ids, tag_bytes, parallel)

    def counting_key(name: str, epoch: int) -> OprfServer:
        key = oprf_filter.dataset_key(MASTER, "tax", name, epoch)
        return Counting(key.scalar, key.domain)

    def stopping_cache(state: Path) -> TableCache:
        return TableCache(state / "encrypted", state / "keys", 1024, 64, counting_key)

    with pytest.raises(KeyboardInterrupt):
        stopping_cache(tmp_path).buckets(income, EPOCH)
    assert [p.name.endswith(".tags.part") for p in (tmp_path / "encrypted" / f"epoch-{EPOCH}").iterdir()] == [True]
    evaluated.clear()
    stop_at = 0
    resumed = stopping_cache(tmp_path).buckets(income, EPOCH)  # the restarted daemon
    assert evaluated == [64, len(income.ids) - 192]  # the first two chunks were kept
    never_stopped = cache(tmp_path / "other").buckets(income, EPOCH)
    assert resumed.tags.tobytes() == never_stopped.tags.tobytes()
    assert not list((tmp_path / "encrypted" / f"epoch-{EPOCH}").glob("*.part"))


def test_psi_hashes_are_computed_into_a_fresh_state_directory(income: Dataset, tmp_path: Path) -> None:
    """A PSI session before any table: the cache's directory is created (the demo's first call)."""
    from mpc.crypto.curve25519 import hash_ids

    points = cache(tmp_path / "fresh").hashed_ids(income, b"psi")
    assert points.tobytes() == hash_ids(list(income.ids), b"psi", parallel=False)
    assert cache(tmp_path / "fresh").hashed_ids(income, b"psi").tobytes() == points.tobytes()  # read back
