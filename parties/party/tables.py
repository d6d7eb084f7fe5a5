"""The owner's lookup tables: OPRF tags and encrypted rows of each dataset, cached on disk.

For a dataset the owner computes every row's OPRF tag once (``STATE/encrypted/NAME-*.tags``); for
a (dataset, columns) pair it encrypts every row once, on every core, in chunks of bounded memory
(``STATE/encrypted/NAME-*.bin``, fixed-width ciphertexts in row order). Cache names carry a digest
of the keys, the layout and the data, so a changed table or key is never served stale. Ciphertexts
are served from a memory map: buckets (P3) and whole tables (P1) are read from disk, not held in
the daemon's memory. The owner never computes on its own ciphertexts; requesters re-randomise
whatever they send back.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mpc.crypto.curve25519 import OprfServer
from mpc.crypto.obfuscators import parallel_obfuscators
from mpc.crypto.paillier import PaillierPublicKey
from mpc.data.sources import Dataset
from mpc.files import write_atomic
from mpc.protocols.lookup import BucketIndex, RowLayout, bucket_bits_for

TAG_BYTES = 8
ENCRYPT_CHUNK_ROWS = 131_072  # rows encrypted (and held as integers) at a time


@dataclass(frozen=True)
class EncryptedTable:
    """One (dataset, columns) table: its layout and a read-only map of its ciphertexts."""

    layout: RowLayout
    ciphertexts: np.ndarray  # uint8 (rows, ciphertext_bytes), row order

    def rows_bytes(self, rows: np.ndarray | slice) -> bytes:
        return bytes(self.ciphertexts[rows].tobytes())


def layout_for(dataset: Dataset, columns: tuple[str, ...], modulus_bits: int) -> RowLayout:
    """The row layout of ``columns``: declared bounds (bool: 0..1) set each slot's width."""
    bounds = []
    for name in columns:
        spec = dataset.spec.schema_.columns[name]
        if spec.type == "bool":
            bounds.append((0, 1))
        elif spec.type == "int" and spec.min is not None and spec.max is not None:
            bounds.append((spec.min, spec.max))
        else:
            raise ValueError(f"column {name} is a {spec.type} column: only int and bool columns can be looked up")
    return RowLayout.for_bounds(columns, bounds, modulus_bits)


class TableCache:
    """Tags and encrypted tables of one daemon's datasets, computed once and kept on disk."""

    def __init__(self, directory: Path, public_key: PaillierPublicKey, anonymity_set: int,
                 oprf_key: Callable[[str], OprfServer]) -> None:
        self.directory = directory
        self.public_key = public_key
        self.anonymity_set = anonymity_set
        self._oprf_key = oprf_key
        self._buckets: dict[str, BucketIndex] = {}
        self._tables: dict[tuple[str, tuple[str, ...]], EncryptedTable] = {}
        self._lock = threading.Lock()
        self._compute_lock = threading.Lock()  # one computation at a time; waiters then find it cached

    def bucket_bits(self, dataset: Dataset) -> int:
        return bucket_bits_for(len(dataset.ids), self.anonymity_set)

    def _digest(self, *parts: object) -> str:
        return hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).hexdigest()[:16]

    @staticmethod
    def _data_digest(dataset: Dataset, columns: tuple[str, ...] = ()) -> str:
        h = hashlib.sha256("\n".join(dataset.ids).encode())
        for name in columns:
            h.update(np.ascontiguousarray(dataset.columns[name].astype(np.int64)).tobytes())
        return h.hexdigest()[:16]

    def buckets(self, dataset: Dataset) -> BucketIndex:
        """Every row's OPRF tag and the bucket index (tags cached on disk)."""
        name = dataset.spec.name
        with self._lock:
            cached = self._buckets.get(name)
        if cached is not None:
            return cached
        with self._compute_lock:
            with self._lock:
                cached = self._buckets.get(name)
            if cached is not None:
                return cached
            key = self._oprf_key(name)
            path = self.directory / f"{name}-{self._digest(_key_id(key), self._data_digest(dataset))}.tags"
            rows = len(dataset.ids)
            if path.exists() and path.stat().st_size == rows * TAG_BYTES:
                blob = path.read_bytes()
                tags = [blob[i : i + TAG_BYTES] for i in range(0, len(blob), TAG_BYTES)]
            else:
                tags = key.evaluate_ids(dataset.ids)
                write_atomic(path, [b"".join(tags)])
            index = BucketIndex.build(tags, self.bucket_bits(dataset))
            with self._lock:
                self._buckets[name] = index
            return index

    def table(self, dataset: Dataset, columns: tuple[str, ...]) -> EncryptedTable:
        """Every row as ``Enc(row at its position)`` (see :mod:`mpc.protocols.lookup`)."""
        name = dataset.spec.name
        with self._lock:
            cached = self._tables.get((name, columns))
        if cached is not None:
            return cached
        index = self.buckets(dataset)
        with self._compute_lock:
            with self._lock:
                cached = self._tables.get((name, columns))
            if cached is not None:
                return cached
            pk = self.public_key
            layout = layout_for(dataset, columns, int(pk.n).bit_length())
            digest = self._digest(pk.fingerprint(), _key_id(self._oprf_key(name)), layout,
                                  self._data_digest(dataset, columns))
            path = self.directory / f"{name}-{digest}.bin"
            rows, width = len(dataset.ids), pk.ciphertext_bytes
            if not (path.exists() and path.stat().st_size == rows * width):
                write_atomic(path, self._encrypt(dataset, columns, layout, index.tags))
            ciphertexts = (np.memmap(path, dtype=np.uint8, mode="r", shape=(rows, width)) if rows
                           else np.zeros((0, width), dtype=np.uint8))
            table = EncryptedTable(layout, ciphertexts)
            with self._lock:
                self._tables[(name, columns)] = table
            return table

    def _encrypt(self, dataset: Dataset, columns: tuple[str, ...], layout: RowLayout,
                 tags: list[bytes]) -> Iterator[bytes]:
        """Ciphertexts in row order, chunk by chunk (obfuscators on every core)."""
        pk = self.public_key
        nsq, width = pk.nsquare, pk.ciphertext_bytes
        values = (np.stack([dataset.columns[c].astype(np.int64) for c in columns], axis=1)
                  if len(dataset.ids) else np.zeros((0, len(columns)), np.int64))
        positions = layout.positions(tags)
        for lo in range(0, len(tags), ENCRYPT_CHUNK_ROWS):
            hi = min(len(tags), lo + ENCRYPT_CHUNK_ROWS)
            plaintexts = layout.plaintexts(values[lo:hi], positions[lo:hi])
            obfuscators = parallel_obfuscators(pk, hi - lo)
            yield b"".join(int(pk.encode(m) * rho % nsq).to_bytes(width, "big")
                           for m, rho in zip(plaintexts, obfuscators, strict=True))


def _key_id(key: OprfServer) -> str:
    """A public identifier of an OPRF key (a hash: the key itself never enters a file name)."""
    return hashlib.sha256(b"oprf-key-id" + key.scalar + key.domain).hexdigest()[:16]
