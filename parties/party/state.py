"""What a party daemon keeps in its state directory, so that a restart keeps keys and audit chain.

    state_dir/
      audit-signing.pem   Ed25519 key that signs audit entries (0600)
      audit.log           hash-chained, signed audit log (JSON lines)
      paillier.key        the owner's Paillier private key (0600)
"""

from __future__ import annotations

from pathlib import Path

from mpc.audit import AuditLog, load_or_create_signing_key
from mpc.crypto.paillier import PaillierPrivateKey, generate_keypair
from mpc.files import write_atomic


class PartyState:
    def __init__(self, directory: Path, paillier_bits: int = 2048) -> None:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.directory = directory
        self.audit_key = load_or_create_signing_key(directory / "audit-signing.pem")
        self.audit = AuditLog(directory / "audit.log", self.audit_key)
        key_path = directory / "paillier.key"
        if key_path.exists():
            self.paillier = PaillierPrivateKey.from_bytes(key_path.read_bytes())
        else:
            _, self.paillier = generate_keypair(paillier_bits)
            write_atomic(key_path, self.paillier.to_bytes())

    def audit_public_key_hex(self) -> str:
        from cryptography.hazmat.primitives import serialization

        raw = self.audit_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return raw.hex()
