"""Audit log: chaining, signatures, restart, tamper classification, witnesses, concurrency."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import stat
import tempfile
import threading
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from mpc.audit import (
    GENESIS_HASH,
    AuditEntry,
    AuditEvent,
    AuditHead,
    AuditLog,
    AuditLogError,
    VerifyReport,
    load_or_create_signing_key,
    verify_head,
    verify_log,
)

# ---------------------------------------------------------------------- helpers


def event(i: int, **overrides: Any) -> AuditEvent:
    base = AuditEvent(
        peer=f"agency-{i % 3}",
        action="rpc:/mpc.party.v1.Party/EvaluateOprf",
        purpose="eligibility",
        case=f"case-{i}",
        protocol="P2",
        rows=i * 10,
        outcome="ok",
        detail=f"request {i}",
        duration_ms=1.5 * i,
    )
    return replace(base, **overrides)


def make_log(path: Path, key: Ed25519PrivateKey, n: int) -> list[AuditEntry]:
    with AuditLog(path, key, fsync=False) as log:
        return [log.append(event(i)) for i in range(n)]


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def write_lines(path: Path, content: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in content), encoding="utf-8")


def sign_entry(body: dict[str, Any], key: Ed25519PrivateKey) -> AuditEntry:
    """A correctly hashed entry with ``body``'s fields, signed by ``key``."""
    unsigned = AuditEntry(**{**body, "hash": "0" * 64, "signature": "0" * 128})
    digest = unsigned.computed_hash()
    return replace(unsigned, hash=digest, signature=key.sign(bytes.fromhex(digest)).hex())


def kinds(report: VerifyReport) -> list[str]:
    return [p.kind for p in report.problems]


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


# ---------------------------------------------------------------------- happy path


def test_append_and_verify(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, key) as log:
        first = log.append(event(0))
        second = log.append(event(1, outcome="PERMISSION_DENIED", action="auth:refused"))
        assert [e.seq for e in log.entries()] == [1, 2]
        head = log.head()
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.hash
    assert first.time.endswith("Z") and len(first.time) == len("2024-01-01T00:00:00.000Z")
    assert second.event() == event(1, outcome="PERMISSION_DENIED", action="auth:refused")

    report = verify_log(path, key.public_key())
    assert report.ok, report.problems
    assert report.entries == 2
    assert report.head is not None and (report.head.seq, report.head.hash) == (2, second.hash)
    assert (head.seq, head.hash) == (2, second.hash)
    assert verify_head(head, key.public_key())


