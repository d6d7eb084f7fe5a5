"""The Ray compute backend on a real Ray cluster: a head and a second node process, started here
on loopback (issue 17). The same chunks give the same bytes as on the local process pool: OPRF
tags, Paillier decryptions, PSI, the requester's P1 group products, and an eligibility batch
between daemons configured for Ray; a worker that dies mid-task is retried and the result is
still right.

Where Ray cannot be imported the module is skipped with the reason, except under ``CI=true``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from demo.cluster import LocalCluster
from demo.deployment import household_applications, party_specs
from demo.raycluster import loopback_ray
from demo.synthetic import generate, write_csv
from mpc import parallel
from mpc.crypto.curve25519 import OprfServer, hash_ids
from mpc.crypto.paillier import _decrypt_chunk, generate_keypair
from mpc.data.schema import DatasetSpec
from mpc.data.sources import load_dataset
from mpc.parallel import ComputeConfig, ComputeError, LocalPool, RayCluster
from mpc.protocols import lookup, oprf_filter, psi
from mpc.protocols.rules import evaluate_plain, load_rules
from mpc.sharing import ring
from parties.owner.tables import TableCache
from parties.requester import Client
from tests.e2e.conftest import owner_values
from tests.protocols.test_psi import run as psi_run
from tests.protocols.test_rules import EXAMPLES

# Ray's single-machine mode: every Ray process binds and advertises the loopback address only (read
# when ray is first imported: demo.raycluster.loopback_ray explains)
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
if os.environ.get("CI") != "true":
    pytest.importorskip("ray", reason="ray is not installed (pip install 'ray>=2.40'; make venv installs it)")


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    """A Ray cluster of two node processes (one CPU each) bound to 127.0.0.1 only."""
    with loopback_ray(nodes=2, cpus_per_node=1) as cluster:
        yield cluster.address


@pytest.fixture
def on_ray(ray_address: str) -> Iterator[RayCluster]:
    backend = parallel.configure(ComputeConfig(backend="ray", address=ray_address))
    assert isinstance(backend, RayCluster) and backend.workers == 2
    yield backend


def _on_local() -> LocalPool:
    backend = parallel.configure(ComputeConfig())
    assert isinstance(backend, LocalPool)
    return backend


def test_the_cluster_has_two_nodes_on_loopback(on_ray: RayCluster) -> None:
    import ray

    nodes = [n for n in ray.nodes() if n["Alive"]]  # type: ignore[no-untyped-call]
    assert len(nodes) == 2 and {n["NodeManagerAddress"] for n in nodes} == {"127.0.0.1"}


def test_oprf_tags_on_ray_equal_the_local_pools(on_ray: RayCluster) -> None:
    ids = [f"1101011980{i:08d}" for i in range(6000)]  # above PARALLEL_THRESHOLD: chunked
    server = OprfServer.generate(b"test-dataset")
    before = on_ray.tasks
    on_ray_tags, on_ray_points = server.evaluate_ids(ids), hash_ids(ids, b"psi")
    assert on_ray.tasks >= before + 2 * 4 * on_ray.workers  # both ran as chunks on the cluster
    _on_local()
    assert server.evaluate_ids(ids) == on_ray_tags and hash_ids(ids, b"psi") == on_ray_points
    assert on_ray_tags == server.evaluate_ids(ids, parallel=False)  # and as in one process


def test_decryptions_on_ray_equal_the_plaintexts(on_ray: RayCluster) -> None:
    public, private = generate_keypair(1024)
    plaintexts = [0, 1, int(public.n) - 1, *(secrets.randbelow(int(public.n)) for _ in range(197))]
    ciphertexts = [public.encrypt(m) for m in plaintexts]
    assert private.decrypt_parallel(ciphertexts) == plaintexts
    _on_local()
    assert private.decrypt_parallel(ciphertexts) == plaintexts


def test_psi_on_ray_equals_the_local_pools(on_ray: RayCluster) -> None:
    ours = [f"1101011980{i:08d}" for i in range(0, 12000, 2)]  # 6000 ids each side: chunked
    theirs = [f"1101011980{i:08d}" for i in range(0, 18000, 3)]
    expected = [i for i in ours if i in set(theirs)]

    def run() -> tuple[list[str], int]:
        distinct, owner_tags, answers = psi_run(ours, theirs)
        found = psi.intersection(owner_tags, answers)
        return [i for i, f in zip(distinct, found, strict=True) if f], psi.cardinality(owner_tags, psi.shuffle(answers))

    before = on_ray.tasks
    on_ray_result = run()
    assert on_ray.tasks > before
    _on_local()
    assert on_ray_result == run() == (expected, len(expected))


def test_p1_group_products_on_ray_equal_the_serial_ones(on_ray: RayCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """The requester's P1 products (each group's selected ciphertexts times its encrypted mask),
    above PRODUCTS_SERIAL_BELOW matched rows, run as chunks on the cluster and give the very
    ciphertexts of the in-process loop for the same masks and obfuscators; they decrypt to the rows."""
    public, private = generate_keypair(1024)
    layout = lookup.RowLayout.for_bounds(["v"], [(0, 10**6)], 1024)
    g, rows = layout.rows_per_plaintext, 3000
    rng = np.random.default_rng(23)
    values = rng.integers(0, 10**6 + 1, rows)
    fixed = np.where(rng.random(rows) < 0.85, rng.integers(0, g, rows), -1)  # about 2 550 matched rows
    assert (fixed >= 0).sum() >= lookup.PRODUCTS_SERIAL_BELOW
    plan = lookup.plan_groups(fixed, g)
    plain = layout.plaintexts(values.reshape(-1, 1), np.maximum(fixed, 0))
    selected = [public.encrypt(m) if f >= 0 else None for m, f in zip(plain, fixed.tolist(), strict=True)]
    masks = layout.random_masks(plan.count)
    obfuscators = [public.obfuscator.next() for _ in range(plan.count)]
    monkeypatch.setattr(lookup.RowLayout, "random_masks", lambda self, count: masks)
    before = on_ray.tasks
    on_ray_products, on_ray_mine = lookup.mask_groups(public, layout, selected, plan, obfuscators)
    assert on_ray.tasks > before  # the products ran as chunks on the cluster
    monkeypatch.setattr(lookup, "PRODUCTS_SERIAL_BELOW", rows + 1)
    serial, serial_mine = lookup.mask_groups(public, layout, selected, plan, obfuscators)
    assert [c.value for c in on_ray_products] == [c.value for c in serial] and (on_ray_mine == serial_mine).all()
    owner = lookup.unmask(layout, private.decrypt_parallel(on_ray_products), plan.groups, plan.positions)
    opened = ring.decode(on_ray_mine + owner).reshape(-1)
    assert opened.tolist() == np.where(fixed >= 0, values, 0).tolist()


def test_a_table_prepared_on_ray_equals_the_local_pools(
    on_ray: RayCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An owner's table preparation on the cluster (tags, packing, encryption, written chunk by
    chunk): the same tags as the local pool's and, row by row, the same plaintexts (the
    ciphertexts differ: each encryption draws fresh randomness)."""
    import parties.owner.tables as tables_module

    monkeypatch.setattr(tables_module, "ENCRYPT_CHUNK_ROWS", 1024)
    paths = write_csv(generate(5000, seed=23), tmp_path / "data")  # > PARALLEL_THRESHOLD ids: chunked
    spec = {
        "name": "income",
        "source": {"kind": "csv", "path": str(paths["tax"])},
        "schema": {"id_column": "resident_id", "columns": {"tax_year": {"type": "int", "min": 1990, "max": 2100}}},
    }
    income = load_dataset(DatasetSpec.model_validate(spec))
    columns = ("tax_year",)

    def prepared(state: Path) -> tuple[bytes, list[int]]:
        cache = TableCache(
            state,
            tmp_path / "keys",
            1024,
            64,
            lambda name, epoch: oprf_filter.dataset_key(bytes(32), "tax", name, epoch),
        )
        table = cache.table(income, columns, 7)
        table.ensure_all()
        key = cache.private_key(income, columns, 7)  # one key for both: the key directory is shared
        ciphertexts = key.public_key.ciphertexts_from_bytes(table.rows_bytes(slice(0, len(income.ids))))
        return table.index.tags.tobytes(), [int(key.decrypt_raw(c.value)) for c in ciphertexts]

    before = on_ray.tasks
    on_ray_tags, on_ray_rows = prepared(tmp_path / "on-ray")
    assert on_ray.tasks >= before + 5 * 4  # the tags and each of the five chunks' encryption ran on the cluster
    _on_local()
    local_tags, local_rows = prepared(tmp_path / "local")
    assert on_ray_tags == local_tags and on_ray_rows == local_rows and len(local_rows) == len(income.ids)


