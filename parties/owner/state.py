"""What a party daemon keeps in its state directory, so that a restart keeps keys and audit chain.

state_dir/
  audit-signing.pem   Ed25519 key that signs audit entries (0600)
  audit.log           hash-chained, signed audit log (JSON lines)
  keys/table-*.key    one Paillier private key per encrypted table (0600; see parties.owner.tables)
  oprf/               master secrets the per-epoch OPRF keys derive from (0600)
  encrypted/          OPRF tags and encrypted tables (caches, recomputed when missing)
"""

from __future__ import annotations

from pathlib import Path

from mpc.audit import AuditLog, load_or_create_signing_key


class PartyState:
    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.directory = directory
        self.audit_key = load_or_create_signing_key(directory / "audit-signing.pem")
        self.audit = AuditLog(directory / "audit.log", self.audit_key, repair_torn_tail=True)

    def audit_public_key_hex(self) -> str:
        from cryptography.hazmat.primitives import serialization

        raw = self.audit_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return raw.hex()
