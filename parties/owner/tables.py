"""The owner's lookup tables: OPRF tags and encrypted rows of each dataset, cached on disk.

Every encrypted table (dataset, columns) has a Paillier key pair of its own, generated on first
use and kept owner-only in ``STATE/keys/table-*.key`` (named by a digest of dataset, columns and
layout): a ciphertext decrypts only under the key of the table it came from, so one sent back
under another table's name decrypts to noise, never to the values.

Tags depend on the dataset's OPRF key, which changes every epoch (``party.oprf_epoch_hours``), so
everything derived from them lives under ``STATE/encrypted/epoch-N/``: for a dataset the owner
computes every row's OPRF tag once per epoch (``NAME-*.tags``, written a million rows at a time
so that a stop midway resumes); for a (dataset, columns) pair it
encrypts rows bucket by bucket on first use, on the compute backend (:mod:`mpc.parallel`), in
chunks of bounded memory, into a file of fixed-width ciphertexts in bucket order (``NAME-*.bin``,
with ``.done`` marking the encrypted buckets, written after each chunk of about
:data:`ENCRYPT_CHUNK_ROWS` rows reaches the disk): a point query pays for its bucket once, a batch
(P1) for whatever of the table is left, and a daemon stopped midway resumes where it stopped.
Cache names carry a digest of the keys, the layout and the data, so a changed table or key is
never served stale; the first use of an epoch deletes the directories of epochs before the
previous one. Ciphertexts are read and written at their rows' offsets in the file, never mapped
or held whole. The owner never computes on its own ciphertexts; requesters re-randomise whatever
they send back.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from mpc.crypto.curve25519 import POINT_BYTES, OprfServer, hash_ids
from mpc.crypto.obfuscators import encrypt_parallel
from mpc.crypto.paillier import PaillierPrivateKey, PaillierPublicKey, generate_keypair
from mpc.data.sources import Dataset
from mpc.files import write_atomic
from mpc.protocols.lookup import BucketIndex, RowLayout, bucket_bits_for

TAG_BYTES = 8
ENCRYPT_CHUNK_ROWS = 131_072  # rows encrypted (and held as integers) at a time
ID_CHUNK_ROWS = 1 << 20  # ids tagged or hashed (and held as Python bytes) at a time
TABLE_FORMAT = "bucket-order"  # how a table's file orders its rows (part of its name: another order is another file)


class EncryptedTable:
    """One (dataset, columns) table: its layout, its public key and its ciphertexts, in a file read
    and written at row offsets (never mapped or held whole: a daemon serving a 10-million-row
    table keeps one chunk of it in memory)."""

    def __init__(
        self,
        layout: RowLayout,
        public_key: PaillierPublicKey,
        path: Path,
        index: BucketIndex,
        encrypt: Callable[[np.ndarray], Iterator[tuple[np.ndarray, bytes]]],
    ) -> None:
        self.layout, self.public_key, self.index, self._encrypt = layout, public_key, index, encrypt
        self.rows, buckets, self.width = len(index), 1 << index.bucket_bits, public_key.ciphertext_bytes
        self.path, self._done_path = path, path.with_suffix(".done")
        # what a requester that keeps fetched rows compares (its name holds the key, the OPRF key
        # id, the layout and the data's digest): opaque, and another table's rows never match it
        self.version = hashlib.sha256(b"mpc-table-version" + path.name.encode()).digest()[:16]
        if not path.exists() or path.stat().st_size != self.rows * self.width:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._done_path.unlink(missing_ok=True)  # first: no marker may outlive the rows it marked
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # owner-only, sparse until encrypted
            try:
                os.ftruncate(fd, self.rows * self.width)
            finally:
                os.close(fd)
        done = self._done_path.read_bytes() if self._done_path.exists() else b""
        self.done = bytearray(done if len(done) == buckets else bytes(buckets))
        # the file holds the rows in bucket order (index.order): a bucket is one read, the whole
        # table one pass; _slot[row] is the row's place in the file
        self._slot = np.empty(self.rows, dtype=np.int64)
        self._slot[index.order] = np.arange(self.rows, dtype=np.int64)
        self._lock = threading.Lock()

    def ensure(self, buckets: Sequence[int]) -> None:
        """Encrypt the rows of those of ``buckets`` not encrypted yet."""
        if all(self.done[b] for b in buckets):
            return
        with self._lock:
            missing = [b for b in buckets if not self.done[b]]
            fd = os.open(self.path, os.O_WRONLY)
            try:
                for group in self._groups(missing):
                    rows = np.concatenate([self.index.rows(b) for b in group])
                    for part, blob in self._encrypt(rows):
                        for (lo, _), (start, end) in _runs(self._slot[part]):
                            os.pwrite(fd, blob[start * self.width : end * self.width], lo * self.width)
                    os.fsync(fd)
                    for b in group:  # on disk before marked: a restart resumes after the last group
                        self.done[b] = 1
                    write_atomic(self._done_path, bytes(self.done))
            finally:
                os.close(fd)

    def _groups(self, buckets: list[int]) -> Iterator[list[int]]:
        """``buckets`` in groups of about :data:`ENCRYPT_CHUNK_ROWS` rows (at least one bucket)."""
        group: list[int] = []
        rows = 0
        for b in buckets:
            group.append(b)
            rows += len(self.index.rows(b))
            if rows >= ENCRYPT_CHUNK_ROWS:
                yield group
                group, rows = [], 0
        if group:
            yield group

    def ensure_all(self) -> None:
        self.ensure(range(len(self.done)))

    def rows_bytes(self, rows: np.ndarray | slice) -> bytes:
        """The ciphertexts of ``rows`` (a slice of the table, or row numbers), concatenated in order."""
        if isinstance(rows, slice):
            start, stop, _ = rows.indices(self.rows)
            rows = np.arange(start, max(start, stop))
        slots = self._slot[np.asarray(rows, dtype=np.int64)]
        with self.path.open("rb") as f:
            fd = f.fileno()
            return b"".join(os.pread(fd, (hi - lo) * self.width, lo * self.width) for (lo, hi), _ in _runs(slots))


def _runs(rows: np.ndarray) -> Iterator[tuple[tuple[int, int], tuple[int, int]]]:
    """Maximal runs of consecutive row numbers in ``rows`` (in its order): ``((first, last + 1),
    (their positions in rows))``, so that each run is one read or write."""
    if not len(rows):
        return
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    starts = [0, *breaks.tolist()]
    ends = [*breaks.tolist(), len(rows)]
    for start, end in zip(starts, ends, strict=True):
        yield (int(rows[start]), int(rows[end - 1]) + 1), (start, end)


def declared(dataset: Dataset, column: str) -> tuple[str, int, int]:
    """A column's (type, min, max) as carried on shares: a bool is 0..1, a category its codes."""
    spec = dataset.spec.schema_.columns[column]
    if spec.type == "category":
        return spec.type, 0, max(0, len(dataset.labels(column)) - 1)
    if spec.type == "bool":
        return spec.type, 0, 1
    bounds = spec.numeric_bounds
    assert bounds is not None
    return spec.type, *bounds


