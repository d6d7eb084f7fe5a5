"""P1: ECDH-PSI, cardinality mode (the intersection and aligned-shares modes build on the same steps).

Steps, with R the requester (m ids) and O the owner (n ids):

1. R draws a fresh key ``a`` and sends ``[a]H(x)`` for its distinct ids (:func:`requester_encrypt`).
2. O draws a fresh key ``b`` for this session, sends ``[b]H(y)`` for its ids in shuffled order, and
   returns ``[b][a]H(x)``, **shuffled**, so R cannot tell which of its ids matched
   (:func:`owner_respond`).
3. R raises O's points to ``a`` and counts the common values (:func:`requester_count`).

Revealed: R learns the intersection size and n; O learns m. Nothing else (DDH on Curve25519).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from mpc.crypto.curve25519 import CommutativeCipher, oprf_tag

PSI_DOMAIN = b"mpc-agencies/psi/v1"


def shuffled(items: Sequence[bytes]) -> list[bytes]:
    """A uniformly random permutation (Fisher-Yates with the system CSPRNG)."""
    out = list(items)
    for i in range(len(out) - 1, 0, -1):
        j = secrets.randbelow(i + 1)
        out[i], out[j] = out[j], out[i]
    return out


@dataclass(frozen=True)
class RequesterState:
    cipher: CommutativeCipher
    count: int


def requester_encrypt(ids: Sequence[str]) -> tuple[RequesterState, list[bytes]]:
    """Step 1: ``[a]H(x)`` for each distinct id (duplicates would leak multiplicities)."""
    distinct = list(dict.fromkeys(ids))
    cipher = CommutativeCipher.generate(PSI_DOMAIN)
    return RequesterState(cipher, len(distinct)), cipher.encrypt_ids(distinct)


def owner_encrypt_own(ids: Sequence[str]) -> tuple[CommutativeCipher, list[bytes]]:
    """Step 2a: a fresh session key ``b`` and ``[b]H(y)`` for the owner's ids, shuffled."""
    cipher = CommutativeCipher.generate(PSI_DOMAIN)
    return cipher, shuffled(cipher.encrypt_ids(list(ids)))


def owner_respond(cipher: CommutativeCipher, requester_points: Sequence[bytes]) -> list[bytes]:
    """Step 2b: ``[b][a]H(x)`` for R's points, shuffled (cardinality mode)."""
    return shuffled(cipher.encrypt_points(list(requester_points)))


def requester_count(state: RequesterState, owner_points: Sequence[bytes], double: Sequence[bytes]) -> int:
    """Step 3: ``|{[a][b]H(y)} ∩ {[b][a]H(x)}|``, compared as 8-byte tags."""
    if len(double) != state.count:
        raise ValueError(f"owner returned {len(double)} points for {state.count} sent")
    theirs = {oprf_tag(p) for p in state.cipher.encrypt_points(list(owner_points))}
    return sum(1 for p in double if oprf_tag(p) in theirs)
