"""Owner-approved rules: the rules an owner lets a requester run on its data, per purpose.

A rule's thresholds are never free parameters: the owner approves a rule's fingerprint
(:meth:`mpc.protocols.rules.Rule.fingerprint`, over every clause, threshold and flag), for one
requester and a set of purposes. Changing a threshold changes the fingerprint and needs a new
approval. The catalogue is a JSON file in the owner's state directory
(``STATE/approved-rules.json``, written by ``mpc-admin rules approve``), signed with the owner's
Ed25519 audit key: the daemon re-reads it when it changes (an approval or a withdrawal takes
effect without a restart), refuses every rule while its signature does not verify, and audits
each new version it loads.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mpc.files import write_atomic
from mpc.policy import PURPOSE_PATTERN, PolicyError
from mpc.protocols.rules import RULE_NAME, Rule

__all__ = ["CATALOGUE_FILE", "Approval", "ApprovalError", "Catalogue", "RuleApprovals"]

CATALOGUE_FILE = "approved-rules.json"


class Approval(BaseModel):
    """One approved rule: its name, fingerprint and body, the requester and the purposes."""

    model_config = ConfigDict(extra="forbid")

    rule: str = Field(pattern=RULE_NAME)
    fingerprint: str = Field(pattern=r"^[0-9a-f]{64}$")
    peer: str = Field(pattern=RULE_NAME)
    purposes: list[str]
    approved_at: str
    body: Rule


class Catalogue(BaseModel):
    model_config = ConfigDict(extra="forbid")

    approvals: list[Approval] = Field(default_factory=list)
    signature: str = ""  # hex Ed25519 over the canonical JSON of ``approvals``

    def signed_bytes(self) -> bytes:
        return json.dumps(
            [a.model_dump(mode="json") for a in self.approvals], sort_keys=True, separators=(",", ":")
        ).encode()


class ApprovalError(ValueError):
    """A catalogue file that cannot be read, or an approval that cannot be made."""


class RuleApprovals:
    """The approvals catalogue of one owner (``path``), signed with ``key`` (the owner's audit
    key), reloaded when the file changes; ``on_load`` is told of each new version (the daemon
    audits it)."""

    def __init__(
        self, path: Path, key: Ed25519PrivateKey, on_load: Callable[[list[Approval]], None] | None = None
    ) -> None:
        self.path, self._key, self._on_load = path, key, on_load
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._catalogue = Catalogue()

    def _load(self) -> Catalogue:
        with self._lock:
            try:
                stat = self.path.stat()
            except FileNotFoundError:
                self._stamp, self._catalogue = None, Catalogue()
                return self._catalogue
            stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
            if stamp != self._stamp:
                try:
                    catalogue = Catalogue.model_validate_json(self.path.read_bytes())
                except (OSError, ValidationError, ValueError) as exc:
                    raise ApprovalError(
                        f"{self.path}: unreadable approvals catalogue: {str(exc).splitlines()[0]}"
                    ) from None
                try:
                    self._key.public_key().verify(bytes.fromhex(catalogue.signature), catalogue.signed_bytes())
                except (InvalidSignature, ValueError):
                    raise ApprovalError(
                        f"{self.path}: the approvals catalogue is not signed by this owner's key "
                        f"(edited by hand? approve again with mpc-admin rules approve)"
                    ) from None
                self._catalogue, self._stamp = catalogue, stamp
                if self._on_load is not None:
                    self._on_load(list(catalogue.approvals))
            return self._catalogue

    def entries(self) -> list[Approval]:
        return list(self._load().approvals)

    def approve(self, name: str, rule: Rule, peer: str, purposes: list[str]) -> Approval:
        """Approve ``rule`` (as named) for ``peer`` and ``purposes``; replaces an earlier approval
        of the same name for the same peer (its old fingerprint stops working)."""
        bad = [p for p in purposes if not PURPOSE_PATTERN.match(p)]
        if not purposes or bad:
            raise ApprovalError(f"give at least one purpose code matching {PURPOSE_PATTERN.pattern} (bad: {bad})")
        approval = Approval(
            rule=name,
            fingerprint=rule.fingerprint(),
            peer=peer,
            purposes=sorted(set(purposes)),
            approved_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            body=rule,
        )
        kept = [a for a in self.entries() if (a.rule, a.peer) != (name, peer)]
        self._save(Catalogue(approvals=[*kept, approval]))
        return approval

    def withdraw(self, name: str, peer: str) -> bool:
        entries = self.entries()
        kept = [a for a in entries if (a.rule, a.peer) != (name, peer)]
        self._save(Catalogue(approvals=kept))
        return len(kept) != len(entries)

    def _save(self, catalogue: Catalogue) -> None:
        signed = catalogue.model_copy(update={"signature": self._key.sign(catalogue.signed_bytes()).hex()})
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(self.path, [json.dumps(signed.model_dump(mode="json"), indent=1).encode()])

    def check(self, peer: str, purpose: str, name: str, rule: Rule) -> str:
        """Raise :class:`PolicyError` unless ``rule``, exactly as given, is approved under ``name``
        for ``peer`` and ``purpose``; returns its fingerprint."""
        fingerprint = rule.fingerprint()
        try:
            catalogue = self._load()
        except ApprovalError as exc:  # fail closed: no rule runs on an unverified catalogue
            raise PolicyError(f"no rule is approved while {exc}") from None
        for approval in catalogue.approvals:
            if (approval.rule, approval.peer) == (name, peer):
                if approval.fingerprint != fingerprint:
                    raise PolicyError(
                        f"rule {name!r} as sent (fingerprint {fingerprint[:16]}) differs from the one "
                        f"approved for {peer!r} ({approval.fingerprint[:16]}): thresholds and clauses "
                        f"are fixed by the approval"
                    )
                if purpose not in approval.purposes:
                    raise PolicyError(
                        f"rule {name!r} is approved for {peer!r} for purposes {approval.purposes}, not {purpose!r}"
                    )
                return fingerprint
        raise PolicyError(f"rule {name!r} (fingerprint {fingerprint[:16]}) is not approved for {peer!r}")
