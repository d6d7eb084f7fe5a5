"""P2: owner-published predicates as OPRF filters.

For a named predicate the owner evaluates on its own data ("registered as a local resident"), the
owner computes the eligible set E, the OPRF tags ``t_e = tag([b_epoch]H(e))`` of its members under a
key that changes every epoch, and publishes the sorted tags (8 bytes each). A requester learns
``F_b(q)`` for its own ids through one OPRF round and probes the filter locally.

Revealed: the requester learns each queried bit and |E|; the owner learns how many evaluations
were made (which it rate-limits per requester, purpose and epoch: without a limit the filter would
let a requester test every id it can think of).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mpc.crypto.curve25519 import OprfServer

__all__ = ["build_filter", "dataset_domain", "dataset_key", "domain", "epoch_key", "epoch_of", "probe"]


def epoch_of(now: float, epoch_hours: float) -> int:
    return int(now // (epoch_hours * 3600))


def _derive(master: bytes, info: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info.encode()).derive(master)


def epoch_key(master: bytes, owner: str, predicate: str, epoch: int) -> OprfServer:
    """The OPRF key of one predicate in one epoch: HKDF-SHA256 of the owner's master secret."""
    return OprfServer(_derive(master, f"mpc-predicate/{predicate}/{epoch}"), domain=domain(owner, predicate))


def dataset_key(master: bytes, owner: str, dataset: str, epoch: int) -> OprfServer:
    """The OPRF key of one dataset (P1/P3 tags) in one epoch, derived the same way from the
    owner's master secret for datasets: tags obtained in one epoch match nothing in the next."""
    return OprfServer(_derive(master, f"mpc-dataset/{dataset}/{epoch}"), domain=dataset_domain(owner, dataset))


def domain(owner: str, predicate: str) -> bytes:
    """Hash-to-curve domain shared by the owner's key and the requester's client."""
    return f"{owner}/predicate/{predicate}".encode()


def dataset_domain(owner: str, dataset: str) -> bytes:
    """Hash-to-curve domain of a dataset's key (the same in every epoch)."""
    return f"{owner}/{dataset}".encode()


def build_filter(key: OprfServer, members: Sequence[str]) -> list[bytes]:
    """The published filter: sorted tags of the ids for which the predicate holds."""
    return sorted(key.evaluate_ids(members))


def probe(filter_tags: Iterable[bytes], tags: Sequence[bytes]) -> list[int]:
    """1 where a requester's tag is in the filter (a set is probed as it is, without a copy)."""
    published = filter_tags if isinstance(filter_tags, set | frozenset) else set(filter_tags)
    return [int(t in published) for t in tags]