def layout_for(dataset: Dataset, columns: tuple[str, ...], modulus_bits: int) -> RowLayout:
    """The row layout of ``columns`` from their declared types and bounds."""
    return RowLayout.for_columns(columns, [declared(dataset, c) for c in columns], modulus_bits)


class TableCache:
    """Tags and encrypted tables of one daemon's datasets, computed once and kept on disk."""

    def __init__(
        self,
        directory: Path,
        key_directory: Path,
        paillier_bits: int,
        anonymity_set: int,
        oprf_key: Callable[[str, int], OprfServer],
    ) -> None:
        self.directory, self.key_directory = directory, key_directory
        self.paillier_bits = paillier_bits
        self.anonymity_set = anonymity_set
        self._oprf_key = oprf_key
        self._buckets: dict[tuple[str, int], BucketIndex] = {}  # by (dataset, epoch)
        self._points: dict[tuple[str, bytes], np.ndarray] = {}
        self._tables: dict[tuple[str, tuple[str, ...], int], EncryptedTable] = {}  # by (dataset, columns, epoch)
        self._epoch = -1  # the newest epoch used: older than the one before it are deleted
        self._keys: dict[str, PaillierPrivateKey] = {}
        self._lock = threading.Lock()
        self._key_lock = threading.Lock()  # one key generated at a time
        self._compute_lock = threading.Lock()  # one computation at a time; waiters then find it cached

    def bucket_bits(self, dataset: Dataset) -> int:
        return bucket_bits_for(len(dataset.ids), self.anonymity_set)

    def _digest(self, *parts: object) -> str:
        return hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).hexdigest()[:16]

    @staticmethod
    def _data_digest(dataset: Dataset, columns: tuple[str, ...] = ()) -> str:
        h = dataset.ids.digest()
        for name in columns:
            h.update(np.ascontiguousarray(dataset.values(name)).tobytes())
        return h.hexdigest()[:16]

    def _epoch_directory(self, epoch: int) -> Path:
        path = self.directory / f"epoch-{epoch}"
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        return path

    def _retire(self, epoch: int) -> None:
        """On the first use of ``epoch``: forget and delete what epochs before the previous one
        computed (called with the compute lock held)."""
        if epoch <= self._epoch:
            return
        self._epoch = epoch
        with self._lock:
            self._buckets = {k: v for k, v in self._buckets.items() if k[1] >= epoch - 1}
            self._tables = {k: v for k, v in self._tables.items() if k[2] >= epoch - 1}
            self._keys = {k: v for k, v in self._keys.items() if int(k.rpartition("-epoch-")[2]) >= epoch - 1}
        for path in self.key_directory.glob("table-*-epoch-*.key"):  # the tables' keys of those epochs
            number = path.stem.rpartition("-epoch-")[2]
            if number.isdigit() and int(number) < epoch - 1:
                path.unlink(missing_ok=True)
        for path in self.directory.glob("epoch-*"):
            number = path.name.removeprefix("epoch-")
            if number.isdigit() and int(number) < epoch - 1:
                shutil.rmtree(path, ignore_errors=True)

    def buckets(self, dataset: Dataset, epoch: int) -> BucketIndex:
        """Every row's OPRF tag in ``epoch`` and the bucket index (tags cached on disk)."""
        name = dataset.spec.name
        with self._lock:
            cached = self._buckets.get((name, epoch))
        if cached is not None:
            return cached
        with self._compute_lock:
            with self._lock:
                cached = self._buckets.get((name, epoch))
            if cached is not None:
                return cached
            self._retire(epoch)
            key = self._oprf_key(name, epoch)
            path = (
                self._epoch_directory(epoch) / f"{name}-{self._digest(_key_id(key), self._data_digest(dataset))}.tags"
            )
            ids = dataset.ids
            tags = _computed_by_chunks(
                path, len(ids), TAG_BYTES, lambda lo, hi: b"".join(key.evaluate_ids(ids.array[lo:hi].tolist()))
            )
            index = BucketIndex.build(tags, self.bucket_bits(dataset))
            with self._lock:
                self._buckets[(name, epoch)] = index
            return index

    def hashed_ids(self, dataset: Dataset, domain: bytes) -> np.ndarray:
        """``H(id)`` (hash to Curve25519) of every row, (rows, 32) uint8, cached on disk: the
        key-independent half of an ECDH-PSI session's work on our side."""
        name = dataset.spec.name
        key = (name, domain)
        with self._lock:
            cached = self._points.get(key)
        if cached is not None:
            return cached
        with self._compute_lock:
            path = self.directory / f"{name}-{self._digest('h2c', domain.hex(), self._data_digest(dataset))}.points"
            ids = dataset.ids
            blob = _computed_by_chunks(
                path, len(ids), POINT_BYTES, lambda lo, hi: hash_ids(ids.array[lo:hi].tolist(), domain)
            )
            points = np.frombuffer(blob, dtype=np.uint8).reshape(len(ids), POINT_BYTES)
            with self._lock:
                self._points[key] = points
            return points

    def layout(self, dataset: Dataset, columns: tuple[str, ...]) -> RowLayout:
        """The row layout of a (dataset, columns) table (its key's modulus has ``paillier_bits``)."""
        return layout_for(dataset, columns, self.paillier_bits)

    def private_key(self, dataset: Dataset, columns: tuple[str, ...], epoch: int) -> PaillierPrivateKey:
        """The table's own Paillier key in ``epoch``, generated on first use and kept owner-only
        (0600) in the key directory, under a digest of dataset, columns and layout (never the key)
        and the epoch: a ciphertext kept from one epoch does not decrypt in a later one."""
        digest = self._digest("paillier", dataset.spec.name, list(columns), self.layout(dataset, columns))
        name = f"table-{digest}-epoch-{epoch}"
        with self._lock:
            cached = self._keys.get(name)
        if cached is not None:
            return cached
        with self._key_lock:
            path = self.key_directory / f"{name}.key"
            if path.exists():
                key = PaillierPrivateKey.from_bytes(path.read_bytes())
            else:
                _, key = generate_keypair(self.paillier_bits)
                self.key_directory.mkdir(parents=True, exist_ok=True, mode=0o700)
                write_atomic(path, key.to_bytes())
            with self._lock:
                self._keys[name] = key
            return key

    def table(self, dataset: Dataset, columns: tuple[str, ...], epoch: int) -> EncryptedTable:
        """Every row as ``Enc(row at its position)`` (see :mod:`mpc.protocols.lookup`) under the
        table's own key, positions from the tags of ``epoch``, encrypted as
        :meth:`EncryptedTable.ensure` asks for its buckets."""
        name = dataset.spec.name
        key = (name, columns, epoch)
        with self._lock:
            cached = self._tables.get(key)
        if cached is not None:
            return cached
        index = self.buckets(dataset, epoch)
        with self._compute_lock:
            with self._lock:
                cached = self._tables.get(key)
            if cached is not None:
                return cached
            pk = self.private_key(dataset, columns, epoch).public_key
            layout = self.layout(dataset, columns)
            digest = self._digest(
                TABLE_FORMAT,
                pk.fingerprint(),
                _key_id(self._oprf_key(name, epoch)),
                layout,
                self._data_digest(dataset, columns),
            )
            # clamped to the declared bounds before they are shared (loading already refuses rows outside them)
            values = (
                np.stack([np.clip(dataset.values(c), *declared(dataset, c)[1:]) for c in columns], axis=1)
                if len(dataset.ids)
                else np.zeros((0, len(columns)), np.int64)
            )
            positions = layout.positions(index.tags)

            def encrypt(rows: np.ndarray) -> Iterator[tuple[np.ndarray, bytes]]:
                """Ciphertexts of ``rows``, chunk by chunk (packed here, encrypted on the compute backend)."""
                for lo in range(0, len(rows), ENCRYPT_CHUNK_ROWS):
                    part = rows[lo : lo + ENCRYPT_CHUNK_ROWS]  # in bucket order, as the file holds them
                    yield part, encrypt_parallel(pk, layout.plaintexts(values[part], positions[part]))

            table = EncryptedTable(layout, pk, self._epoch_directory(epoch) / f"{name}-{digest}.bin", index, encrypt)
            with self._lock:
                self._tables[key] = table
            return table


