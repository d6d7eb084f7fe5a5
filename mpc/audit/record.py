"""The audit record: events, stored entries, signed heads, and their canonical bytes.

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
entry signature can never be passed off as a head signature or the other way round.

This module also holds the helpers that the writer (:mod:`mpc.audit.writer`) and the verifier
(:mod:`mpc.audit.verifier`) share: :func:`canonical_json`, :func:`sha256`, :func:`is_int` and
:func:`entry_signature_ok`. Parsing is strict (:meth:`AuditEntry.from_json`,
:meth:`AuditHead.from_json`) and raises :class:`ValueError` on anything unexpected.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = [
    "GENESIS_HASH",
    "HEAD_TYPE",
    "AuditEntry",
    "AuditEvent",
    "AuditHead",
    "canonical_json",
    "entry_signature_ok",
    "is_int",
    "sha256",
    "verify_head",
]

GENESIS_HASH = "0" * 64
HEAD_TYPE = "mpc-audit-head/v1"

_HEX = frozenset("0123456789abcdef")
_LINE_BREAK_ESCAPES = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}


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
        return canonical_json(self.body())

    def computed_hash(self) -> str:
        """Hex SHA-256 of :meth:`canonical_bytes` (equals ``hash`` unless the entry was edited)."""
        return sha256(self.canonical_bytes()).hex()

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
            if not is_int(data[name]):
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
        return canonical_json({"hash": self.hash, "seq": self.seq, "time": self.time, "type": HEAD_TYPE})

    def to_json(self) -> str:
        """JSON object with the four fields."""
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> AuditHead:
        """Parse :meth:`to_json` output; raises :class:`ValueError` on anything else."""
        data = _strict_json_object(text)
        if set(data) != {"seq", "hash", "time", "signature"}:
            raise ValueError(f"an audit head has fields seq, hash, time, signature; got {sorted(data)}")
        if not is_int(data["seq"]) or data["seq"] < 0:
            raise ValueError("head seq must be a non-negative integer")
        if not _is_hex(data["hash"], 64) or not isinstance(data["time"], str):
            raise ValueError("head hash must be 64 lower-case hex digits and time a string")
        if not isinstance(data["signature"], str):
            raise ValueError("head signature must be a string")
        return cls(seq=data["seq"], hash=data["hash"], time=data["time"], signature=data["signature"])


def verify_head(head: AuditHead, public_key: Ed25519PublicKey) -> bool:
    """Whether ``head`` was signed by the holder of ``public_key``'s private key."""
    return _verify(public_key, head.signature, head.statement_bytes())


# ---------------------------------------------------------------------- canonical bytes, hashes, signatures


def sha256(data: bytes) -> bytes:
    """The raw 32-byte SHA-256 digest of ``data``."""
    digest = hashes.Hash(hashes.SHA256())
    digest.update(data)
    return digest.finalize()


def canonical_json(data: dict[str, Any]) -> bytes:
    """Sorted-key compact JSON of ``data``, non-ASCII kept, as UTF-8; :class:`ValueError` on lone surrogates."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"text is not valid Unicode (lone surrogate): {exc}") from exc


def is_int(value: object) -> bool:
    """Whether ``value`` is an ``int`` and not a ``bool``."""
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


def entry_signature_ok(entry: AuditEntry, public_key: Ed25519PublicKey) -> bool:
    """Whether ``entry.signature`` verifies under ``public_key`` over the raw bytes of ``entry.hash``."""
    return _verify(public_key, entry.signature, bytes.fromhex(entry.hash))
