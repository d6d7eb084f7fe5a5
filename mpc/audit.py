"""Append-only, hash-chained, Ed25519-signed audit log (one per daemon).

Every request a daemon handles becomes one :class:`AuditEntry`, stored as one JSON object per line.

* **Canonical bytes** of an entry: the JSON object of every field except ``hash`` and
  ``signature``, keys sorted, separators ``(",", ":")``, non-ASCII kept, encoded as UTF-8.
* ``hash`` = hex SHA-256 of the canonical bytes; ``prev_hash`` = the previous entry's ``hash``
  (64 zeros for the first entry), so each entry commits to the whole history before it.
* ``signature`` = hex Ed25519 signature by the daemon's audit key over the 32 raw hash bytes.
* ``seq`` counts from 1: entry ``seq = n`` is the n-th entry of the log.

An :class:`AuditHead` is a signed statement "my log has ``seq`` entries, the last one with hash
``hash``" (made at ``time``). Its signature covers the canonical JSON of
``{"hash", "seq", "time", "type": "mpc-audit-head/v1"}``, which is never 32 bytes long, so an
entry signature can never be passed off as a head signature or the other way round. A
coordinator that records (witnesses) heads can later prove a log was truncated or rewritten, which
the daemon itself (holding the key) could otherwise do undetectably.

Durability: each entry is one ``os.write`` of a full line on a descriptor opened with
``O_APPEND``, followed by ``os.fsync`` (pass ``fsync=False`` to trade durability for speed: the
line then reaches the OS page cache but may be lost on power failure). Appends are serialised by
a thread lock; an exclusive ``flock`` on the file keeps a second writer (another process, or a
second :class:`AuditLog` on the same path) out.

:func:`verify_log` checks a whole file and classifies what is wrong, line by line; see its
docstring for the classification rules.
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import json
import math
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

__all__ = [
    "GENESIS_HASH",
    "HEAD_TYPE",
    "AuditEntry",
    "AuditEvent",
    "AuditHead",
    "AuditLog",
    "AuditLogError",
    "ProblemKind",
    "VerifyProblem",
    "VerifyReport",
    "load_or_create_signing_key",
    "verify_head",
    "verify_log",
]

GENESIS_HASH = "0" * 64
HEAD_TYPE = "mpc-audit-head/v1"

ProblemKind = Literal[
    "edited",
    "removed",
    "inserted",
    "reordered",
    "bad-signature",
    "malformed",
    "truncated-vs-witness",
    "diverges-from-witness",
]

_HEX = frozenset("0123456789abcdef")
_LINE_BREAK_ESCAPES = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}


class AuditLogError(Exception):
    """The audit log cannot be opened or written (corrupt tail, wrong key, locked, bad event)."""


# ---------------------------------------------------------------------- records


@dataclass(frozen=True)
class AuditEvent:
    """What a caller records: one request or security decision."""

    peer: str
    action: str
    purpose: str = ""
    case: str = ""
    protocol: str = ""
    rows: int = 0
    outcome: str = "ok"
    detail: str = ""
    duration_ms: float = 0.0


_EVENT_FIELDS = tuple(f.name for f in fields(AuditEvent))
_STR_FIELDS = ("time", "peer", "action", "purpose", "case", "protocol", "outcome", "detail")


@dataclass(frozen=True)
class AuditEntry:
    """What is stored: the event plus sequence number, time, chain link, hash and signature."""

    seq: int
    time: str
    peer: str
    action: str
    purpose: str
    case: str
    protocol: str
    rows: int
    outcome: str
    detail: str
    duration_ms: float
    prev_hash: str
    hash: str
    signature: str

    def body(self) -> dict[str, Any]:
        """The fields covered by the hash (everything except ``hash`` and ``signature``)."""
        data = asdict(self)
        del data["hash"], data["signature"]
        return data

    def canonical_bytes(self) -> bytes:
        """Canonical bytes: sorted-key compact JSON of :meth:`body`, UTF-8."""
        return _canonical(self.body())

    def computed_hash(self) -> str:
        """Hex SHA-256 of :meth:`canonical_bytes` (equals ``hash`` unless the entry was edited)."""
        return _sha256(self.canonical_bytes()).hex()

    def event(self) -> AuditEvent:
        """The :class:`AuditEvent` part of the entry."""
        return AuditEvent(**{name: getattr(self, name) for name in _EVENT_FIELDS})

    def to_json(self) -> str:
        """One line of the log file (without the newline).

        Non-ASCII text is kept readable, except the characters that line-splitting tools treat
        as line breaks (U+0085, U+2028, U+2029), which are written as JSON escapes.
        """
        text = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        return text.translate(_LINE_BREAK_ESCAPES)

    @classmethod
    def from_json(cls, text: str | bytes) -> AuditEntry:
        """Parse one line, strictly: exact field set, exact types, lower-case hex.

        Raises :class:`ValueError` with a description of the first problem found.
        """
        data = _strict_json_object(text)
        expected = {f.name for f in fields(cls)}
        missing = expected - data.keys()
        extra = data.keys() - expected
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing {sorted(missing)}")
            if extra:
                parts.append(f"unexpected {sorted(extra)}")
            raise ValueError("wrong fields: " + ", ".join(parts))
        for name in _STR_FIELDS:
            if not isinstance(data[name], str):
                raise ValueError(f"field {name!r} must be a string")
        for name in ("seq", "rows"):
            if not _is_int(data[name]):
                raise ValueError(f"field {name!r} must be an integer")
        if not isinstance(data["duration_ms"], float):
            raise ValueError("field 'duration_ms' must be a floating-point number")
        for name, length in (("prev_hash", 64), ("hash", 64), ("signature", 128)):
            if not _is_hex(data[name], length):
                raise ValueError(f"field {name!r} must be {length} lower-case hex digits")
        entry = cls(**data)
        entry.canonical_bytes()  # lone surrogates from \\ud800 escapes cannot be encoded
        return entry


@dataclass(frozen=True)
class AuditHead:
    """Signed statement: the log has ``seq`` entries, the last with hash ``hash``."""

    seq: int
    hash: str
    time: str
    signature: str

    def statement_bytes(self) -> bytes:
        """The bytes the signature covers."""
        return _canonical({"hash": self.hash, "seq": self.seq, "time": self.time, "type": HEAD_TYPE})

    def to_json(self) -> str:
        """JSON object with the four fields."""
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> AuditHead:
        """Parse :meth:`to_json` output; raises :class:`ValueError` on anything else."""
        data = _strict_json_object(text)
        if set(data) != {"seq", "hash", "time", "signature"}:
            raise ValueError(f"an audit head has fields seq, hash, time, signature; got {sorted(data)}")
        if not _is_int(data["seq"]) or data["seq"] < 0:
            raise ValueError("head seq must be a non-negative integer")
        if not _is_hex(data["hash"], 64) or not isinstance(data["time"], str):
            raise ValueError("head hash must be 64 lower-case hex digits and time a string")
        if not isinstance(data["signature"], str):
            raise ValueError("head signature must be a string")
        return cls(seq=data["seq"], hash=data["hash"], time=data["time"], signature=data["signature"])


def verify_head(head: AuditHead, public_key: Ed25519PublicKey) -> bool:
    """Whether ``head`` was signed by the holder of ``public_key``'s private key."""
    return _verify(public_key, head.signature, head.statement_bytes())


