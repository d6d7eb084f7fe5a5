"""What a party daemon keeps in its state directory, so that a restart keeps keys and audit chain.

    state_dir/
      audit-signing.pem   Ed25519 key that signs audit entries (0600)
      audit.log           hash-chained, signed audit log (JSON lines)
      paillier.key        the owner's Paillier private key (0600)
"""

from __future__ import annotations

import os
from pathlib import Path

from mpc.audit import AuditLog, load_or_create_signing_key
from mpc.crypto.paillier import PaillierPrivateKey, generate_keypair


def _write_secret(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


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
            _write_secret(key_path, self.paillier.to_bytes())

    def audit_public_key_hex(self) -> str:
        from cryptography.hazmat.primitives import serialization

        raw = self.audit_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return raw.hex()