def _dies_on_first_attempt(marker: str, p: int, q: int, blob: bytes) -> bytes:
    """A decryption chunk whose worker process dies (as if killed) the first time it runs."""
    path = Path(marker)
    if not path.exists():
        path.write_text(str(os.getpid()))
        os._exit(1)
    return _decrypt_chunk(p, q, blob)


def test_a_worker_killed_mid_task_is_retried_and_the_result_is_right(on_ray: RayCluster, tmp_path: Path) -> None:
    public, private = generate_keypair(1024)
    plaintexts = [secrets.randbelow(int(public.n)) for _ in range(40)]
    blobs = [public.ciphertexts_to_bytes([public.encrypt(m) for m in plaintexts[i : i + 10]]) for i in range(0, 40, 10)]
    markers = [tmp_path / f"attempt-{i}" for i in range(len(blobs))]
    calls = [(str(m), int(private.p), int(private.q), b) for m, b in zip(markers, blobs, strict=True)]
    out = list(on_ray.map(_dies_on_first_attempt, calls))
    width = (int(public.n).bit_length() + 7) // 8
    decrypted = [int.from_bytes(blob[i : i + width], "big") for blob in out for i in range(0, len(blob), width)]
    assert decrypted == plaintexts
    assert all(m.exists() for m in markers)  # every chunk's first worker died, and the retry answered


