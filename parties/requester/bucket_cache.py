"""The encrypted rows of P3 buckets a requester fetched, kept for its next fetch of the same bucket.

An owner's encrypted table is fixed for a given epoch, key, layout and data (its
``table_version``): fetching a bucket again brings the very ciphertexts of the first time. A warm
requester (the service) keeps them, bounded in bytes, least recently used first out, and names the
version it holds (``BucketRequest.cached_version``); when it is still the owner's, the owner answers
with the fetch token alone. The owner still counts, budgets and audits the fetch: what it learns is
unchanged (the bucket), and so is what we hold (rows of that table that it already sent us). A
version the owner no longer has (another epoch, a data reload, a new key) brings the rows again,
which replace the kept ones.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["BucketCache", "CachedRows", "RowsKey"]

RowsKey = tuple[str, str, tuple[str, ...], int, int]  # owner, dataset, columns, epoch, bucket


@dataclass(frozen=True)
class CachedRows:
    """One bucket's answer as the owner streamed it: its table version, the table key (as encoded),
    and every row's tag and ciphertext, back to back."""

    version: bytes
    key: bytes
    tags: bytes
    ciphertexts: bytes

    @property
    def size(self) -> int:
        return len(self.tags) + len(self.ciphertexts) + len(self.key)

    @property
    def rows(self) -> int:
        return len(self.tags) // 8


class BucketCache:
    """Thread-safe LRU of :class:`CachedRows` holding at most ``capacity_bytes``."""

    def __init__(self, capacity_bytes: int) -> None:
        if capacity_bytes < 0:
            raise ValueError("the capacity of a bucket cache is at least 0 bytes")
        self.capacity = capacity_bytes
        self.size = 0
        self.hits = self.misses = 0
        self._entries: OrderedDict[RowsKey, CachedRows] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: RowsKey) -> CachedRows | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def counted(self, hit: bool) -> None:
        """Count a fetch the cache answered (``hit``: the owner confirmed the version) or not."""
        with self._lock:
            if hit:
                self.hits += 1
            else:
                self.misses += 1

    def put(self, key: RowsKey, rows: CachedRows) -> None:
        """Keep ``rows`` for ``key`` (replacing what was kept), dropping the least recently used
        entries past the capacity, and every entry of an earlier epoch of the same dataset (its
        tags and key died with it)."""
        if rows.size > self.capacity:
            return
        owner, dataset, _, epoch, _ = key
        with self._lock:
            stale = [k for k in self._entries if k[0] == owner and k[1] == dataset and k[3] < epoch]
            for k in [*stale, key]:
                old = self._entries.pop(k, None)
                if old is not None:
                    self.size -= old.size
            self._entries[key] = rows
            self.size += rows.size
            while self.size > self.capacity:
                _, dropped = self._entries.popitem(last=False)
                self.size -= dropped.size

    def __len__(self) -> int:
        return len(self._entries)
