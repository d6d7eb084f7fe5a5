"""Which lookup path a batch takes at one owner: P3 (bucketed) or P1 (whole table, packed).

Both paths end the same way (the owner decrypts masked ciphertexts and keeps shares aligned to the
requester's rows); they differ in what travels and how many decryptions the owner does:

- **P3**: the requester fetches the buckets its ids fall in and sends one ciphertext per row, so
  the owner decrypts once per row and learns each query's bucket (one of 2^bucket_bits).
- **P1**: the requester fetches the whole encrypted table and packs up to ``g`` rows into one
  ciphertext, so the owner decrypts once per ``g`` rows and learns each row's position class.

The cost model below uses per-row and per-decryption times measured on the reference 2-core
machine (``docs/benchmarks.md``); only their ratio matters for the choice. An owner's policy can
refuse P1 (``batch = false``), and the requester can force a path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["SECONDS_PER_DECRYPTION", "SECONDS_PER_FETCHED_ROW", "SECONDS_PER_MASK", "LookupPlan", "Path", "plan_lookup"]

Path = Literal["P1", "P3"]
SECONDS_PER_DECRYPTION = 5.2e-3  # owner: one 2048-bit CRT decryption
SECONDS_PER_MASK = 0.7e-3  # requester: one short-exponent mask encryption (w = 10)
SECONDS_PER_FETCHED_ROW = 10e-6  # tag + 512-byte ciphertext over TLS, matched by tag


@dataclass(frozen=True)
class LookupPlan:
    """The path chosen for one owner's table, the estimates behind it, and why."""

    owner: str
    dataset: str
    path: Path
    rows: int
    estimate_p3_s: float
    estimate_p1_s: float | None  # None: the owner's policy allows no batch lookups
    reason: str

    def describe(self) -> str:
        return f"{self.owner}/{self.dataset}: {self.path} for {self.rows} rows ({self.reason})"


def _decryption_cost(key_bits: int) -> float:
    scale = key_bits / 2048
    return float(SECONDS_PER_DECRYPTION * scale**2.6 + SECONDS_PER_MASK * scale**2)


def plan_lookup(
    owner: str,
    dataset: str,
    rows: int,
    distinct: int,
    table_rows: int,
    bucket_bits: int,
    rows_per_plaintext: int,
    batch_allowed: bool,
    key_bits: int = 2048,
    force: Path | None = None,
) -> LookupPlan:
    """Choose P3 or P1 for ``rows`` requester rows (``distinct`` distinct real ids) against a table
    of ``table_rows`` rows."""
    per_ciphertext = _decryption_cost(key_bits)
    buckets = 1 << bucket_bits
    touched = buckets * (1 - (1 - 1 / buckets) ** distinct) if distinct else 0.0
    p3 = touched * (table_rows / buckets) * SECONDS_PER_FETCHED_ROW + rows * per_ciphertext
    p1 = table_rows * SECONDS_PER_FETCHED_ROW + -(-rows // max(1, rows_per_plaintext)) * per_ciphertext
    estimates = f"estimated P3 {p3:.2f} s, P1 {p1:.2f} s"
    if force is not None:
        if force == "P1" and not batch_allowed:
            raise PermissionError(f"{owner} allows no batch lookups (P1) of {dataset!r}")
        return LookupPlan(owner, dataset, force, rows, p3, p1 if batch_allowed else None, f"forced; {estimates}")
    if not batch_allowed:
        return LookupPlan(
            owner, dataset, "P3", rows, p3, None, f"the owner allows no batch lookups; estimated P3 {p3:.2f} s"
        )
    if p1 < p3:
        return LookupPlan(
            owner, dataset, "P1", rows, p3, p1, f"whole table, {rows_per_plaintext} rows per decryption; {estimates}"
        )
    return LookupPlan(owner, dataset, "P3", rows, p3, p1, f"bucketed lookup; {estimates}")