def test_canonical_bytes_match_the_specification(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    path = tmp_path / "audit.jsonl"
    make_log(path, key, 1)
    stored = json.loads(lines(path)[0])
    body = {k: v for k, v in stored.items() if k not in ("hash", "signature")}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert stored["hash"] == hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    key.public_key().verify(bytes.fromhex(stored["signature"]), bytes.fromhex(stored["hash"]))


def test_empty_log_verifies_and_has_genesis_head(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, key) as log:
        head = log.head()
    assert (head.seq, head.hash) == (0, GENESIS_HASH)
    assert verify_head(head, key.public_key())
    report = verify_log(path, key.public_key(), witnessed=[head])
    assert report.ok and report.entries == 0 and report.head is None


def test_unicode_and_awkward_text_round_trip(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    path = tmp_path / "audit.jsonl"
    detail = 'Zoë said "no"\nline two\u2028sep \u00e9\U0001f600 \\ {}'
    with AuditLog(path, key) as log:
        entry = log.append(event(1, detail=detail, duration_ms=3))
    assert entry.duration_ms == 3.0 and isinstance(entry.duration_ms, float)
    assert len(lines(path)) == 1
    assert verify_log(path, key.public_key()).ok


def test_invalid_events_are_refused(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    with AuditLog(tmp_path / "audit.jsonl", key) as log:
        with pytest.raises(AuditLogError):
            log.append(event(1, duration_ms=float("nan")))
        with pytest.raises(AuditLogError):
            log.append(event(1, detail="\ud800"))
        with pytest.raises(AuditLogError):
            log.append(event(1, rows=True))
        assert list(log.entries()) == []


# ---------------------------------------------------------------------- restart


def test_restart_continues_the_chain(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    path = tmp_path / "audit.jsonl"
    before = make_log(path, key, 3)
    with AuditLog(path, key) as log:
        assert log.head().seq == 3
        after = log.append(event(3))
    assert after.seq == 4 and after.prev_hash == before[-1].hash
    report = verify_log(path, key.public_key())
    assert report.ok and report.entries == 4


def test_restart_with_another_key_is_refused(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    path = tmp_path / "audit.jsonl"
    make_log(path, key, 2)
    with pytest.raises(AuditLogError, match="not signed by this signing key"):
        AuditLog(path, Ed25519PrivateKey.generate())


def test_restart_after_torn_write_is_refused(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    path = tmp_path / "audit.jsonl"
    make_log(path, key, 2)
    text = path.read_text(encoding="utf-8")
    path.write_text(text + text.splitlines()[0][:40], encoding="utf-8")
    with pytest.raises(AuditLogError, match="incomplete line"):
        AuditLog(path, key)
    report = verify_log(path, key.public_key())
    assert kinds(report) == ["malformed"] and report.problems[0].line == 3
    assert "torn" in report.problems[0].message


@pytest.mark.parametrize("complete", [0, 1, 3])
def test_a_daemon_repairs_a_torn_write_into_quarantine_and_records_it(
    tmp_path: Path, key: Ed25519PrivateKey, complete: int
) -> None:
    """A crash mid-append leaves an unterminated last line (none, one or several complete entries
    before it): a daemon's log moves those bytes to a quarantine file, continues the chain from
    the last complete entry and records the repair; the whole log then verifies."""
    path = tmp_path / "audit.jsonl"
    make_log(path, key, max(complete, 1))
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    torn = lines[0][:40]
    path.write_text("".join(lines[:complete]) + torn, encoding="utf-8")
    with AuditLog(path, key, repair_torn_tail=True) as log:
        repair = list(log.entries())[-1]
        log.append(AuditEvent(peer="tax", action="rpc:Next"))
    quarantined = list(tmp_path.glob("audit.jsonl.torn-*"))
    assert len(quarantined) == 1 and quarantined[0].read_text(encoding="utf-8") == torn
    assert (repair.seq, repair.action, repair.outcome) == (complete + 1, "audit:repair", "REPAIRED")
    assert quarantined[0].name in repair.detail and f"{len(torn.encode())} bytes" in repair.detail
    report = verify_log(path, key.public_key())
    assert report.ok and report.entries == complete + 2


def test_second_writer_is_refused(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, key), pytest.raises(AuditLogError, match="already open"):
        AuditLog(path, key)
    with AuditLog(path, key) as log:  # lock released on close
        log.append(event(0))


def test_closed_log_refuses_appends(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", key)
    log.close()
    with pytest.raises(AuditLogError, match="closed"):
        log.append(event(0))


# ---------------------------------------------------------------------- tampering


def test_edited_field_is_detected(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    path = tmp_path / "audit.jsonl"
    make_log(path, key, 5)
    content = lines(path)
    record = json.loads(content[2])
    record["rows"] = 999_999
    content[2] = json.dumps(record, sort_keys=True, separators=(",", ":"))
    write_lines(path, content)
    report = verify_log(path, key.public_key())
    assert not report.ok
    assert [(p.kind, p.line, p.seq) for p in report.problems] == [("edited", 3, 3)]


def test_edited_seq_field_is_attributed_to_the_right_position(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    path = tmp_path / "audit.jsonl"
    make_log(path, key, 5)
    content = lines(path)
    record = json.loads(content[1])
    record["seq"] = 40
    content[1] = json.dumps(record)
    write_lines(path, content)
    report = verify_log(path, key.public_key())
    assert [(p.kind, p.line, p.seq) for p in report.problems] == [("edited", 2, 2)]


def test_edited_and_rehashed_entry_is_detected(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    path = tmp_path / "audit.jsonl"
    entries = make_log(path, key, 5)
    forged = sign_entry({**entries[2].body(), "outcome": "ok", "rows": 1}, Ed25519PrivateKey.generate())
    content = lines(path)
    content[2] = forged.to_json()
    write_lines(path, content)
    report = verify_log(path, key.public_key())
    assert [(p.kind, p.line, p.seq) for p in report.problems] == [("edited", 3, 3)]


def test_removed_entry_is_detected(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    path = tmp_path / "audit.jsonl"
    make_log(path, key, 6)
    content = lines(path)
    del content[2:4]  # seqs 3 and 4
    write_lines(path, content)
    report = verify_log(path, key.public_key())
    assert [(p.kind, p.line, p.seq) for p in report.problems] == [("removed", 3, 3)]
    assert "seqs 3..4" in report.problems[0].message


def test_removed_first_entry_is_detected(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    path = tmp_path / "audit.jsonl"
    make_log(path, key, 3)
    write_lines(path, lines(path)[1:])
    report = verify_log(path, key.public_key())
    assert [(p.kind, p.line, p.seq) for p in report.problems] == [("removed", 1, 1)]


def test_inserted_forged_entry_is_detected(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    path = tmp_path / "audit.jsonl"
    entries = make_log(path, key, 4)
    intruder = Ed25519PrivateKey.generate()
    # A plausible forgery: next seq after entry 2, linked to it, signed with another key.
    body = {**asdict(event(99)), "seq": 3, "time": entries[1].time, "prev_hash": entries[1].hash}
    forged = sign_entry(body, intruder)
    content = lines(path)
    content.insert(2, forged.to_json())
    write_lines(path, content)
    report = verify_log(path, key.public_key())
    assert [(p.kind, p.line, p.seq) for p in report.problems] == [("inserted", 3, 3)]
    assert "line 4" in report.problems[0].message  # the authentic seq 3 is there


def test_duplicated_entry_is_detected(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    path = tmp_path / "audit.jsonl"
    make_log(path, key, 4)
    content = lines(path)
    content.append(content[1])
    write_lines(path, content)
    report = verify_log(path, key.public_key())
    assert [(p.kind, p.line, p.seq) for p in report.problems] == [("inserted", 5, 2)]


def test_swapped_entries_are_detected(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    path = tmp_path / "audit.jsonl"
    make_log(path, key, 5)
    content = lines(path)
    content[1], content[2] = content[2], content[1]
    write_lines(path, content)
    report = verify_log(path, key.public_key())
    assert kinds(report) == ["reordered"]
    assert report.problems[0].line in (2, 3)


def test_entry_moved_early_is_reported_as_reordered(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    path = tmp_path / "audit.jsonl"
    make_log(path, key, 6)
    content = lines(path)
    content.insert(1, content.pop(4))  # seq 5 moved to line 2
    write_lines(path, content)
    report = verify_log(path, key.public_key())
    assert [(p.kind, p.line, p.seq) for p in report.problems] == [("reordered", 2, 5)]
    assert "before seq 2" in report.problems[0].message


def test_tampered_signature_is_detected(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    path = tmp_path / "audit.jsonl"
    make_log(path, key, 4)
    content = lines(path)
    record = json.loads(content[1])
    record["signature"] = ("1" if record["signature"][0] != "1" else "2") + record["signature"][1:]
    content[1] = json.dumps(record)
    write_lines(path, content)
    report = verify_log(path, key.public_key())
    assert [(p.kind, p.line, p.seq) for p in report.problems] == [("bad-signature", 2, 2)]


def test_wrong_public_key_flags_every_entry(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    path = tmp_path / "audit.jsonl"
    make_log(path, key, 3)
    report = verify_log(path, Ed25519PrivateKey.generate().public_key())
    assert kinds(report) == ["bad-signature"] * 3 and report.head is None


def test_malformed_line_is_reported_without_a_phantom_removal(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    path = tmp_path / "audit.jsonl"
    make_log(path, key, 4)
    content = lines(path)
    content[1] = content[1][:30] + "}{garbage"
    content.insert(3, "")
    write_lines(path, content)
    report = verify_log(path, key.public_key())
    assert [(p.kind, p.line) for p in report.problems] == [("malformed", 2), ("malformed", 4)]


@pytest.mark.parametrize(
    "mutate",
    [
        lambda r: {**r, "extra": 1},
        lambda r: {k: v for k, v in r.items() if k != "detail"},
        lambda r: {**r, "rows": "10"},
        lambda r: {**r, "seq": True},
        lambda r: {**r, "hash": r["hash"].upper()},
        lambda r: [r],
    ],
)
def test_strict_parsing(tmp_path: Path, key: Ed25519PrivateKey, mutate: Any) -> None:
    path = tmp_path / "audit.jsonl"
    make_log(path, key, 2)
    content = lines(path)
    content[0] = json.dumps(mutate(json.loads(content[0])))
    write_lines(path, content)
    assert kinds(verify_log(path, key.public_key())) == ["malformed"]


def test_duplicate_json_keys_are_malformed(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    path = tmp_path / "audit.jsonl"
    make_log(path, key, 2)
    content = lines(path)
    content[0] = '{"rows":1,' + content[0][1:]
    write_lines(path, content)
    report = verify_log(path, key.public_key())
    assert kinds(report) == ["malformed"] and "duplicate key" in report.problems[0].message


# ---------------------------------------------------------------------- witnesses


def test_truncated_tail_is_only_detected_against_a_witness(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, key) as log:
        for i in range(5):
            log.append(event(i))
        witnessed = log.head()
    write_lines(path, lines(path)[:3])
    assert verify_log(path, key.public_key()).ok
    report = verify_log(path, key.public_key(), witnessed=[witnessed])
    assert [(p.kind, p.seq) for p in report.problems] == [("truncated-vs-witness", 5)]


def test_consistent_rewrite_is_only_detected_against_a_witness(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, key) as log:
        for i in range(3):
            log.append(event(i))
        early = log.head()
        for i in range(3, 6):
            log.append(event(i))
        late = log.head()
    # The key holder rewrites history from seq 2 on and re-signs a consistent chain.
    original = [AuditEntry.from_json(line) for line in lines(path)]
    rewritten: list[AuditEntry] = [original[0]]
    for entry in original[1:]:
        body = entry.body()
        body["prev_hash"] = rewritten[-1].hash
        if entry.seq == 2:
            body["outcome"], body["detail"] = "ok", "nothing to see"
        rewritten.append(sign_entry(body, key))
    write_lines(path, [e.to_json() for e in rewritten])

    assert verify_log(path, key.public_key()).ok
    report = verify_log(path, key.public_key(), witnessed=[early, late])
    assert [(p.kind, p.seq, p.line) for p in report.problems] == [
        ("diverges-from-witness", 3, 3),
        ("diverges-from-witness", 6, 6),
    ]


def test_rewrite_that_drops_entries_is_truncated_vs_witness(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, key) as log:
        for i in range(4):
            log.append(event(i))
        witnessed = log.head()
    path.unlink()
    make_log(path, key, 2)  # a fresh, shorter chain with the same key
    report = verify_log(path, key.public_key(), witnessed=[witnessed])
    assert kinds(report) == ["truncated-vs-witness"]


def test_forged_witness_head_is_reported(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, key) as log:
        log.append(event(0))
        head = log.head()
    forged = replace(head, seq=1, hash="ab" * 32)
    assert not verify_head(forged, key.public_key())
    report = verify_log(path, key.public_key(), witnessed=[forged])
    assert [(p.kind, p.line) for p in report.problems] == [("bad-signature", 0)]


def test_head_json_round_trip(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    with AuditLog(tmp_path / "audit.jsonl", key) as log:
        log.append(event(0))
        head = log.head()
    again = AuditHead.from_json(head.to_json())
    assert again == head and verify_head(again, key.public_key())
    with pytest.raises(ValueError):
        AuditHead.from_json('{"seq": 1}')
    # An entry signature never passes as a head signature.
    entry = next(log.entries())
    assert not verify_head(replace(head, signature=entry.signature), key.public_key())


# ---------------------------------------------------------------------- keys


def test_signing_key_is_created_private_and_reloaded(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "audit.key"
    created = load_or_create_signing_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    assert isinstance(load_pem_private_key(path.read_bytes(), password=None), Ed25519PrivateKey)  # PKCS8 PEM
    loaded = load_or_create_signing_key(path)
    message = b"same key"
    created.public_key().verify(loaded.sign(message), message)
    assert [p.name for p in path.parent.iterdir()] == ["audit.key"]


# ---------------------------------------------------------------------- concurrency


def test_concurrent_appends_keep_a_valid_chain(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    path = tmp_path / "audit.jsonl"
    threads_n, per_thread = 8, 40
    with AuditLog(path, key) as log:
        barrier = threading.Barrier(threads_n)

        def work(t: int) -> None:
            barrier.wait()
            for i in range(per_thread):
                log.append(event(i, peer=f"thread-{t}"))

        threads = [threading.Thread(target=work, args=(t,)) for t in range(threads_n)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seqs = [e.seq for e in log.entries()]
    assert seqs == list(range(1, threads_n * per_thread + 1))
    report = verify_log(path, key.public_key())
    assert report.ok and report.entries == threads_n * per_thread


def test_concurrent_appends_share_fsyncs_and_each_returns_durable(
    tmp_path: Path, key: Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Group commit: appends written while an fsync runs are made durable by the next one, and
    no append returns before an fsync that covers its line has completed."""
    path = tmp_path / "audit.jsonl"
    real_fsync, durable, lock = os.fsync, [0], threading.Lock()  # bytes of the file made durable so far

    def slow_fsync(fd: int) -> None:
        size = os.fstat(fd).st_size  # what this fsync covers: every byte written before it began
        time.sleep(0.003)
        real_fsync(fd)
        with lock:
            durable.append(max(durable[-1], size))

    threads_n, per_thread = 8, 25
    returned: list[tuple[int, int]] = []  # (seq, bytes durable when its append returned)
    heads: list[tuple[int, int]] = []  # (head seq, bytes durable once the head was taken)
    with AuditLog(path, key) as log:
        monkeypatch.setattr(os, "fsync", slow_fsync)
        barrier = threading.Barrier(threads_n)

        def work(t: int) -> None:
            barrier.wait()
            for i in range(per_thread):
                entry = log.append(event(i, peer=f"thread-{t}"))
                with lock:
                    returned.append((entry.seq, durable[-1]))
                if i % 5 == 0:
                    head = log.head().seq
                    with lock:
                        heads.append((head, durable[-1]))

        threads = [threading.Thread(target=work, args=(t,)) for t in range(threads_n)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    ends = list(itertools.accumulate(len(line) for line in path.read_bytes().splitlines(keepends=True)))
    assert len(ends) == len(returned) == threads_n * per_thread
    assert all(ends[seq - 1] <= covered for seq, covered in returned)  # durable before it returned
    assert len(durable) - 1 < threads_n * per_thread  # fewer fsyncs than appends: they were shared
    assert all(ends[seq - 1] <= covered for seq, covered in heads)  # a head covers durable entries only
    report = verify_log(path, key.public_key())
    assert report.ok and report.entries == threads_n * per_thread


# ---------------------------------------------------------------------- properties

_text = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=40)
_events = st.builds(
    AuditEvent,
    peer=_text,
    action=_text,
    purpose=_text,
    case=_text,
    protocol=_text,
    rows=st.integers(min_value=-(2**70), max_value=2**70),
    outcome=_text,
    detail=_text,
    duration_ms=st.floats(allow_nan=False, allow_infinity=False),
)
_KEY = Ed25519PrivateKey.generate()


@settings(max_examples=40)
@given(events=st.lists(_events, max_size=12), restart_at=st.integers(min_value=0, max_value=12))
def test_random_event_sequences_verify(events: list[AuditEvent], restart_at: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "audit.jsonl"
        with AuditLog(path, _KEY, fsync=False) as log:
            for e in events[:restart_at]:
                log.append(e)
        with AuditLog(path, _KEY, fsync=False) as log:
            for e in events[restart_at:]:
                log.append(e)
            stored = list(log.entries())
            head = log.head()
        assert [s.event() for s in stored] == events
        report = verify_log(path, _KEY.public_key(), witnessed=[head])
        assert report.ok, report.problems
        assert report.entries == len(events) == head.seq


@settings(max_examples=60)
@given(
    n=st.integers(min_value=3, max_value=10),
    data=st.data(),
    operation=st.sampled_from(["edit", "delete", "swap", "forge", "duplicate", "truncate"]),
)
def test_random_tampering_is_classified(n: int, data: st.DataObject, operation: str) -> None:
    expected = {
        "edit": "edited",
        "delete": "removed",
        "swap": "reordered",
        "forge": "inserted",
        "duplicate": "inserted",
        "truncate": "truncated-vs-witness",
    }[operation]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "audit.jsonl"
        with AuditLog(path, _KEY, fsync=False) as log:
            for i in range(n):
                log.append(event(i))
            head = log.head()
        content = lines(path)
        if operation == "edit":
            i = data.draw(st.integers(0, n - 1))
            record = json.loads(content[i])
            field_name = data.draw(st.sampled_from(["peer", "action", "detail", "rows", "time"]))
            record[field_name] = record[field_name] + (1 if field_name == "rows" else "x")
            content[i] = json.dumps(record)
        elif operation == "delete":
            i = data.draw(st.integers(0, n - 2))  # the last one is a truncation
            del content[i]
        elif operation == "swap":
            i = data.draw(st.integers(0, n - 2))
            j = data.draw(st.integers(i + 1, n - 1))
            content[i], content[j] = content[j], content[i]
        elif operation == "forge":
            i = data.draw(st.integers(0, n - 1))
            original = AuditEntry.from_json(content[i])
            forged = sign_entry({**original.body(), "detail": "forged"}, Ed25519PrivateKey.generate())
            content.insert(data.draw(st.integers(0, n)), forged.to_json())
        elif operation == "duplicate":
            i = data.draw(st.integers(0, n - 1))
            content.insert(data.draw(st.integers(0, n)), content[i])
        else:
            del content[data.draw(st.integers(1, n - 1)) :]
        write_lines(path, content)
        report = verify_log(path, _KEY.public_key(), witnessed=[head])
        assert not report.ok
        assert expected in kinds(report), report.problems
        if operation in ("edit", "delete", "truncate"):
            assert len(report.problems) == 1, report.problems
