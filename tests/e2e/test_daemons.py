"""Real daemons on ephemeral ports: identities, policy, failures, restarts, audit."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import numpy as np
import pytest
from cryptography import x509
from typer.testing import CliRunner

from demo.cluster import LocalCluster
from demo.synthetic import AgencyTables
from mpc.crypto.curve25519 import CommutativeCipher
from mpc.data.ids import normalize_column
from mpc.protocols.selftest import public_values
from parties.pki import Pki
from parties.requester import Client, RemoteError
from parties.rpc.tls import TlsConfig, secure_channel
from protos import common_pb2, party_pb2, party_pb2_grpc
from tests.e2e.conftest import (
    ONE_OWNER_RULES,
    audit_entries,
    client_for,
    eligibility_cli,
    owner_values,
    table_key,
    wait_for,
    witnessed,
)
from tests.rule_texts import one_clause_rule


def audit_verify(config: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    """``mpc-admin audit verify --config CONFIG [FLAGS]`` as an operator runs it."""
    command = [sys.executable, "-m", "parties.cli.admin", "audit", "verify", "--config", str(config), *flags]
    return subprocess.run(command, capture_output=True, text=True)


def last_entry(cluster: LocalCluster, party: str, method: str) -> dict[str, object]:
    entries = [e for e in audit_entries(cluster, party) if e.get("action") == f"rpc:{method}"]
    assert entries, f"no audit entry for {method} at {party}"
    return entries[-1]


def test_one_clause_rule_at_and_around_its_threshold(cluster: LocalCluster, tables: AgencyTables) -> None:
    """P3 lookup + P4 comparison through approved one-clause rules (the successor of the removed
    threshold-check, whose threshold was the requester's to choose): present AND income OP t,
    at, around and away from the threshold; absent and repeated applicants."""
    from mpc.protocols.rules import Application, load_rules

    incomes = owner_values(tables.tax, "annual_income")
    known = sorted(incomes)[:40]
    threshold = incomes[known[0]]  # one applicant sits exactly at the threshold
    absent = ["110101199003077777", "11010519491231002X"]
    applicants = [*known, *absent, known[3]]  # a repeated applicant too
    applications = [Application(f"T{k}", a, (a,)) for k, a in enumerate(applicants)]
    plain: dict[str, Callable[[int], bool]] = {
        "<": lambda v: v < threshold,
        "<=": lambda v: v <= threshold,
        ">=": lambda v: v >= threshold,
    }
    for k, (op, holds) in enumerate(plain.items()):
        rule = load_rules(one_clause_rule(f"income-{k}", threshold, op)).get(f"income-{k}")
        cluster.approve_rule(rule, "housing", ["public-rental-housing"])
        with client_for(cluster, "housing", purpose="public-rental-housing", case="HZ-P3") as client:
            bits = client.check_eligibility(rule, applications, path="P3")
        assert bits.tolist() == [int(a in incomes and holds(incomes[a])) for a in applicants], op
    decrypt = last_entry(cluster, "tax", "MaskedDecrypt")
    assert (decrypt["rows"], decrypt["case"], decrypt["outcome"]) == (len(applicants), "HZ-P3", "OK")
    check = last_entry(cluster, "tax", "ShareExchange")
    assert check["outcome"] == "OK" and "rule=income-2" in str(check["detail"])


def test_an_approved_rule_still_needs_the_compare_grant(cluster: LocalCluster) -> None:
    from mpc.protocols.rules import Application, load_rules

    rule = load_rules(one_clause_rule("old-taxpayer", 2000, column="tax_year")).get("old-taxpayer")
    cluster.approve_rule(rule, "housing", ["statistics"])
    with client_for(cluster, "housing", purpose="statistics") as client, pytest.raises(RemoteError) as refused:
        client.check_eligibility(rule, [Application("X", "110101199003077777", ("110101199003077777",))])
    assert refused.value.code == grpc.StatusCode.PERMISSION_DENIED
    assert "may not use column income.tax_year for 'compare'" in refused.value.details


def test_capabilities_and_schemas_without_values(cluster: LocalCluster, tables: AgencyTables) -> None:
    with client_for(cluster, "housing") as client:
        caps = client.capabilities("tax")
        assert caps.party == "tax" and "psi-cardinality" in caps.protocols
        datasets = client.list_datasets("tax").datasets
    assert [d.name for d in datasets] == ["income", "payments"]
    columns = {c.name: c for c in datasets[0].columns}
    assert columns["annual_income"].classification == "sensitive"
    assert (columns["tax_year"].min, columns["tax_year"].max) == (1990, 2100)
    assert list(columns["annual_income"].allowed_uses) == ["lookup", "compare", "filter", "aggregate"]
    assert list(columns["tax_year"].allowed_uses) == ["group_by"]
    assert datasets[0].bucket_bits == 2  # 2 037 rows: 4 buckets of ~509 (at least the anonymity set, 256)
    # the row count is rounded up to the owner's granularity (default 1000), never the exact 2 037
    assert len(owner_values(tables.tax, "annual_income")) == 2037
    assert [d.rows for d in datasets] == [3000, 1000]  # payments: 300 rows loaded


def test_psi_cardinality_matches_plaintext_and_is_audited(cluster: LocalCluster, tables: AgencyTables) -> None:
    mine, _ = normalize_column([str(r["resident_id"]) for r in tables.housing], "resident_id")
    theirs, _ = normalize_column([str(r["resident_id"]) for r in tables.tax], "resident_id")
    ids = [i for i in mine if i]
    with client_for(cluster, "housing", case="HZ-2026-17") as client:
        result = client.psi_cardinality("tax", "income", ids)
    assert result.intersection == len(set(ids) & {t for t in theirs if t})
    assert result.requester_count == len(set(ids))
    entry = last_entry(cluster, "tax", "PsiRound")
    assert (entry["peer"], entry["purpose"], entry["case"], entry["outcome"]) == (
        "housing",
        "statistics",
        "HZ-2026-17",
        "OK",
    )
    assert entry["rows"] == len(set(ids))
    # the requester's side records the same purpose and case in its own signed log
    import json

    ours: list[dict[str, object]] = [
        json.loads(line) for line in (cluster.root / "state" / "housing" / "requests.log").read_text().splitlines()
    ]
    assert any(
        rec["action"] == "request:psi-cardinality"
        and rec["case"] == "HZ-2026-17"
        and rec["peer"] == "tax"
        and rec["outcome"] == "OK"
        for rec in ours
    )


def test_the_requesters_log_is_never_off(cluster: LocalCluster) -> None:
    """Clients of one process share the agency's requests.log; a second process finding it locked
    records into its own requests.PID.log; either way every request is recorded and verifies."""
    import os

    from mpc.audit import AuditLog, load_or_create_signing_key, verify_log

    state = cluster.root / "state" / "housing"
    key = load_or_create_signing_key(state / "audit-signing.pem")
    config = cluster.config("housing")
    with (
        Client.from_config(config, "statistics", "LOG-A") as first,
        Client.from_config(config, "statistics", "LOG-B") as second,
    ):
        assert first.audit is not None and first.audit is second.audit
        first.capabilities("tax")
        second.psi_cardinality("tax", "income", ["110101199003077777"])
    own = state / f"requests.{os.getpid()}.log"
    # another process of the agency holds the log
    with AuditLog(state / "requests.log", key), Client.from_config(config, "statistics", "LOG-C") as client:
        assert client.audit is not None and client.audit.path == own
        client.psi_cardinality("tax", "income", ["110101199003077777"])
    for path, case in ((state / "requests.log", "LOG-B"), (own, "LOG-C")):
        assert verify_log(path, key.public_key()).ok
        assert case in path.read_text()


def test_psi_intersection_matches_plaintext(cluster: LocalCluster, tables: AgencyTables) -> None:
    """Intersection mode: exactly our ids the owner holds, in our order; duplicates in our list
    are sent once; ids invalid on the owner's side (its defective rows) never match; an empty
    list and a list of strangers give empty answers."""
    theirs = set(owner_values(tables.tax, "annual_income"))
    mine, _ = normalize_column([str(r["resident_id"]) for r in tables.civil_affairs], "resident_id")
    ids = [i for i in mine if i][:1500]
    with client_for(cluster, "housing", case="PSI-INT") as client:
        result = client.psi_intersection("tax", "income", ids + ids[:100])
        assert result.matched == [i for i in dict.fromkeys(ids) if i in theirs]
        assert (result.intersection, result.requester_count, result.owner_count) == (
            len(result.matched),
            len(set(ids)),
            len(theirs),
        )
        assert result.bytes_sent >= 32 * len(set(ids)) and result.bytes_received >= 32 * len(theirs) + 8 * len(set(ids))
        assert client.psi_intersection("tax", "income", []).matched == []
        keyed = client.psi_owner_tags("tax", "income", ids)  # against the owner's per-dataset key
        assert (keyed.matched, keyed.owner_count) == (result.matched, len(theirs))
        assert client.psi_cardinality("tax", "income", ["11010519491231002X"]).intersection == 0
    entry = last_entry(cluster, "tax", "PsiRound")
    assert entry["outcome"] == "OK" and "mode=cardinality" in str(entry["detail"])


def test_psi_refuses_an_unknown_mode_and_malformed_points(cluster: LocalCluster) -> None:
    metadata = (("x-purpose", "statistics"), ("x-case", "PSI-BAD"))
    with client_for(cluster, "housing", case="PSI-BAD") as client:
        stub = client.party_stub("tax")
        with pytest.raises(grpc.RpcError) as unknown:
            list(
                stub.PsiRound(
                    iter([party_pb2.PsiMessage(start=party_pb2.PsiStart(dataset="income", mode="aligned"))]),
                    metadata=metadata,
                    timeout=10,
                )
            )
        assert unknown.value.code() == grpc.StatusCode.UNIMPLEMENTED and "intersection" in (
            unknown.value.details() or ""
        )
        bad = [
            party_pb2.PsiMessage(start=party_pb2.PsiStart(dataset="income", mode="intersection", requester_count=1)),
            party_pb2.PsiMessage(points=party_pb2.PointBatch(points=b"\x01" * 31, count=1)),
        ]
        with pytest.raises(grpc.RpcError) as malformed:
            list(stub.PsiRound(iter(bad), metadata=metadata, timeout=30))
        assert malformed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert client.psi_cardinality("tax", "income", ["11010519491231002X"]).requester_count == 1  # still serving


@pytest.mark.parametrize(
    ("requester", "purpose", "dataset", "message"),
    [
        ("housing", "marketing", "income", "purpose 'marketing' is not allowed for peer 'housing'"),
        ("stranger", "statistics", "income", "peer 'stranger' has no grant"),
        ("housing", "statistics", "payroll", "tax has no dataset 'payroll'"),
    ],
)
def test_unauthorised_requests_are_refused_and_audited(
    cluster: LocalCluster, requester: str, purpose: str, dataset: str, message: str
) -> None:
    with client_for(cluster, requester, purpose=purpose) as client, pytest.raises(RemoteError) as refused:
        client.psi_cardinality("tax", dataset, ["110101199003077777"])
    expected = grpc.StatusCode.NOT_FOUND if dataset == "payroll" else grpc.StatusCode.PERMISSION_DENIED
    assert refused.value.code == expected and message in refused.value.details
    entry = last_entry(cluster, "tax", "PsiRound")
    assert (entry["peer"], entry["outcome"]) == (requester, expected.name)
    assert message in str(entry["detail"])


def test_a_stranger_flooding_an_owner_costs_a_few_entries_and_one_summary(cluster: LocalCluster) -> None:
    """A certified peer without any grant calls 40 times: refused every time (the rate limit too),
    but only the first few refusals of a minute are written one by one; the rest are one
    audit:suppressed entry with their count (here written when the daemon stops)."""
    spare = cluster.members["spare"].address

    def refusals() -> int:
        return sum(
            1 for e in audit_entries(cluster, "spare") if e["action"] == "rpc:ListDatasets" and e["peer"] == "stranger"
        )

    before = refusals()
    with client_for(cluster, "stranger") as client:
        for _ in range(40):
            with pytest.raises(RemoteError) as refused:
                client.list_datasets(spare)
            assert refused.value.code in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.RESOURCE_EXHAUSTED)
    written = refusals() - before
    assert 1 <= written <= 5
    assert cluster.stop_party("spare", signal.SIGTERM) == 0
    cluster.start_party("spare")
    summaries = [e for e in audit_entries(cluster, "spare") if e["action"] == "audit:suppressed"]
    assert summaries and summaries[-1]["peer"] == "stranger" and summaries[-1]["rows"] == 40 - written


@contextmanager
def impostor(cert_pem: bytes, key_pem: bytes, ca_pem: bytes) -> Iterator[str]:
    """A TLS server on loopback holding ``cert_pem`` (it requires our certificate, as daemons do)."""
    from concurrent.futures import ThreadPoolExecutor

    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    credentials = grpc.ssl_server_credentials([(key_pem, cert_pem)], root_certificates=ca_pem, require_client_auth=True)
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(0)


def test_a_server_that_is_not_the_party_meant_is_refused(cluster: LocalCluster, tmp_path: Path) -> None:
    """The network sends tax's traffic elsewhere: to a proxy holding another agency's valid
    certificate, or one holding a certificate named tax from the same CA that the coordinator's
    directory does not know (mis-issued). The client refuses both, naming what it meant and what
    it found; the real tax answers, and its audit entry names the caller's certificate serial."""
    import shutil

    ca = (cluster.pki_dir / "ca.pem").read_bytes()
    shutil.copytree(cluster.pki_dir, tmp_path / "pki")  # the same CA, issuing a second "tax"
    twin = Pki(tmp_path / "pki").issue("tax", hosts=("127.0.0.1",))
    for (cert, key), found in (
        (Pki(cluster.pki_dir).load("spare"), "the certificate of 'spare'"),  # another owner's daemon
        ((twin.cert_path.read_bytes(), twin.key_path.read_bytes()), "that the directory does not know"),
    ):
        with impostor(cert, key, ca) as address, client_for(cluster, "noised") as client:
            client.endpoint("tax")  # the directory, as the coordinator holds it
            client._endpoints["tax"] = address  # and the network answering for tax's address
            with pytest.raises(RemoteError) as refused:
                client.capabilities("tax")
        assert refused.value.code == grpc.StatusCode.UNAUTHENTICATED, refused.value
        assert address in refused.value.details and "tax" in refused.value.details
        assert found in refused.value.details
    with impostor(*Pki(cluster.pki_dir).load("stranger"), ca) as address, client_for(cluster, "noised") as client:
        client.endpoint("tax")  # a requester's certificate (clientAuth only) cannot even serve
        client._endpoints["tax"] = address
        with pytest.raises(RemoteError) as refused:
            client.capabilities("tax")
    assert refused.value.code == grpc.StatusCode.UNAUTHENTICATED and "certificate purpose" in refused.value.details
    with client_for(cluster, "noised") as client:
        assert client.capabilities("tax").party == "tax"
    serial = x509.load_pem_x509_certificate(Pki(cluster.pki_dir).load("noised")[0]).serial_number
    assert f"cert_serial={serial:x}" in str(last_entry(cluster, "tax", "GetCapabilities")["detail"])


def test_revoked_certificate_is_refused_and_audited(cluster: LocalCluster) -> None:
    Pki(cluster.pki_dir).revoke("revoked-agency")
    for party, target in (("tax", cluster.members["tax"].address), ("coordinator", "tax")):
        with client_for(cluster, "revoked-agency") as client, pytest.raises(RemoteError) as refused:
            client.capabilities(target)  # by address: tax refuses; by name: the directory lookup is refused
        assert refused.value.code == grpc.StatusCode.PERMISSION_DENIED and "revoked" in refused.value.details
        method = "GetCapabilities" if party == "tax" else "GetDirectory"
        entry = last_entry(cluster, party, method)
        assert (entry["peer"], entry["outcome"]) == ("revoked-agency", "PERMISSION_DENIED")


def test_without_a_current_crl_every_peer_is_refused_until_it_is_renewed(
    cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Revocation fails closed: a CRL past its nextUpdate, or none at all, refuses every peer with
    UNAVAILABLE naming the file and the command that renews it (audited); `mpc-admin pki crl`
    renews it and the daemon serves again, without a restart."""
    import parties.pki as pki_module
    from parties.cli.admin import app as admin

    crl = cluster.pki_dir / "crl.pem"
    kept = crl.read_bytes()
    try:
        with monkeypatch.context() as patch:  # a CRL signed two days ago, valid for one
            two_days_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
            patch.setattr(pki_module, "_now", lambda: two_days_ago)
            patch.setattr(pki_module, "CRL_VALIDITY", dt.timedelta(days=1))
            Pki(cluster.pki_dir).renew_crl()
        crl.touch()
        for broken, reason in (("expired", "expired at"), ("missing", "is missing")):
            if broken == "missing":
                crl.unlink()
            with client_for(cluster, "housing") as client, pytest.raises(RemoteError) as refused:
                client.capabilities(cluster.members["tax"].address)
            assert refused.value.code == grpc.StatusCode.UNAVAILABLE, refused.value
            assert reason in refused.value.details and "mpc-admin pki crl" in refused.value.details
            entry = last_entry(cluster, "tax", "GetCapabilities")
            assert (entry["peer"], entry["outcome"]) == ("housing", "UNAVAILABLE")
        result = CliRunner().invoke(admin, ["pki", "crl", "--dir", str(cluster.pki_dir)])
        assert result.exit_code == 0 and "CRL renewed" in result.output, result.output
        with client_for(cluster, "housing") as client:
            assert client.capabilities(cluster.members["tax"].address).party == "tax"
    finally:
        crl.write_bytes(kept)


def _foreign_or_expired(cluster: LocalCluster, tmp_path: Path, kind: str) -> TlsConfig:
    if kind == "foreign-ca":
        other = Pki.init(tmp_path / "other-ca", "some other CA")
        issued = other.issue("housing")  # same name, wrong issuer
    else:
        now = dt.datetime.now(dt.UTC)
        issued = Pki(cluster.pki_dir).issue(
            "expired-agency", not_before=now - dt.timedelta(days=30), not_after=now - dt.timedelta(days=1)
        )
    return TlsConfig(ca=cluster.pki_dir / "ca.pem", cert=issued.cert_path, key=issued.key_path)


@pytest.mark.parametrize(
    ("kind", "reason"), [("foreign-ca", "certificate from an unknown CA"), ("expired", "expired certificate")]
)
def test_foreign_and_expired_certificates_are_refused_and_audited(
    cluster: LocalCluster, tmp_path: Path, kind: str, reason: str
) -> None:
    """Refused inside the TLS handshake, before any of our code runs. The daemon audits the refusal
    (from gRPC core's report); our SDK checks its own certificate first and says UNAUTHENTICATED."""
    before = len([e for e in audit_entries(cluster, "tax") if e["action"] == "tls:handshake-refused"])
    tls = _foreign_or_expired(cluster, tmp_path, kind)
    with secure_channel(cluster.members["tax"].address, tls) as channel, pytest.raises(grpc.RpcError) as refused:
        party_pb2_grpc.PartyStub(channel).GetCapabilities(common_pb2.Empty(), timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE  # all a raw client can see: a closed socket
    deadline = time.monotonic() + 10
    refusals: list[dict[str, object]] = []
    while time.monotonic() < deadline and len(refusals) <= before:
        refusals = [e for e in audit_entries(cluster, "tax") if e["action"] == "tls:handshake-refused"]
        time.sleep(0.05)
    assert len(refusals) > before
    assert refusals[-1]["outcome"] == "UNAUTHENTICATED" and reason in str(refusals[-1]["detail"])
    client = Client("someone", tls, None, purpose="statistics", case="TEST-1")
    with pytest.raises(RemoteError) as local:
        client.capabilities(cluster.members["tax"].address)
    assert local.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert ("untrusted" if kind == "foreign-ca" else "expired") in local.value.details
    with client_for(cluster, "housing") as good:  # and the daemon keeps serving
        assert good.capabilities("tax").party == "tax"


def _raw_stub(cluster: LocalCluster, name: str = "housing") -> tuple[grpc.Channel, party_pb2_grpc.PartyStub]:
    config = Client.from_config(cluster.config(name)).tls
    channel = secure_channel(cluster.members["tax"].address, config)
    return channel, party_pb2_grpc.PartyStub(channel)


METADATA = (("x-purpose", "statistics"), ("x-case", "TEST-malformed"))


def test_malformed_requests_get_invalid_argument(cluster: LocalCluster) -> None:
    channel, stub = _raw_stub(cluster)
    with channel:
        cases = {
            "no start": [party_pb2.PsiMessage(points=party_pb2.PointBatch(points=b"", count=0))],
            "torn batch": [
                party_pb2.PsiMessage(start=party_pb2.PsiStart(dataset="income", mode="cardinality", requester_count=2)),
                party_pb2.PsiMessage(points=party_pb2.PointBatch(points=b"\x01" * 33, count=1)),
            ],
            "count lie": [
                party_pb2.PsiMessage(start=party_pb2.PsiStart(dataset="income", mode="cardinality", requester_count=2)),
                party_pb2.PsiMessage(
                    points=party_pb2.PointBatch(points=CommutativeCipher.generate().encrypt_ids(["a"])[0], count=1)
                ),
                party_pb2.PsiMessage(done=party_pb2.PsiDone(list="requester", count=1)),
            ],
        }
        for name, messages in cases.items():
            with pytest.raises(grpc.RpcError) as bad:
                list(stub.PsiRound(iter(messages), metadata=METADATA, timeout=30))
            assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT, name
        low_order = party_pb2.PointBatch(dataset="income", points=bytes(32), count=1)
        with pytest.raises(grpc.RpcError) as bad:
            list(stub.EvaluateOprf(iter([low_order]), metadata=METADATA, timeout=30))
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "point 0 is not a valid" in (
            bad.value.details() or ""
        )
        with pytest.raises(grpc.RpcError) as bad:
            stub.GetCapabilities(common_pb2.Empty(), metadata=(("x-purpose", "NOT A CODE!"),), timeout=10)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert last_entry(cluster, "tax", "EvaluateOprf")["outcome"] == "INVALID_ARGUMENT"


def test_malformed_masked_rows_get_invalid_argument(cluster: LocalCluster) -> None:
    """MaskedDecrypt: torn ciphertexts, an unknown path, and P1 row maps that name missing
    ciphertexts or the same slot twice; each is refused, audited, and the daemon keeps serving."""
    with client_for(cluster, "housing", purpose="public-rental-housing", case="BAD-ROWS") as client:
        key = table_key(client, "tax", "income", ["annual_income"])
        one = key.ciphertexts_to_bytes([key.encrypt(5)])
        stub = client.party_stub("tax")

        def header(path: str, rows: int = 0, ciphertexts: bytes = one) -> party_pb2.MaskedRows:
            return party_pb2.MaskedRows(
                session_id="s1",
                dataset="income",
                columns=["annual_income"],
                path=path,
                rows=rows,
                ciphertexts=ciphertexts,
                count=1,
            )

        cases = {
            "torn": [header("P3", ciphertexts=one[:-1])],
            "path": [header("P9")],
            "missing ciphertext": [
                header("P1", rows=1),
                party_pb2.MaskedRows(groups=np.array([3], "<i4").tobytes(), positions=np.array([0], "<i4").tobytes()),
            ],
            "same slot": [
                header("P1", rows=2),
                party_pb2.MaskedRows(
                    groups=np.array([0, 0], "<i4").tobytes(), positions=np.array([1, 1], "<i4").tobytes()
                ),
            ],
            "short map": [
                header("P1", rows=2),
                party_pb2.MaskedRows(groups=np.array([0], "<i4").tobytes(), positions=np.array([1], "<i4").tobytes()),
            ],
        }
        for name, messages in cases.items():
            with pytest.raises(grpc.RpcError) as bad:
                stub.MaskedDecrypt(
                    iter(messages),
                    metadata=(("x-purpose", "public-rental-housing"), ("x-case", "BAD-ROWS")),
                    timeout=30,
                )
            assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (name, bad.value.details())
            assert last_entry(cluster, "tax", "MaskedDecrypt")["outcome"] == "INVALID_ARGUMENT"
        assert client.list_datasets("tax").datasets[0].name == "income"  # still serving


def test_oversized_requests_get_resource_exhausted(cluster: LocalCluster) -> None:
    channel, stub = _raw_stub(cluster)
    with channel:
        huge = party_pb2.PointBatch(
            dataset="income", points=b"\x09" * (17 * 1024 * 1024), count=(17 * 1024 * 1024) // 32
        )
        with pytest.raises(grpc.RpcError) as big:
            list(stub.EvaluateOprf(iter([huge]), metadata=METADATA, timeout=30))
        assert big.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        too_many = party_pb2.PsiMessage(
            start=party_pb2.PsiStart(dataset="income", mode="cardinality", requester_count=10**7)
        )
        with pytest.raises(grpc.RpcError) as many:
            list(stub.PsiRound(iter([too_many]), metadata=METADATA, timeout=30))
        assert many.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "exceeds 50000" in (
            many.value.details() or ""
        )
    assert last_entry(cluster, "tax", "PsiRound")["outcome"] == "RESOURCE_EXHAUSTED"
    with client_for(cluster, "housing") as client:
        assert client.capabilities("tax").party == "tax"


def test_rate_limit_gives_resource_exhausted(cluster: LocalCluster) -> None:
    with client_for(cluster, "limited") as client:
        codes = []
        for _ in range(5):
            try:
                client.list_datasets("tax")  # (capabilities are asked once per client)
                codes.append("OK")
            except RemoteError as exc:
                codes.append(exc.code.name)
                assert "rate limit of 3/min" in exc.details
    assert codes[:3] == ["OK"] * 3 and codes[3:] == ["RESOURCE_EXHAUSTED"] * 2


def test_secret_shared_comparison_between_processes(cluster: LocalCluster) -> None:
    values = np.random.default_rng(3).integers(-(2**62), 2**62, 50_000, dtype=np.int64)
    with client_for(cluster, "housing", purpose="selftest") as client:
        bits, summary = client.selftest_compare("tax", values, seed=9)
    np.testing.assert_array_equal(bits, (values < public_values(9, len(values))).astype(np.uint8))
    assert summary["learned"].startswith("nothing")
    entry = last_entry(cluster, "tax", "ShareExchange")
    assert (entry["outcome"], entry["rows"], entry["purpose"]) == ("OK", 50_000, "selftest")


def test_co_party_killed_mid_protocol(cluster: LocalCluster) -> None:
    values = np.random.default_rng(4).integers(-(2**62), 2**62, 6_000_000, dtype=np.int64)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with client_for(cluster, "housing", purpose="selftest") as client:
                client.selftest_compare("spare", values, seed=5)
        except BaseException as exc:
            errors.append(exc)

    opened = sum(
        1
        for e in audit_entries(cluster, "coordinator")
        if e.get("action") == "rpc:OpenSession" and e.get("peer") == "spare"
    )
    worker = threading.Thread(target=run)
    worker.start()
    wait_for(
        lambda: (
            sum(
                1
                for e in audit_entries(cluster, "coordinator")
                if e.get("action") == "rpc:OpenSession" and e.get("peer") == "spare"
            )
            > opened
        ),
        "spare's side of the session to begin",
    )
    cluster.stop_party("spare", signal.SIGKILL)
    worker.join(timeout=120)
    assert not worker.is_alive()
    assert errors and isinstance(errors[0], RemoteError), errors
    error = errors[0]
    assert error.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED)
    assert "spare" in str(error) and "#" in error.details  # names the peer and the protocol step
    cluster.start_party("spare")
    with client_for(cluster, "housing", purpose="selftest") as client:
        bits, _ = client.selftest_compare("spare", values[:1000], seed=5)
    np.testing.assert_array_equal(bits, (values[:1000] < public_values(5, 1000)).astype(np.uint8))


def test_requester_killed_mid_protocol_daemon_keeps_serving(cluster: LocalCluster) -> None:
    script = (
        "import numpy as np\n"
        "from parties.requester import Client\n"
        f"c = Client.from_config({str(cluster.config('housing'))!r}, purpose='selftest', case='KILLED')\n"
        "c.selftest_compare('tax', np.zeros(8_000_000, dtype=np.int64), seed=1)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(  # tax's handler has opened its dealer session
        e.get("case") == "KILLED" and e.get("peer") == "tax" for e in audit_entries(cluster, "coordinator")
    ):
        time.sleep(0.05)
    process.kill()  # the session is under way: tax's side of it has begun
    process.wait()
    deadline = time.monotonic() + 60
    entries: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        entries = [e for e in audit_entries(cluster, "tax") if e.get("case") == "KILLED"]
        if any(e["action"] == "rpc:ShareExchange" for e in entries):
            break
        time.sleep(0.1)
    # the stream's begin was recorded while it ran, its end with the failure once the requester died
    assert [e["action"] for e in entries] == ["rpc-begin:ShareExchange", "rpc:ShareExchange"]
    assert entries[0]["outcome"] == "BEGIN" and entries[-1]["outcome"] != "OK"
    with client_for(cluster, "housing") as client:
        assert client.capabilities("tax").party == "tax"


def test_restart_keeps_keys_and_the_audit_chain(cluster: LocalCluster) -> None:
    with client_for(cluster, "housing", purpose="selftest") as client:
        before = client.capabilities("spare"), table_key(client, "spare", "payments", ["amount"])
    keys = sorted((cluster.root / "state" / "spare" / "keys").iterdir())
    assert [k.stat().st_mode & 0o777 for k in keys] == [0o600]  # one table, its key owner-only
    assert cluster.stop_party("spare", signal.SIGTERM) == 0  # graceful
    cluster.start_party("spare")
    with client_for(cluster, "housing", purpose="selftest") as client:
        after = client.capabilities("spare"), table_key(client, "spare", "payments", ["amount"])
    assert after[1] == before[1] and after[0].audit_public_key == before[0].audit_public_key
    assert after[0].paillier_bits == before[0].paillier_bits == 1024
    assert sorted((cluster.root / "state" / "spare" / "keys").iterdir()) == keys
    actions = [e["action"] for e in audit_entries(cluster, "spare")]
    assert "daemon:stop" in actions and actions.count("daemon:start") >= 2
    heads = witnessed(cluster, "spare")  # the witness records a head of the restarted daemon
    wait_for(lambda: witnessed(cluster, "spare") > heads, "a witnessed head of the restarted daemon")
    verify = audit_verify(cluster.config("spare"), "--against-coordinator")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "OK" in verify.stdout and "witnessed heads" in verify.stdout


def test_a_torn_audit_line_after_a_crash_is_quarantined_and_the_daemon_starts(cluster: LocalCluster) -> None:
    """A crash in the middle of an append leaves half a line: the daemon starts anyway, the torn
    bytes wait in a quarantine file, an audit:repair entry says so, and the chain verifies
    (also against the coordinator's witnessed heads)."""
    assert cluster.stop_party("spare", signal.SIGKILL) is not None
    log = cluster.root / "state" / "spare" / "audit.log"
    torn = b'{"action": "rpc:GetCapabilities", "case": "", "detail": "", "dur'
    with log.open("ab") as handle:
        handle.write(torn)
    cluster.start_party("spare")
    with client_for(cluster, "housing", purpose="selftest") as client:
        assert client.capabilities("spare").party == "spare"
    quarantined = list(log.parent.glob("audit.log.torn-*"))
    assert [q.read_bytes() for q in quarantined] == [torn]
    repairs = [e for e in audit_entries(cluster, "spare") if e["action"] == "audit:repair"]
    assert len(repairs) == 1 and quarantined[0].name in str(repairs[0]["detail"])
    heads = witnessed(cluster, "spare")
    wait_for(lambda: witnessed(cluster, "spare") > heads, "a witnessed head of the repaired log")
    verify = audit_verify(cluster.config("spare"), "--against-coordinator")
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_backup_and_restore_of_an_owner(cluster: LocalCluster, tmp_path: Path) -> None:
    """An online backup is consistent (its audit log verifies); an owner stopped, backed up and
    restored into a new state directory starts, serves with the same table keys, and its chain
    verifies against the coordinator's witness; the time from restore to first answer is printed."""
    from mpc.audit import load_or_create_signing_key, verify_log
    from parties.cli.admin import app as admin

    runner = CliRunner()
    original = cluster.config("spare")
    with client_for(cluster, "housing", purpose="selftest") as client:
        before = table_key(client, "spare", "payments", ["amount"])
    online = runner.invoke(admin, ["backup", "--config", str(original), "--to", str(tmp_path / "online")])
    assert online.exit_code == 0 and "backed up spare" in online.output, online.output
    key = load_or_create_signing_key(cluster.root / "state" / "spare" / "audit-signing.pem")
    assert verify_log(tmp_path / "online" / "state" / "audit.log", key.public_key()).ok
    assert cluster.stop_party("spare", signal.SIGTERM) == 0
    offline = runner.invoke(admin, ["backup", "--config", str(original), "--to", str(tmp_path / "offline")])
    assert offline.exit_code == 0, offline.output
    restored_config = original.with_name("spare-restored.toml")  # beside it: relative paths still resolve
    started = time.perf_counter()
    try:
        arguments = ["restore", "--from", str(tmp_path / "offline"), "--state", str(tmp_path / "new-state")]
        restored = runner.invoke(admin, [*arguments, "--config-out", str(restored_config)])
        assert restored.exit_code == 0 and "restored" in restored.output, restored.output
        cluster.start_party("spare", config=restored_config)
        with client_for(cluster, "housing", purpose="selftest") as client:
            after = table_key(client, "spare", "payments", ["amount"])
        print(f"recovery of a small owner: restore and first answer in {time.perf_counter() - started:.1f} s")
        assert after == before  # its keys came back: its encrypted tables need no new key
        heads = witnessed(cluster, "spare")
        wait_for(lambda: witnessed(cluster, "spare") > heads, "a witnessed head of the restored owner")
        verify = audit_verify(restored_config, "--against-coordinator")
        assert verify.returncode == 0, verify.stdout + verify.stderr
        tampered = tmp_path / "offline" / "state" / "audit-signing.pem"
        tampered.write_bytes(tampered.read_bytes() + b"\n")
        arguments = ["restore", "--from", str(tmp_path / "offline"), "--state", str(tmp_path / "again")]
        refused = runner.invoke(admin, [*arguments, "--config-out", str(tmp_path / "again.toml")])
        assert refused.exit_code == 2 and "altered since the backup" in refused.output
    finally:
        cluster.stop_party("spare", signal.SIGTERM)
        cluster.start_party("spare", config=original)


def test_a_second_head_under_a_witnessed_sequence_number_is_refused(cluster: LocalCluster) -> None:
    """tax's own key signs another head with the sequence number the coordinator witnessed last (a
    rewritten log): refused, naming both hashes; the same head again is accepted without a new record."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from mpc.audit import AuditHead
    from protos import coordinator_pb2, coordinator_pb2_grpc

    heads = witnessed(cluster, "tax")
    wait_for(lambda: witnessed(cluster, "tax") > heads, "a witnessed head of tax")
    state = cluster.root / "state" / "tax"
    key = load_pem_private_key((state / "audit-signing.pem").read_bytes(), None)
    with client_for(cluster, "tax") as client:
        stub = coordinator_pb2_grpc.CoordinatorStub(secure_channel(cluster.members["coordinator"].address, client.tls))
        last = stub.GetWitnessedHeads(coordinator_pb2.WitnessQuery(party="tax"), timeout=10).heads[-1]

        def signed(hash_: str) -> common_pb2.AuditHead:
            unsigned = AuditHead(seq=last.seq, hash=hash_, time=last.time, signature="")
            signature = key.sign(unsigned.statement_bytes()).hex()  # type: ignore[call-arg,union-attr]
            return common_pb2.AuditHead(party="tax", seq=last.seq, hash=hash_, time=last.time, signature=signature)

        with pytest.raises(grpc.RpcError) as refused:
            stub.WitnessAuditHead(signed("f" * 64), timeout=10)
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert f"second head with seq {last.seq}" in str(refused.value.details()) and last.hash[:16] in str(
            refused.value.details()
        )
        stub.WitnessAuditHead(last, timeout=10)  # the same head again: accepted, not recorded twice
        again = stub.GetWitnessedHeads(coordinator_pb2.WitnessQuery(party="tax"), timeout=10).heads
        assert [h.hash for h in again].count(last.hash) == 1


def test_rewritten_log_is_caught_against_the_coordinator(cluster: LocalCluster, tmp_path: Path) -> None:
    """Rewrite tax's log consistently with its own key: only the witnessed heads reveal it."""
    import shutil

    from mpc.audit import AuditEvent, AuditLog, load_or_create_signing_key

    heads = witnessed(cluster, "tax")  # the coordinator holds a recent head of tax's real log
    wait_for(lambda: witnessed(cluster, "tax") > heads, "a witnessed head of tax")
    state = cluster.root / "state" / "tax"
    forged = tmp_path / "forged.log"
    with AuditLog(forged, load_or_create_signing_key(state / "audit-signing.pem")) as log:
        log.append(AuditEvent(peer="-", action="daemon:start", detail="nothing to see"))
    config_copy = tmp_path / "tax.toml"
    text = cluster.config("tax").read_text().replace(str(state), str(tmp_path / "tax-state"))
    config_copy.write_text(text)
    (tmp_path / "tax-state").mkdir()
    shutil.copy(forged, tmp_path / "tax-state" / "audit.log")
    shutil.copy(state / "audit-signing.pem", tmp_path / "tax-state" / "audit-signing.pem")
    plain = audit_verify(config_copy)
    assert plain.returncode == 0  # self-consistent on its own
    checked = audit_verify(config_copy, "--against-coordinator")
    assert checked.returncode == 1
    assert "witness" in checked.stdout


def test_graceful_shutdown_finishes_the_session_in_flight(cluster: LocalCluster) -> None:
    values = np.random.default_rng(8).integers(-(2**62), 2**62, 1_500_000, dtype=np.int64)
    outcome: list[object] = []

    def run() -> None:
        try:
            with client_for(cluster, "housing", purpose="selftest", case="GRACEFUL") as client:
                outcome.append(client.selftest_compare("spare", values, seed=6)[0])
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(
        e.get("action") == "rpc:OpenSession" and e.get("peer") == "spare" and e.get("case") == "GRACEFUL"
        for e in audit_entries(cluster, "coordinator")
    ):
        time.sleep(0.02)
    assert cluster.stop_party("spare", signal.SIGTERM, timeout=120) == 0
    worker.join(timeout=60)
    assert isinstance(outcome[0], np.ndarray), outcome
    np.testing.assert_array_equal(outcome[0], (values < public_values(6, len(values))).astype(np.uint8))
    stop = [e for e in audit_entries(cluster, "spare") if e["action"] == "daemon:stop"][-1]
    assert "in_flight_at_stop=1" in str(stop["detail"])
    cluster.start_party("spare")


def test_metrics_endpoint(tmp_path: Path, cluster: LocalCluster) -> None:
    """The daemon's state (datasets, rejects, peers, certificate, uptime) is on /metrics and in
    STATE/status.json from the start, before any request; request counters follow."""
    import json
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = cluster.config("spare").read_text().replace("[party]\n", f'[party]\nmetrics_listen = "127.0.0.1:{port}"\n')
    cluster.stop_party("spare")
    cluster.config("spare").write_text(config)
    cluster.start_party("spare")
    # before any request: the daemon's state is there from the start
    first = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    status = json.loads((cluster.root / "state" / "spare" / "status.json").read_text())
    for dataset, loaded in status["datasets"].items():
        assert f'mpc_dataset_rows{{dataset="{dataset}",party="spare"}} {float(loaded["rows_loaded"])}' in first
        assert f'mpc_dataset_rejected_rows{{dataset="{dataset}",party="spare",reason="invalid_ids"}}' in first
    assert f'mpc_peers{{party="spare"}} {float(len(status["peers"]))}' in first
    assert 'mpc_certificate_expiry_days{party="spare"}' in first and 'mpc_uptime_seconds{party="spare"}' in first
    assert status["party"] == "spare" and status["certificate"]["days_left"] > 300 and status["peers"]
    assert all("used" in g["computations_today"] for g in status["peers"].values())
    with client_for(cluster, "housing") as client:
        client.capabilities("spare")
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    assert 'mpc_requests_total{method="GetCapabilities",outcome="OK",party="spare"}' in body


@pytest.mark.parametrize("path", ["P3", "P1"])
def test_one_owner_rule_on_shares_matches_plaintext(cluster: LocalCluster, tables: AgencyTables, path: str) -> None:
    """Households of 1 to 6, members missing from the owner, values at the thresholds; through
    bucketed lookups (P3) and through the whole table packed by position (P1)."""
    from mpc.protocols.rules import Application, evaluate_plain, load_rules

    rule = load_rules(ONE_OWNER_RULES).get("household-income")
    incomes = owner_values(tables.tax, "annual_income")
    known = sorted(incomes)
    absent = [f"11010519491231{n:03d}" for n in range(10)]
    rng = np.random.default_rng(12)
    applications = []
    for i in range(40):
        size = 1 + i % 6
        members = [known[int(j)] for j in rng.choice(len(known), size)]
        if i % 5 == 0:
            members[-1] = absent[i % len(absent)]
        applications.append(Application(f"A{i}", members[0], tuple(members)))
    applications.append(Application("ghost", absent[0], (absent[0], absent[1])))
    with client_for(cluster, "housing", purpose="public-rental-housing", case="HZ-RULE") as client:
        answer = client.eligibility(rule, applications, reasons=False, path=path)  # type: ignore[arg-type]
        bits = answer.bits
        assert [p.path for p in answer.plans] == [path]
    expected = [
        int(e) for e, _ in evaluate_plain(rule, applications, {("tax", "income", "annual_income"): incomes}, {})
    ]
    assert bits.tolist() == expected
    assert 0 < sum(expected) < len(expected)
    entry = last_entry(cluster, "tax", "ShareExchange")
    assert (entry["outcome"], entry["rows"], entry["case"]) == ("OK", len(applications), "HZ-RULE")


def test_eligibility_cli_gives_every_application_a_row(
    cluster: LocalCluster, tables: AgencyTables, tmp_path: Path
) -> None:
    import csv as csv_module

    from mpc.protocols.rules import Application, evaluate_plain, load_rules

    rules_file = tmp_path / "rules.toml"
    rules_file.write_text(ONE_OWNER_RULES)
    incomes = owner_values(tables.tax, "annual_income")
    known = sorted(incomes)
    rows = [
        ("A1", known[0], "applicant"),
        ("A1", known[1], "member"),
        ("A2", known[2], "applicant"),
        ("A3", "11010519491231002Y", "applicant"),  # bad check character
        ("A4", known[3], "member"),  # no applicant row
        ("A5", "110105491231002", "applicant"),
    ]  # 15-digit, upgraded, not in the tax table
    applicants = tmp_path / "applicants.csv"
    with applicants.open("w", newline="") as f:
        writer = csv_module.writer(f)
        writer.writerow(["application_id", "resident_id", "relation", "case"])
        writer.writerows([(*row, "HZ-OWN-CASE" if row[0] == "A2" else "") for row in rows])  # A2 its own case
    out = tmp_path / "results.csv"
    result = eligibility_cli(cluster, "housing", rules_file, applicants, out, "HZ-CLI")
    assert result.returncode == 3, result.stdout + result.stderr  # some rows are errors, the others have results
    got = {r["application_id"]: r for r in csv_module.DictReader(out.open())}
    assert list(got) == ["A1", "A2", "A3", "A4", "A5"]
    assert got["A3"]["result"] == "error" and "check" in got["A3"]["reason"]
    assert got["A4"]["result"] == "error" and "exactly one applicant" in got["A4"]["reason"]
    rule = load_rules(ONE_OWNER_RULES).get("household-income")
    apps = [
        Application("A1", known[0], (known[0], known[1])),
        Application("A2", known[2], (known[2],)),
        Application("A5", "11010519491231002X", ("11010519491231002X",)),
    ]
    plain = evaluate_plain(rule, apps, {("tax", "income", "annual_income"): incomes}, {})
    for app, (eligible, _) in zip(apps, plain, strict=True):
        assert got[app.reference]["result"] == ("eligible" if eligible else "not eligible")
    cases = {e["case"] for e in audit_entries(cluster, "tax") if e.get("action") == "rpc:ShareExchange"}
    assert {"HZ-OWN-CASE", "HZ-CLI"} <= cases  # each application's case reaches the owner's audit log


def test_owner_can_refuse_batch_lookups(cluster: LocalCluster, tables: AgencyTables) -> None:
    """An owner whose policy says batch = false: the planner stays on P3, a forced P1 is refused
    with PERMISSION_DENIED (audited), and a raw whole-table request likewise."""
    from mpc.protocols.rules import Application, load_rules

    rule = load_rules(ONE_OWNER_RULES).get("household-income")
    people = sorted(owner_values(tables.tax, "annual_income"))
    applications = [Application(f"B{i}", p, (p,)) for i, p in enumerate(people[:2000])]
    with client_for(cluster, "no-batch", purpose="public-rental-housing", case="NO-BATCH") as client:
        plan = client.plan_lookup("tax", "income", ["annual_income"], rows=2000, distinct=2000)
        assert plan.path == "P3" and "allows no batch lookups" in plan.reason
        with pytest.raises(RemoteError) as refused:
            client.check_eligibility(rule, applications[:3], path="P1")
        assert refused.value.code == grpc.StatusCode.PERMISSION_DENIED
        stub = client.party_stub("tax")
        with pytest.raises(grpc.RpcError) as raw:
            list(
                stub.GetEncryptedBucket(
                    party_pb2.BucketRequest(dataset="income", columns=["annual_income"], whole_table=True),
                    metadata=(("x-purpose", "public-rental-housing"), ("x-case", "NO-BATCH")),
                )
            )
        assert raw.value.code() == grpc.StatusCode.PERMISSION_DENIED and "batch lookups" in (raw.value.details() or "")
        with pytest.raises(RemoteError) as tags:  # the owner's tag list reveals what a whole-table fetch does
            client.psi_owner_tags("tax", "income", people[:3])
        assert tags.value.code == grpc.StatusCode.PERMISSION_DENIED
    entry = last_entry(cluster, "tax", "GetEncryptedBucket")
    assert (entry["peer"], entry["outcome"]) == ("no-batch", "PERMISSION_DENIED")


def test_dealer_serves_each_stream_once(cluster: LocalCluster) -> None:
    """Party 1 asking twice for one stream's correction (which would relate party 0's material)
    is refused with FAILED_PRECONDITION."""
    from protos import coordinator_pb2

    with client_for(cluster, "housing", purpose="selftest", case="DEALER-1") as client:
        stub, metadata = client.coordinator_stub(), (("x-purpose", "selftest"), ("x-case", "DEALER-1"))
        seed = stub.OpenSession(
            coordinator_pb2.SessionRequest(session_id="dealer-once", parties=["tax", "housing"]),
            metadata=metadata,
            timeout=10,
        )
        assert seed.index == 1
        first = coordinator_pb2.CorrectionRequest(session_id="dealer-once", kind="bit-triple", stream=0, size=4)
        again = coordinator_pb2.CorrectionRequest(kind="bit-triple", stream=0, size=8)
        replies = stub.GetCorrections(iter([first, again]), metadata=metadata, timeout=10)
        assert next(replies).words.shape == [4]
        with pytest.raises(grpc.RpcError) as refused:
            next(replies)
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "already dealt" in (refused.value.details() or "")


def test_dealer_deals_a_reservation_once(cluster: LocalCluster) -> None:
    """Party 1's seed comes with its reserved corrections, once: a second OpenSession with the
    reservation, or a GetCorrections for a reserved stream, is refused with FAILED_PRECONDITION;
    party 0 gets the seed alone."""
    from protos import common_pb2, coordinator_pb2

    reserve = common_pb2.Reservation(bit_triple_words=181, dabits=64)
    request = coordinator_pb2.SessionRequest(session_id="dealer-reserved", parties=["tax", "housing"], reserve=reserve)
    with client_for(cluster, "housing", purpose="selftest", case="DEALER-2") as client:
        stub, metadata = client.coordinator_stub(), (("x-purpose", "selftest"), ("x-case", "DEALER-2"))
        seed = stub.OpenSession(request, metadata=metadata, timeout=10)
        assert seed.index == 1
        assert {(b.kind, tuple(b.words.shape)) for b in seed.reserved} == {("bit-triple", (181,)), ("dabit", (64,))}
        with pytest.raises(grpc.RpcError) as again:
            stub.OpenSession(request, metadata=metadata, timeout=10)
        assert again.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "already dealt" in (again.value.details() or "")
        replies = stub.GetCorrections(
            iter(
                [coordinator_pb2.CorrectionRequest(session_id="dealer-reserved", kind="bit-triple", stream=0, size=181)]
            ),
            metadata=metadata,
            timeout=10,
        )
        with pytest.raises(grpc.RpcError) as reused:
            next(replies)
        assert reused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        with pytest.raises(grpc.RpcError) as bad:
            stub.OpenSession(
                coordinator_pb2.SessionRequest(
                    session_id="dealer-bad", parties=["tax", "housing"], reserve=common_pb2.Reservation(dabits=10)
                ),
                metadata=metadata,
                timeout=10,
            )
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "multiples of 64" in (bad.value.details() or "")
    with client_for(cluster, "tax", purpose="selftest", case="DEALER-2") as tax:
        mine = tax.coordinator_stub().OpenSession(request, metadata=metadata, timeout=10)
        assert mine.index == 0 and not mine.reserved and mine.seed != seed.seed
