"""Append-only, hash-chained, Ed25519-signed audit log (one per daemon).

Every request a daemon handles becomes one :class:`AuditEntry`, stored as one JSON object per line;
each entry's ``hash`` covers its content and the previous entry's hash, and is signed with the
daemon's audit key. An :class:`AuditHead` is a signed statement of the log's length and last hash:
a coordinator that records (witnesses) heads can later prove a log was truncated or rewritten,
which the daemon itself (holding the key) could otherwise do undetectably.

The package has one module per job:

* :mod:`mpc.audit.record` -- the record: :class:`AuditEvent`, :class:`AuditEntry`,
  :class:`AuditHead`, their canonical bytes, hashes and signatures, :func:`verify_head`.
* :mod:`mpc.audit.writer` -- the writer: :class:`AuditLog` (locked, durable appends; signed
  heads) and :func:`load_or_create_signing_key`.
* :mod:`mpc.audit.verifier` -- the verifier: :func:`verify_log`, which checks a whole file and
  classifies what is wrong, line by line (see its docstring for the classification rules), in
  named passes; :mod:`mpc.audit.report` holds what it returns (:class:`VerifyReport`,
  :class:`VerifyProblem`, :data:`ProblemKind`).

This module re-exports their public names.
"""

from __future__ import annotations

from mpc.audit.record import GENESIS_HASH, HEAD_TYPE, AuditEntry, AuditEvent, AuditHead, verify_head
from mpc.audit.report import ProblemKind, VerifyProblem, VerifyReport
from mpc.audit.verifier import verify_log
from mpc.audit.writer import AuditLog, AuditLogError, load_or_create_signing_key

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
