"""The audit writer: one append-only log file per daemon, and the daemon's audit signing key.

:class:`AuditLog` continues the hash chain of an existing file (after checking its last line) or
starts a new one, and appends :class:`~mpc.audit.record.AuditEntry` lines signed with the
daemon's Ed25519 key (:func:`load_or_create_signing_key`). It also signs heads
(:meth:`AuditLog.head`) for a coordinator to witness.

Durability: each entry is one ``os.write`` of a full line on a descriptor opened with
``O_APPEND``, and :meth:`AuditLog.append` returns only once an ``os.fsync`` issued after that
write has completed (pass ``fsync=False`` to trade durability for speed: the line then reaches the
OS page cache but may be lost on power failure). Appends are serialised by a thread lock (the
chain: sequence number, previous hash, signature, write); the fsync is not under it but *group
committed*: while one fsync runs, other threads' entries are written behind it, and the next
fsync makes all of them durable at once (each waiter returns once an fsync that began after its
write has completed). Heads (:meth:`AuditLog.head`) only cover durable entries. An exclusive
``flock`` on the file keeps a second writer (another process, or a second :class:`AuditLog` on
the same path) out.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import threading
from collections.abc import Iterator
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from mpc.audit.record import (
    GENESIS_HASH,
    AuditEntry,
    AuditEvent,
    AuditHead,
    canonical_json,
    entry_signature_ok,
    is_int,
    sha256,
)

__all__ = [
    "AuditLog",
    "AuditLogError",
    "load_or_create_signing_key",
]


class AuditLogError(Exception):
    """The audit log cannot be opened or written (corrupt tail, wrong key, locked, bad event)."""


# ---------------------------------------------------------------------- helpers


def _utc_now() -> str:
    """The current UTC time, ISO 8601 with milliseconds and a ``Z`` suffix."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _validate_event(event: AuditEvent) -> AuditEvent:
    """Check an event's field types (:class:`AuditLogError` if wrong); ``duration_ms`` made a float."""
    for name in ("peer", "action", "purpose", "case", "protocol", "outcome", "detail"):
        value = getattr(event, name)
        if not isinstance(value, str):
            raise AuditLogError(f"audit event field {name!r} must be a string, got {value!r}")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise AuditLogError(f"audit event field {name!r} is not valid Unicode") from exc
    if not is_int(event.rows):
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

    def __init__(
        self, path: Path, signing_key: Ed25519PrivateKey, *, fsync: bool = True, repair_torn_tail: bool = False
    ) -> None:
        """Open or create the log at ``path`` and continue its chain.

        The existing last line must parse, hash correctly and carry a valid signature under
        ``signing_key``; otherwise :class:`AuditLogError` is raised rather than silently
        starting a chain that :func:`verify_log` would flag. (Only the tail is checked here;
        run :func:`verify_log` for the whole file.)

        A last line without its newline is a write the crash interrupted (its append never
        returned, so no head carrying it was witnessed). With ``repair_torn_tail`` (what daemons
        pass) those bytes are moved to a quarantine file next to the log, the log is cut back to
        its last complete line, and the first entry appended is ``audit:repair`` naming the file,
        the byte count and their SHA-256; without it the torn tail is refused.
        """
        self.path = Path(path)
        self._key = signing_key
        self._public_key = signing_key.public_key()
        self._fsync = fsync
        self._lock = threading.Lock()  # the chain and the writes
        self._sync_lock = threading.Lock()  # one fsync at a time (group commit); taken before _lock
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
            quarantined = self._quarantine_torn_tail() if repair_torn_tail else None
            self._seq, self._last_hash = self._recover_tail()
        except BaseException:
            os.close(fd)
            raise
        self._durable_seq, self._durable_hash = self._seq, self._last_hash  # what an fsync has covered
        self._fd: int | None = fd
        if quarantined is not None:
            self.append(AuditEvent(peer="-", action="audit:repair", outcome="REPAIRED", detail=quarantined))

    def _quarantine_torn_tail(self) -> str | None:
        """Move an unterminated last line to ``LOG.torn-TIME`` and cut the log back to its last
        newline (both durable); what the repair entry says, or None when there was nothing torn."""
        line, terminated = _read_last_line(self.path)
        if terminated:
            return None
        size = self.path.stat().st_size
        keep = size - len(line)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        quarantine = self.path.with_name(f"{self.path.name}.torn-{stamp}")
        fd = os.open(quarantine, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.truncate(self.path, keep)
        with self.path.open("rb+") as handle:
            os.fsync(handle.fileno())
        _fsync_directory(self.path.parent)
        return (
            f"torn last line ({len(line)} bytes, sha256 {sha256(line).hex()}) after byte {keep} moved to "
            f"{quarantine.name}; the log continues from its last complete entry"
        )

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
        if not entry_signature_ok(entry, self._public_key):
            raise AuditLogError(f"last entry (seq {entry.seq}) of {self.path} is not signed by this signing key")
        return entry.seq, entry.hash

    @property
    def public_key(self) -> Ed25519PublicKey:
        """The key that verifies this log."""
        return self._public_key

    def append(self, event: AuditEvent) -> AuditEntry:
        """Append one event; returns the stored entry. Thread-safe; durable when it returns (an
        fsync begun after its write has completed: its own, or one another append issued)."""
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
            digest = sha256(canonical_json(body))
            entry = AuditEntry(**body, hash=digest.hex(), signature=self._key.sign(digest).hex())
            data = (entry.to_json() + "\n").encode("utf-8")
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            self._seq, self._last_hash = entry.seq, entry.hash  # the line is in the file: chain on it
            if not self._fsync:
                self._durable_seq, self._durable_hash = entry.seq, entry.hash
                return entry
        self._sync(entry.seq)
        return entry

    def _sync(self, seq: int) -> None:
        """Return once the entries up to ``seq`` are durable: at once if an fsync that began after
        their write has completed meanwhile, else after one more fsync, which also covers every
        entry written before it began (group commit)."""
        with self._sync_lock:
            if self._durable_seq >= seq:
                return
            with self._lock:
                if self._fd is None:
                    raise AuditLogError(f"audit log {self.path} was closed before entry {seq} was made durable")
                fd, covered, covered_hash = self._fd, self._seq, self._last_hash
            os.fsync(fd)  # close() takes _sync_lock first: fd stays open while we hold it
            with self._lock:
                self._durable_seq, self._durable_hash = covered, covered_hash

    def head(self) -> AuditHead:
        """A signed head for the log as it is now (for a coordinator to witness): its durable
        entries, which include every entry an append has returned."""
        with self._lock:
            seq, last = self._durable_seq, self._durable_hash
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
        """Release the file and its lock (after an fsync of what was written); further appends
        raise :class:`AuditLogError`."""
        with self._sync_lock, self._lock:
            if self._fd is not None:
                try:
                    if self._fsync and self._durable_seq < self._seq:
                        os.fsync(self._fd)
                        self._durable_seq, self._durable_hash = self._seq, self._last_hash
                finally:
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
    """Make a new directory entry durable (best effort: errors are ignored)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