# ---------------------------------------------------------------------- helpers


def _sha256(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SHA256())
    digest.update(data)
    return digest.finalize()


def _canonical(data: dict[str, Any]) -> bytes:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"text is not valid Unicode (lone surrogate): {exc}") from exc


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_hex(value: object, length: int) -> bool:
    return isinstance(value, str) and len(value) == length and set(value) <= _HEX


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name} is not allowed")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _strict_json_object(text: str | bytes) -> dict[str, Any]:
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"not UTF-8: {exc}") from exc
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def _verify(public_key: Ed25519PublicKey, signature_hex: str, message: bytes) -> bool:
    try:
        public_key.verify(bytes.fromhex(signature_hex), message)
    except (InvalidSignature, ValueError):
        return False
    return True


def _entry_signature_ok(entry: AuditEntry, public_key: Ed25519PublicKey) -> bool:
    return _verify(public_key, entry.signature, bytes.fromhex(entry.hash))


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _validate_event(event: AuditEvent) -> AuditEvent:
    for name in ("peer", "action", "purpose", "case", "protocol", "outcome", "detail"):
        value = getattr(event, name)
        if not isinstance(value, str):
            raise AuditLogError(f"audit event field {name!r} must be a string, got {value!r}")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise AuditLogError(f"audit event field {name!r} is not valid Unicode") from exc
    if not _is_int(event.rows):
        raise AuditLogError(f"audit event rows must be an integer, got {event.rows!r}")
    if isinstance(event.duration_ms, bool) or not isinstance(event.duration_ms, int | float):
        raise AuditLogError(f"audit event duration_ms must be a number, got {event.duration_ms!r}")
    duration = float(event.duration_ms)
    if not math.isfinite(duration):
        raise AuditLogError(f"audit event duration_ms must be finite, got {duration!r}")
    if type(event.duration_ms) is not float:
        event = replace(event, duration_ms=duration)
    return event


