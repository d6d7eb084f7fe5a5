"""Backup and restore of a party's state: what `mpc-admin backup` and `mpc-admin restore` do.

A backup holds what a party cannot recompute: its configuration (identity, datasets, policy), the
audit signing key and log, the tables' Paillier keys, the OPRF master secrets, the approved-rules
catalogue, the budgets ledger and stored results; the encrypted tables and tags, and the
requester's short-exponent tables of owners' keys (``obfuscators/``), are caches
(``--with-caches`` includes them, which saves their re-encryption after a restore). It is
consistent while the daemon runs: the audit log is copied up to its last complete entry, the
budgets ledger through SQLite's online backup, and every other file is written atomically by the
daemon. ``manifest.json`` lists each file with its SHA-256 and the audit head at the time.

A restore checks every file against the manifest, writes them into an empty state directory
(keys owner-only) and writes the configuration with ``party.state_dir`` pointing there. Entries
appended after the backup are not in it: a daemon restored from an online backup reports an older
audit head than the coordinator witnessed, which the coordinator refuses and `audit verify
--against-coordinator` reports; back up a stopped daemon (its last head witnessed at stop) to
restore it without that gap.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import tomli_w

from mpc.audit import AuditEntry
from mpc.files import write_atomic
from parties.config import PartyConfig

__all__ = ["CACHES", "BackupError", "Restored", "Taken", "backup", "restore"]

CACHES = ("encrypted", "obfuscators")  # recomputed when missing
MANIFEST = "manifest.json"
_LEDGERS = ("budgets.sqlite",)
_SKIPPED = ("address", "status.json", "audit.log", *_LEDGERS)  # written otherwise, or run-time only


class BackupError(Exception):
    """A backup that cannot be taken or restored; the message names the file."""


@dataclass(frozen=True)
class Taken:
    party: str
    files: int
    audit_seq: int


@dataclass(frozen=True)
class Restored:
    config: Path
    state_dir: Path
    files: int
    audit_seq: int
    seconds: float


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _complete_lines(log: Path) -> tuple[bytes, int, str]:
    """The audit log up to its last complete entry, with that entry's seq and hash."""
    data = log.read_bytes() if log.exists() else b""
    data = data[: data.rfind(b"\n") + 1]
    last = data.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    if not last:
        return data, 0, ""
    entry = AuditEntry.from_json(last)
    return data, entry.seq, entry.hash


def backup(config_path: Path, config: PartyConfig, target: Path, with_caches: bool = False) -> Taken:
    """Copy a party's state to ``target`` (which must not exist or be empty)."""
    state = config.party.state_dir
    if not state.is_dir():
        raise BackupError(f"{state}: no state directory to back up")
    if target.exists() and any(target.iterdir()):
        raise BackupError(f"{target}: not empty; a backup goes into a new directory")
    target.mkdir(parents=True, exist_ok=True, mode=0o700)
    (target / "state").mkdir(mode=0o700)
    shutil.copy2(config_path, target / "config.toml")
    log, seq, head = _complete_lines(state / "audit.log")
    write_atomic(target / "state" / "audit.log", [log])
    for ledger in _LEDGERS:
        if (state / ledger).exists():
            with sqlite3.connect(state / ledger) as source, sqlite3.connect(target / "state" / ledger) as copy:
                source.backup(copy)
    skipped = {*_SKIPPED, *(() if with_caches else CACHES)}
    for path in sorted(state.rglob("*")):
        relative = path.relative_to(state)
        if relative.parts[0] in skipped or not path.is_file():
            continue
        destination = target / "state" / relative
        destination.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        shutil.copy2(path, destination)
    files = {
        str(p.relative_to(target)): _sha256(p) for p in sorted(target.rglob("*")) if p.is_file() and p.name != MANIFEST
    }
    manifest: dict[str, object] = {
        "party": config.party.name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "audit_head": {"seq": seq, "hash": head},
        "with_caches": with_caches,
        "files": files,
    }
    write_atomic(target / MANIFEST, [json.dumps(manifest, indent=1).encode()])
    return Taken(config.party.name, len(files), seq)


def restore(source: Path, state_dir: Path, config_out: Path) -> Restored:
    """Check ``source`` against its manifest, write its state into ``state_dir`` (new or empty)
    and the configuration, pointing there, to ``config_out``."""
    started = time.perf_counter()
    try:
        manifest = json.loads((source / MANIFEST).read_text())
        files: dict[str, str] = dict(manifest["files"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BackupError(f"{source / MANIFEST}: not a backup manifest ({exc})") from None
    for name, digest in files.items():
        path = source / name
        if not path.is_file() or _sha256(path) != digest:
            raise BackupError(f"{path}: missing or altered since the backup (sha256 differs from the manifest)")
    if state_dir.exists() and any(state_dir.iterdir()):
        raise BackupError(f"{state_dir}: not empty; restore into a new state directory")
    if config_out.exists():
        raise BackupError(f"{config_out}: exists; the restored configuration is not written over one (choose another)")
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    copied = 0
    for name in files:
        if not name.startswith("state/"):
            continue
        destination = state_dir / Path(name).relative_to("state")
        destination.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        shutil.copy2(source / name, destination)
        os.chmod(destination, 0o600)
        copied += 1
    raw = tomllib.loads((source / "config.toml").read_text())
    raw["party"]["state_dir"] = str(state_dir.resolve())
    write_atomic(config_out, [tomli_w.dumps(raw).encode()], 0o600)
    head = manifest.get("audit_head", {})
    return Restored(config_out, state_dir, copied, int(head.get("seq", 0)), time.perf_counter() - started)
