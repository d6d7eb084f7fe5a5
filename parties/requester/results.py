"""What the requester's operations return, and how a refused or failed remote call surfaces."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import grpc
import numpy as np

from mpc.protocols import planner

__all__ = ["Eligibility", "IntersectionSum", "Progress", "PsiResult", "RemoteError", "SharedLookup"]

Progress = Callable[[int, int], None]  # (done, total)


class RemoteError(RuntimeError):
    """A refused or failed remote call: the party, the gRPC status and the callee's message."""

    def __init__(self, party: str, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{party}: {code.name}: {details}")
        self.party, self.code, self.details = party, code, details


@dataclass(frozen=True)
class PsiResult:
    """P1 ECDH-PSI: how many of our distinct ids the owner holds, and (intersection mode) which.
    Bytes are what crossed the wire each way (message payloads)."""

    intersection: int
    requester_count: int
    owner_count: int
    seconds: float
    matched: list[str] | None = None  # intersection mode: our ids the owner holds, in our order
    bytes_sent: int = 0
    bytes_received: int = 0


@dataclass(frozen=True)
class IntersectionSum:
    """Private join and compute: the intersection's size and each column's sum over it (None:
    withheld, the intersection was under the minimum cell size). ``owner_count`` is the owner's
    row count as its catalogue shows it (rounded)."""

    intersection: int | None
    sums: dict[str, int | None]
    requester_count: int
    owner_count: int
    seconds: float


@dataclass(frozen=True)
class SharedLookup:
    """P3: the owner's columns of each of our ids, secret-shared with the owner.

    ``shares``: ours, (len(ids), len(columns)) uint64; ``present``: 1 where the owner has the id
    (we learn that from the tags), 0 for absent ids and padding. The owner keeps its shares under
    ``session_id`` for the program that follows; ``plan`` is the path the lookup took and why."""

    owner: str
    session_id: str
    shares: np.ndarray
    present: np.ndarray
    plan: planner.LookupPlan


@dataclass(frozen=True)
class Eligibility:
    """P4's answer: one bit per application, the bits of the clauses revealed to us (reason codes,
    where their owners consent), and the lookup path each owner's table took."""

    bits: np.ndarray
    clauses: dict[str, np.ndarray] = field(default_factory=dict)
    plans: tuple[planner.LookupPlan, ...] = ()

    def reason(self, k: int, clause_names: Iterable[str]) -> str:
        """Why application ``k`` is not eligible, as far as the owners disclose it ("" when it is):
        the failed clauses whose bits came back, and, where some of the rule's ``clause_names``
        were not disclosed, that the list is incomplete (so that nobody gives a citizen part of
        the reason as the whole one)."""
        if self.bits[k]:
            return ""
        failed = [name for name, bits in self.clauses.items() if not bits[k]]
        hidden = [name for name in clause_names if name not in self.clauses]
        if not failed:
            return "failing clauses not disclosed by their owners" if hidden else ""
        return "failed: " + ", ".join(failed) + ("; other clauses not disclosed" if hidden else "")