def _read_last_line(path: Path) -> tuple[bytes, bool]:
    """The last line of ``path`` (without newline) and whether it ended with a newline."""
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        end = handle.tell()
        if end == 0:
            return b"", True
        handle.seek(end - 1)
        terminated = handle.read(1) == b"\n"
        stop = end - 1 if terminated else end
        block = 4096
        pos = stop
        chunks: list[bytes] = []
        while pos > 0:
            start = max(0, pos - block)
            handle.seek(start)
            chunk = handle.read(pos - start)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                chunks.append(chunk[newline + 1 :])
                break
            chunks.append(chunk)
            pos = start
        return b"".join(reversed(chunks)), terminated


# ---------------------------------------------------------------------- signing key


def load_or_create_signing_key(path: Path) -> Ed25519PrivateKey:
    """Load the daemon's Ed25519 audit key (PKCS8 PEM), creating it with mode 0600 if missing.

    Creation writes a temporary file and hard-links it into place, so concurrent callers end up
    with the same key and nobody ever reads a half-written file.
    """
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, pem)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # somebody else won the race: use their key
        finally:
            os.unlink(tmp)
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise AuditLogError(f"{path} does not hold an Ed25519 private key")
    return loaded


# ---------------------------------------------------------------------- the log


class AuditLog:
    """The writer side: one instance per daemon, holding an exclusive lock on the file."""

    def __init__(self, path: Path, signing_key: Ed25519PrivateKey, *, fsync: bool = True) -> None:
        """Open or create the log at ``path`` and continue its chain.

        The existing last line must parse, hash correctly and carry a valid signature under
        ``signing_key``; otherwise :class:`AuditLogError` is raised rather than silently
        starting a chain that :func:`verify_log` would flag. (Only the tail is checked here;
        run :func:`verify_log` for the whole file.)
        """
        self.path = Path(path)
        self._key = signing_key
        self._public_key = signing_key.public_key()
        self._fsync = fsync
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise AuditLogError(f"audit log {self.path} is already open by another writer") from None
        try:
            if created:
                os.fsync(fd)
                _fsync_directory(self.path.parent)
            self._seq, self._last_hash = self._recover_tail()
        except BaseException:
            os.close(fd)
            raise
        self._fd: int | None = fd

    def _recover_tail(self) -> tuple[int, str]:
        line, terminated = _read_last_line(self.path)
        if not line and terminated:
            return 0, GENESIS_HASH
        if not terminated:
            raise AuditLogError(
                f"audit log {self.path} ends with an incomplete line (torn write?); "
                "inspect it with verify_log before continuing"
            )
        try:
            entry = AuditEntry.from_json(line)
        except ValueError as exc:
            raise AuditLogError(f"last line of {self.path} is malformed: {exc}") from exc
        if entry.computed_hash() != entry.hash:
            raise AuditLogError(f"last entry (seq {entry.seq}) of {self.path} was edited")
        if not _entry_signature_ok(entry, self._public_key):
            raise AuditLogError(f"last entry (seq {entry.seq}) of {self.path} is not signed by this signing key")
        return entry.seq, entry.hash

    @property
    def public_key(self) -> Ed25519PublicKey:
        """The key that verifies this log."""
        return self._public_key

    def append(self, event: AuditEvent) -> AuditEntry:
        """Append one event; returns the stored entry. Thread-safe; durable when it returns."""
        event = _validate_event(event)
        with self._lock:
            if self._fd is None:
                raise AuditLogError(f"audit log {self.path} is closed")
            body: dict[str, Any] = {
                **asdict(event),
                "seq": self._seq + 1,
                "time": _utc_now(),
                "prev_hash": self._last_hash,
            }
            digest = _sha256(_canonical(body))
            entry = AuditEntry(**body, hash=digest.hex(), signature=self._key.sign(digest).hex())
            data = (entry.to_json() + "\n").encode("utf-8")
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            if self._fsync:
                os.fsync(self._fd)
            self._seq, self._last_hash = entry.seq, entry.hash
            return entry

    def head(self) -> AuditHead:
        """A signed head for the log as it is now (for a coordinator to witness)."""
        with self._lock:
            seq, last = self._seq, self._last_hash
        time = _utc_now()
        unsigned = AuditHead(seq=seq, hash=last, time=time, signature="")
        signature = self._key.sign(unsigned.statement_bytes()).hex()
        return AuditHead(seq=seq, hash=last, time=time, signature=signature)

    def entries(self) -> Iterator[AuditEntry]:
        """Parse every line of the file (no verification; raises :class:`ValueError` if malformed)."""
        with self.path.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                line = raw.rstrip(b"\n")
                try:
                    yield AuditEntry.from_json(line)
                except ValueError as exc:
                    raise ValueError(f"{self.path}:{number}: {exc}") from exc

    def close(self) -> None:
        """Release the file and its lock; further appends raise :class:`AuditLogError`."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        fd: int | None = getattr(self, "_fd", None)
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


def _fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# ---------------------------------------------------------------------- verification


@dataclass
class VerifyProblem:
    """One thing wrong with a log. ``line`` is 1-based (0 for problems with no line)."""

    line: int
    seq: int | None
    kind: ProblemKind
    message: str


@dataclass
class VerifyReport:
    """Result of :func:`verify_log`.

    ``entries`` is the number of lines read (blank and malformed ones included). ``head`` describes the last authentic
    entry found (seq, hash, that entry's time and its entry signature, which verifies over the
    raw hash bytes, not as an :class:`AuditHead` statement); ``None`` if there is none.
    """

    entries: int
    ok: bool
    problems: list[VerifyProblem] = field(default_factory=list)
    head: AuditHead | None = None


@dataclass
class _Record:
    line: int
    entry: AuditEntry
    hash_ok: bool
    sig_ok: bool
    seq: int  # trusted seq (inferred for edited entries)
    status: str = ""  # "", "edited", "duplicate", "reordered", "filled", "inserted", ...


def verify_log(path: Path, public_key: Ed25519PublicKey, witnessed: Sequence[AuditHead] = ()) -> VerifyReport:
    """Verify a whole audit log and, optionally, that it still contains witnessed heads.

    Classification, per line (each problem names the line, the seq and what is wrong):

    * ``malformed``: not a strict JSON entry (also blank lines and a torn last line).
    * ``edited``: the content no longer matches the signed hash (a field was changed); or an
      entry with a self-consistent hash but an invalid signature sits where an authentic entry
      is missing and the chain does not pass through it (altered and re-hashed, or replaced).
    * ``bad-signature``: hash matches the content and the chain passes through the entry, but the
      signature does not verify (signature altered, or the log is not from this key).
    * ``inserted``: an entry that is not part of the chain: not signed by this key and not
      filling a gap, a replayed copy of another line, or a second entry claiming a seq.
    * ``reordered``: an authentic entry whose seq is lower than one on an earlier line.
    * ``removed``: authentic entries are missing (seq gap; the next entry's prev_hash names an
      entry that is not in the file). Reported on the line after the gap with the first
      missing seq.
    * chain links between authentic neighbours that do not match are reported as ``inserted``
      (two chains spliced together).
    * against each witnessed head: ``truncated-vs-witness`` if the log ends before the head's
      seq, ``diverges-from-witness`` if the entry with that seq is missing or has another hash
      (the log was rewritten after the witness saw it), ``bad-signature`` (line 0) if the
      witnessed head itself does not verify.

    A log rewritten consistently with the right key verifies clean on its own; only witnessed
    heads reveal it.
    """
    path = Path(path)
    problems: list[VerifyProblem] = []
    records: list[_Record] = []
    malformed_lines: list[int] = []
    data = path.read_bytes()
    raw_lines = data.split(b"\n")
    torn = bool(raw_lines) and raw_lines[-1] != b""
    if raw_lines and raw_lines[-1] == b"":
        raw_lines.pop()
    count = 0
    for number, raw in enumerate(raw_lines, start=1):
        count += 1
        if not raw.strip():
            problems.append(VerifyProblem(number, None, "malformed", "empty line"))
            malformed_lines.append(number)
            continue
        try:
            entry = AuditEntry.from_json(raw)
        except ValueError as exc:
            suffix = " (last line has no newline: torn write?)" if torn and number == len(raw_lines) else ""
            problems.append(VerifyProblem(number, None, "malformed", f"{exc}{suffix}"))
            malformed_lines.append(number)
            continue
        hash_ok = entry.computed_hash() == entry.hash
        sig_ok = _entry_signature_ok(entry, public_key)
        records.append(_Record(number, entry, hash_ok, sig_ok, entry.seq))

    authentic = [r for r in records if r.sig_ok]
    intact = [r for r in authentic if r.hash_ok]

    # Duplicates (replayed lines) and forks (two authentic entries with one seq).
    by_hash: dict[str, _Record] = {}
    first_with_seq: dict[int, _Record] = {}
    for r in intact:
        if r.entry.hash in by_hash:
            r.status = "duplicate"
            problems.append(
                VerifyProblem(
                    r.line,
                    r.entry.seq,
                    "inserted",
                    f"entry seq {r.entry.seq} is a copy of line {by_hash[r.entry.hash].line}",
                )
            )
            continue
        by_hash[r.entry.hash] = r
        other = first_with_seq.get(r.entry.seq)
        if other is not None:
            r.status = "fork"
            problems.append(
                VerifyProblem(
                    r.line,
                    r.entry.seq,
                    "inserted",
                    f"second entry claiming seq {r.entry.seq} (first on line {other.line}) "
                    "with a different hash: the chain forks",
                )
            )
            continue
        first_with_seq[r.entry.seq] = r
    chain = [r for r in intact if not r.status]

    # Edited entries (hash mismatch, signature over the stored hash valid): trust only the hash.
    prev_index = {r.entry.prev_hash: r for r in chain}
    for r in authentic:
        if r.hash_ok:
            continue
        r.status = "edited"
        successor = prev_index.get(r.entry.hash)
        r.seq = successor.entry.seq - 1 if successor is not None else r.entry.seq
        changed = _changed_fields_hint(r.entry)
        problems.append(
            VerifyProblem(
                r.line,
                r.seq,
                "edited",
                f"content of entry seq {r.seq} does not match its signed hash{changed}",
            )
        )
        if r.entry.hash not in by_hash and r.seq not in first_with_seq:
            by_hash[r.entry.hash] = r
            first_with_seq[r.seq] = r

    # Reordering: authentic entries not on the longest increasing run of seqs in file order.
    in_order = _longest_increasing(chain)
    for r in chain:
        if id(r) not in in_order:
            r.status = "reordered"
            earlier = [o for o in chain if o.line < r.line and o.entry.seq > r.entry.seq]
            later = [o for o in chain if o.line > r.line and o.entry.seq < r.entry.seq]
            if earlier:
                other = max(earlier, key=lambda o: o.entry.seq)
                where = f"after seq {other.entry.seq} (line {other.line})"
            else:
                other = min(later, key=lambda o: o.entry.seq)
                where = f"before seq {other.entry.seq} (line {other.line})"
            problems.append(VerifyProblem(r.line, r.entry.seq, "reordered", f"entry seq {r.entry.seq} appears {where}"))

    # Walk the seqs 1..max and check every link; fill gaps with unsigned or malformed lines.
    slots: dict[int, _Record] = dict(first_with_seq)
    max_seq = max(slots, default=0)
    unsigned = [r for r in records if not r.sig_ok]
    claimed: set[int] = set()  # ids of unsigned records used to fill a gap
    claimed_malformed: set[int] = set()
    seq = 1
    while seq <= max_seq:
        current = slots.get(seq)
        if current is not None:
            if current.status != "edited" and seq > 1 and (seq - 1) in slots:
                previous = slots[seq - 1]
                if current.entry.prev_hash != previous.entry.hash:
                    problems.append(
                        VerifyProblem(
                            current.line,
                            seq,
                            "inserted",
                            f"entry seq {seq} does not link to seq {seq - 1} (line "
                            f"{previous.line}): prev_hash {current.entry.prev_hash[:12]}… "
                            f"!= {previous.entry.hash[:12]}…",
                        )
                    )
            elif seq == 1 and current.status != "edited" and current.entry.prev_hash != GENESIS_HASH:
                problems.append(
                    VerifyProblem(
                        current.line,
                        1,
                        "inserted",
                        "first entry does not start from the genesis hash",
                    )
                )
            seq += 1
            continue
        # Gap [seq, end]
        end = seq
        while end + 1 <= max_seq and (end + 1) not in slots:
            end += 1
        low = slots[seq - 1].line if (seq - 1) in slots else 0
        after = slots[end + 1]
        high = after.line
        missing = end - seq + 1
        fillers = [r for r in unsigned if low < r.line < high and id(r) not in claimed]
        through = _path_through(
            fillers,
            after.entry.prev_hash,
            slots[seq - 1].entry.hash if (seq - 1) in slots else GENESIS_HASH,
        )
        taken = 0
        for r in fillers:
            if taken == missing:
                break
            claimed.add(id(r))
            taken += 1
            slot = seq + taken - 1
            r.seq = slot
            if id(r) in through:
                r.status = "bad-signature"
                problems.append(
                    VerifyProblem(
                        r.line,
                        slot,
                        "bad-signature",
                        f"signature of entry seq {slot} does not verify (the chain passes "
                        "through it: signature altered, or written with another key)",
                    )
                )
            else:
                r.status = "edited"
                problems.append(
                    VerifyProblem(
                        r.line,
                        slot,
                        "edited",
                        f"entry seq {slot} was replaced: not signed by this key, and the next "
                        f"authentic entry (line {high}) links to a hash absent from the log",
                    )
                )
        malformed_between = [n for n in malformed_lines if low < n < high and n not in claimed_malformed]
        for n in malformed_between[: missing - taken]:
            claimed_malformed.add(n)
            taken += 1
        if taken < missing:
            first = seq + taken
            span = f"seq {first}" if first == end else f"seqs {first}..{end}"
            problems.append(
                VerifyProblem(
                    high,
                    first,
                    "removed",
                    f"{span} missing before line {high} (entry seq {end + 1} links to "
                    f"{after.entry.prev_hash[:12]}…, which is not in the log)",
                )
            )
        seq = end + 1

    # Unsigned records that fill no gap.
    only_unsigned = not authentic
    last_line_of_chain = slots[max_seq].line if max_seq else 0
    tail_hash = slots[max_seq].entry.hash if max_seq else GENESIS_HASH
    tail = [r for r in unsigned if id(r) not in claimed and r.line > last_line_of_chain]
    tail_through = _path_forward(tail, tail_hash, max_seq)
    for r in unsigned:
        if id(r) in claimed:
            continue
        if only_unsigned or id(r) in tail_through:
            reason = (
                "no entry in this log verifies with the given public key"
                if only_unsigned
                else "entry after the last authentic one is not signed by this key "
                "(forged and appended, or altered and re-hashed)"
            )
            problems.append(
                VerifyProblem(
                    r.line,
                    r.entry.seq,
                    "bad-signature",
                    f"signature of entry seq {r.entry.seq} does not verify: {reason}",
                )
            )
        else:
            holder = slots.get(r.entry.seq)
            where = f" (seq {r.entry.seq} is on line {holder.line})" if holder is not None else ""
            problems.append(
                VerifyProblem(
                    r.line,
                    r.entry.seq,
                    "inserted",
                    f"entry seq {r.entry.seq} is not signed by this key and is not part of the chain{where}",
                )
            )

    # Witnessed heads.
    for w in witnessed:
        if not verify_head(w, public_key):
            problems.append(
                VerifyProblem(
                    0,
                    w.seq,
                    "bad-signature",
                    f"witnessed head seq {w.seq} ({w.time}) does not verify with this key",
                )
            )
            continue
        if w.seq == 0:
            continue
        holder = slots.get(w.seq)
        if w.seq > max_seq:
            problems.append(
                VerifyProblem(
                    last_line_of_chain,
                    w.seq,
                    "truncated-vs-witness",
                    f"witnessed head at {w.time} had {w.seq} entries; the log now ends at seq {max_seq}",
                )
            )
        elif holder is None:
            problems.append(
                VerifyProblem(
                    0,
                    w.seq,
                    "diverges-from-witness",
                    f"witnessed entry seq {w.seq} (hash {w.hash[:12]}…, witnessed {w.time}) is missing from the log",
                )
            )
        elif holder.entry.hash != w.hash:
            problems.append(
                VerifyProblem(
                    holder.line,
                    w.seq,
                    "diverges-from-witness",
                    f"entry seq {w.seq} has hash {holder.entry.hash[:12]}… but the head "
                    f"witnessed at {w.time} says {w.hash[:12]}…: the log was rewritten",
                )
            )

    problems.sort(key=lambda p: (p.line == 0, p.line, p.kind))
    head = None
    if max_seq:
        last = slots[max_seq].entry
        head = AuditHead(seq=max_seq, hash=last.hash, time=last.time, signature=last.signature)
    return VerifyReport(entries=count, ok=not problems, problems=problems, head=head)


def _changed_fields_hint(entry: AuditEntry) -> str:
    return f" (stored hash {entry.hash[:12]}…, content hashes to {entry.computed_hash()[:12]}…)"


def _longest_increasing(chain: list[_Record]) -> set[int]:
    """ids of the records on one longest strictly increasing subsequence of seqs."""
    tails: list[int] = []
    tail_index: list[int] = []
    parent: list[int] = [-1] * len(chain)
    for i, r in enumerate(chain):
        k = bisect.bisect_left(tails, r.entry.seq)
        if k == len(tails):
            tails.append(r.entry.seq)
            tail_index.append(i)
        else:
            tails[k] = r.entry.seq
            tail_index[k] = i
        parent[i] = tail_index[k - 1] if k > 0 else -1
    keep: set[int] = set()
    i = tail_index[-1] if tail_index else -1
    while i >= 0:
        keep.add(id(chain[i]))
        i = parent[i]
    return keep


def _path_through(candidates: list[_Record], target: str, origin: str) -> set[int]:
    """ids of candidates on a hash path from ``origin`` to ``target`` (following prev_hash)."""
    by_hash = {r.entry.hash: r for r in candidates if r.hash_ok}
    path: set[int] = set()
    current = target
    while current in by_hash and id(by_hash[current]) not in path:
        r = by_hash[current]
        path.add(id(r))
        current = r.entry.prev_hash
    return path if current == origin else set()


def _path_forward(candidates: list[_Record], origin: str, origin_seq: int) -> set[int]:
    """ids of hash-consistent candidates continuing the chain from ``origin`` in order."""
    by_prev = {r.entry.prev_hash: r for r in candidates if r.hash_ok}
    path: set[int] = set()
    current, seq = origin, origin_seq
    while current in by_prev:
        r = by_prev[current]
        if id(r) in path or r.entry.seq != seq + 1:
            break
        path.add(id(r))
        current, seq = r.entry.hash, r.entry.seq
    return path