def _computed_by_chunks(path: Path, rows: int, width: int, compute: Callable[[int, int], bytes]) -> bytes:
    """The contents of a per-row cache file (``width`` bytes a row), computed if absent.

    ``compute(lo, hi)`` gives rows ``[lo, hi)``; it is called :data:`ID_CHUNK_ROWS` rows at a time
    (each call spreads over the compute backend), appending to ``PATH.part`` and syncing it after
    each chunk, so that a daemon stopped midway resumes after its last whole chunk. The name of the
    file holds the digest of the keys and the data, so a part is only ever resumed by the same
    computation. Renamed to ``path`` when complete.
    """
    if path.exists() and path.stat().st_size == rows * width:
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    part = path.with_name(path.name + ".part")
    done = min(part.stat().st_size // (ID_CHUNK_ROWS * width) * ID_CHUNK_ROWS, rows) if part.exists() else 0
    fd = os.open(part, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.ftruncate(fd, done * width)  # a chunk cut short by the stop is computed again
        for lo in range(done, rows, ID_CHUNK_ROWS):
            os.pwrite(fd, compute(lo, min(lo + ID_CHUNK_ROWS, rows)), lo * width)
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(part, path)
    return path.read_bytes()


def _key_id(key: OprfServer) -> str:
    """A public identifier of an OPRF key (a hash: the key itself never enters a file name)."""
    return hashlib.sha256(b"oprf-key-id" + key.scalar + key.domain).hexdigest()[:16]
