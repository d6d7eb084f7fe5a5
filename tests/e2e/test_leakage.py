"""Leakage: what an owner's daemon receives while answering an eligibility batch, and what the
requester ends up with. The owner's daemon runs in this process behind a test interceptor that
records every message it receives; we search that transcript for anything derived from the
applicants' ids."""

from __future__ import annotations

import csv
import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from demo.cluster import LocalCluster, PartySpec
from demo.synthetic import AgencyTables, generate, write_csv
from mpc.crypto.curve25519 import hash_to_curve
from mpc.protocols import oprf_filter
from mpc.protocols.lookup import bucket_of
from mpc.protocols.psi import PSI_DOMAIN
from mpc.protocols.rules import load_rules
from parties.config import load_party_config
from parties.owner.server import PartyDaemon
from tests.e2e.conftest import ONE_OWNER_RULES, audit_entries, eligibility_cli, income_dataset, owner_values
from tests.e2e.transcript import TranscriptInterceptor


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalCluster, AgencyTables]]:
    """tax runs in this process with a transcript interceptor (the production daemon never writes
    what it receives); the coordinator runs as usual and housing is a requester."""
    tables = generate(4000, seed=33)
    root = tmp_path_factory.mktemp("leakage")
    paths = write_csv(tables, root / "data")
    income = income_dataset(paths["tax"], tax_year=False)
    grant = {
        "purposes": ["public-rental-housing"],
        "programs": ["rule"],
        "datasets": {"income": {"psi": True, "batch": True, "columns": {"annual_income": ["lookup", "compare"]}}},
    }
    cluster = LocalCluster(
        root,
        [
            PartySpec("tax", [income], {"peers": {"housing": grant}}, extra={"anonymity_set": 256}, daemon=False),
            PartySpec("housing", daemon=False),
        ],
        paillier_bits=1024,
    )
    cluster.start()
    tax = PartyDaemon(
        load_party_config(cluster.config("tax")),
        interceptors=[TranscriptInterceptor(root / "state" / "tax" / "transcript.bin")],
    )
    tax.start()
    cluster.approve_rule(load_rules(ONE_OWNER_RULES).get("household-income"), "housing", ["public-rental-housing"])
    try:
        yield cluster, tables
    finally:
        tax.stop(grace=1)
        cluster.stop()


@pytest.mark.parametrize("path", ["P3", "P1"])
def test_owner_sees_nothing_linkable_and_requester_only_bits(
    recorded: tuple[LocalCluster, AgencyTables], tmp_path: Path, path: str
) -> None:
    cluster, tables = recorded
    case = f"LEAK-{path}"
    incomes = owner_values(tables.tax, "annual_income")
    people = [*sorted(incomes)[:30], "11010519491231002X"]  # the last one the owner does not have
    applicants = tmp_path / "applicants.csv"
    with applicants.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["application_id", "resident_id", "relation"])
        for n in range(0, len(people), 3):
            for k, person in enumerate(people[n : n + 3]):
                writer.writerow([f"A{n}", person, "applicant" if k == 0 else "member"])
    rules_file = tmp_path / "rules.toml"
    rules_file.write_text(ONE_OWNER_RULES)
    out = tmp_path / "results.csv"
    run = eligibility_cli(cluster, "housing", rules_file, applicants, out, case, "--path", path)
    assert run.returncode == 0, run.stdout + run.stderr

    # 1. The owner's transcript holds no id, no hash of one, no curve point or tag derived from one.
    state = cluster.root / "state" / "tax"
    transcript = (state / "transcript.bin").read_bytes()
    assert len(transcript) > 10_000  # it did record the session
    master, now = (state / "oprf" / "datasets.key").read_bytes(), oprf_filter.epoch_of(time.time(), 24.0)
    keys = [oprf_filter.dataset_key(master, "tax", "income", epoch) for epoch in (now - 1, now)]  # the run's epoch(s)
    tags = {p: [k.evaluate_ids([p], parallel=False)[0] for k in keys] for p in people}
    for person in people:
        raw = person.encode()
        derived = [
            raw,
            raw.lower(),
            hashlib.sha256(raw).digest(),
            hashlib.sha256(raw).hexdigest().encode(),
            hashlib.sha512(raw).digest()[:16],
            *tags[person],
        ]
        derived += [hash_to_curve(raw, domain) for domain in (b"tax/income", PSI_DOMAIN, b"")]
        for item in derived:
            assert item not in transcript, f"owner received something derived from {person}"

    # 2. P3: it fetched only the buckets our applicants fall in (each at least the anonymity set);
    #    P1: the whole table, so nothing about which rows were used.
    from mpc.protocols.lookup import bucket_bits_for

    fetched = [
        e for e in audit_entries(cluster, "tax") if e["action"] == "rpc:GetEncryptedBucket" and e.get("case") == case
    ]
    assert {e["protocol"] for e in fetched} == {path}
    if path == "P1":
        assert [str(e["detail"]).split(" columns")[0] for e in fetched] == ["dataset=income whole table"]
        assert fetched[0]["rows"] == len(incomes)
    else:
        bits = bucket_bits_for(len(incomes), 256)  # ~2 700 rows in buckets of at least 256
        assert bits >= 2
        asked = {int(b) for e in fetched for b in str(e["detail"]).split("buckets=")[1].split("/")[0].split(",")}
        assert {str(e["detail"]).split("/")[1].split(" ")[0] for e in fetched} == {str(1 << bits)}
        assert asked == {bucket_of(tags[p][-1], bits) for p in people}
    decrypted = [
        e for e in audit_entries(cluster, "tax") if e["action"] == "rpc:MaskedDecrypt" and e.get("case") == case
    ]
    assert [e["protocol"] for e in decrypted] == [path]

    # 3. The requester holds the bits and nothing of the owner's values.
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["application_id", "result", "reason"]
    assert {r["result"] for r in rows} <= {"eligible", "not eligible", "error"}
    shown = run.stdout + run.stderr + out.read_text()
    for person in people[:-1]:
        if abs(incomes[person]) >= 10_000:
            assert str(incomes[person]) not in shown and f"{incomes[person]:,}" not in shown