def test_a_task_that_fails_on_every_retry_is_a_compute_error(on_ray: RayCluster, tmp_path: Path) -> None:
    no_retry = RayCluster(on_ray.address, max_retries=0)
    with pytest.raises(ComputeError, match=r"Ray cluster 127\.0\.0\.1:"):
        list(no_retry.map(_dies_on_first_attempt, [(str(tmp_path / "once"), 3, 5, b"")]))


def test_an_exception_in_a_chunk_is_raised_as_itself(on_ray: RayCluster) -> None:
    from mpc.crypto.curve25519 import InvalidPointError, multiply_points

    points = [bytes(32)] * 5000  # the all-zero point is refused by libsodium in a worker
    with pytest.raises(InvalidPointError):
        multiply_points(secrets.token_bytes(32), points)


def test_a_ray_address_without_a_cluster_is_one_line(tmp_path: Path) -> None:
    from parties.config import ConfigError, PartyConfig, start_compute

    with pytest.raises(ValueError, match='backend = "ray" needs address'):
        ComputeConfig(backend="ray")
    assert PartyConfig.model_fields["compute"].default_factory is not None
    started = time.monotonic()
    with pytest.raises(ConfigError, match=r"^compute\.address: the Ray cluster at 127\.0\.0\.1:1 does not answer"):
        start_compute(ComputeConfig(backend="ray", address="127.0.0.1:1"))
    assert time.monotonic() - started < 60 and isinstance(parallel.backend(), LocalPool)


def test_an_eligibility_batch_between_daemons_on_ray_matches_the_plaintext_rule(
    ray_address: str, tmp_path: Path
) -> None:
    """Every party of the deployment (owners and requester) configured for the Ray cluster: the
    owners' tags, table encryption and decryptions and the requester's blinding run there."""
    tables = generate(5000, seed=17)
    specs = [
        dataclasses.replace(s, compute={"backend": "ray", "address": ray_address})
        for s in party_specs(tables, tmp_path / "data", extra={"anonymity_set": 128})
    ]
    rule = load_rules(EXAMPLES).get("public-rental-housing")
    applications = household_applications(tables, 120)
    values: dict[tuple[str, str, str], Any] = {
        ("tax", "income", "annual_income"): owner_values(tables.tax, "annual_income"),
        ("housing", "properties", "property_count"): owner_values(tables.housing, "property_count"),
        ("public-security", "residents", "local_resident"): owner_values(tables.public_security, "local_resident"),
        ("civil-affairs", "households", "disabled"): owner_values(tables.civil_affairs, "disabled"),
    }
    expected = [int(e) for e, _ in evaluate_plain(rule, applications, values, {})]
    with LocalCluster(tmp_path, specs, paillier_bits=1024) as cluster:
        cluster.approve_rule(rule, "civil-affairs", ["public-rental-housing"])
        config = cluster.config("civil-affairs")
        with Client.from_config(config, purpose="public-rental-housing", case="RAY-1") as client:
            assert isinstance(parallel.backend(), RayCluster)
            bits = client.check_eligibility(rule, applications)
        assert bits.tolist() == expected
    status = json.loads((tmp_path / "state" / "tax" / "status.json").read_text())  # written as it stopped
    assert status["compute"]["backend"] == "ray" and status["compute"]["address"] == ray_address
    assert status["compute"]["tasks"] > 0  # its tags, encryption or decryptions ran on the cluster
