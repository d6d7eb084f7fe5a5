"""The requester's cache of fetched P3 buckets: bounded in bytes, least recently used out first,
an earlier epoch's entries dropped with the next epoch's first."""

from __future__ import annotations

import pytest

from parties.requester.bucket_cache import BucketCache, CachedRows


def rows(version: bytes, n: int, width: int = 10) -> CachedRows:
    return CachedRows(version, b"k", bytes(8 * n), bytes(width * n))


def key(bucket: int, epoch: int = 7, dataset: str = "income") -> tuple[str, str, tuple[str, ...], int, int]:
    return ("tax", dataset, ("annual_income",), epoch, bucket)


def test_entries_come_back_until_the_capacity_pushes_the_oldest_out() -> None:
    one = rows(b"v1", 10)  # 8*10 + 10*10 + 1 = 181 bytes
    cache = BucketCache(3 * one.size)
    for b in range(3):
        cache.put(key(b), one)
    assert cache.get(key(0)) is one and len(cache) == 3 and cache.size == 3 * one.size
    cache.put(key(3), one)  # bucket 1 is now the least recently used (0 was just read)
    assert cache.get(key(1)) is None and cache.get(key(0)) is one and cache.get(key(3)) is one
    assert cache.size == 3 * one.size


def test_an_entry_larger_than_the_cache_is_not_kept_and_a_new_version_replaces_the_old() -> None:
    cache = BucketCache(500)
    cache.put(key(0), rows(b"v1", 100))
    assert cache.get(key(0)) is None and cache.size == 0
    cache.put(key(0), rows(b"v1", 2))
    cache.put(key(0), rows(b"v2", 3))
    kept = cache.get(key(0))
    assert kept is not None and kept.version == b"v2" and kept.rows == 3 and cache.size == kept.size


def test_a_later_epoch_drops_the_earlier_epochs_of_that_dataset_only() -> None:
    cache = BucketCache(1 << 20)
    for b in range(3):
        cache.put(key(b, epoch=7), rows(b"v7", 2))
        cache.put(key(b, epoch=7, dataset="payments"), rows(b"p7", 2))
    cache.put(key(0, epoch=8), rows(b"v8", 2))
    assert [cache.get(key(b, epoch=7)) for b in range(3)] == [None, None, None]
    assert all(cache.get(key(b, epoch=7, dataset="payments")) is not None for b in range(3))
    assert len(cache) == 4


def test_counts_and_a_negative_capacity() -> None:
    cache = BucketCache(0)
    cache.counted(True)
    cache.counted(False)
    cache.counted(False)
    assert (cache.hits, cache.misses) == (1, 2)
    with pytest.raises(ValueError, match="at least 0 bytes"):
        BucketCache(-1)
