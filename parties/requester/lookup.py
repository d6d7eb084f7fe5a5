"""P3 private lookup, the requester's role: plan the path, tag our ids by the owner's OPRF, fetch the
encrypted rows they select (the buckets they fall in, or the whole table on the P1 path), mask
them and have the owner decrypt; the owner keeps its shares under our session id
(:mod:`mpc.protocols.lookup`).

The owner learns the buckets (P3) or each row's position class (P1) and the row count; we learn
which of our ids it holds, and our shares.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import numpy as np
from gmpy2 import mpz

from mpc.crypto.obfuscators import (
    BackendObfuscator,
    Obfuscator,
    ObfuscatorPool,
    ShortExponentObfuscator,
    parallel_obfuscators,
)
from mpc.crypto.paillier import PaillierCiphertext, PaillierPublicKey
from mpc.protocols import lookup, planner
from parties.requester import oprf
from parties.requester.bucket_cache import CachedRows
from parties.requester.results import RemoteError, SharedLookup
from protos import party_pb2, party_pb2_grpc

log = logging.getLogger("mpc.requester")

if TYPE_CHECKING:
    from parties.requester.client import Client

__all__ = [
    "POOLED_OBFUSCATORS",
    "Fetched",
    "decrypt",
    "fetch",
    "masked_messages",
    "plan",
    "row_layout",
    "share",
    "table_key",
]

POOLED_OBFUSCATORS = 64  # per table key and process, for the masks of point queries
REFILL_OBFUSCATORS = 16  # computed at a time for that pool


@dataclass(frozen=True)
class Fetched:
    """A lookup between fetching the encrypted rows and the owner's masked decryption."""

    party: str  # as addressed
    owner: str  # its name
    dataset: str
    columns: tuple[str, ...]
    plan: planner.LookupPlan
    layout: lookup.RowLayout
    public_key: PaillierPublicKey
    selected: list[tuple[bytes, PaillierCiphertext] | None]  # (tag, ciphertext) per row, None if absent
    tokens: tuple[bytes, ...]  # the owner's fetch tokens, cited by the masked decryption (once)


def plan(
    client: Client,
    party: str,
    dataset: str,
    columns: Sequence[str],
    rows: int,
    distinct: int,
    force: planner.Path | None = None,
) -> planner.LookupPlan:
    """Which path (P3 bucketed, P1 whole table) a lookup of ``rows`` rows would take at ``party``."""
    caps, schema = client.capabilities(party), client.schema(party, dataset)
    layout = row_layout(schema, columns, caps.paillier_bits)
    return _plan(caps.party, schema, layout, rows, distinct, force)


def _plan(
    owner: str,
    schema: party_pb2.DatasetSchema,
    layout: lookup.RowLayout,
    rows: int,
    distinct: int,
    force: planner.Path | None,
) -> planner.LookupPlan:
    try:
        return planner.plan_lookup(
            owner,
            schema.name,
            rows,
            distinct,
            schema.rows,
            schema.bucket_bits,
            layout.rows_per_plaintext,
            schema.batch,
            layout.modulus_bits,
            force,
        )
    except PermissionError as exc:
        raise RemoteError(owner, grpc.StatusCode.PERMISSION_DENIED, str(exc)) from None


def row_layout(schema: party_pb2.DatasetSchema, columns: Sequence[str], modulus_bits: int) -> lookup.RowLayout:
    """How the owner packs ``columns`` into a plaintext, from its declared columns."""
    specs = {c.name: c for c in schema.columns}
    unknown = [c for c in columns if c not in specs]
    if unknown:
        raise RemoteError(schema.name, grpc.StatusCode.NOT_FOUND, f"dataset {schema.name!r} has no column(s) {unknown}")
    carried = [declared(specs[c]) for c in columns]
    return lookup.RowLayout.for_columns(list(columns), carried, modulus_bits)


def share(
    client: Client,
    party: str,
    dataset: str,
    columns: Sequence[str],
    ids: Sequence[str | None],
    path: planner.Path | None = None,
) -> SharedLookup:
    """Secret-share the owner's ``columns`` of each id (None: a padding row) with the owner
    (:class:`SharedLookup`). The path is planned (:func:`plan`) unless forced: P3 fetches the
    buckets our ids fall in (the owner learns the buckets and the row count), P1 the whole
    table (the owner learns each row's position class and the row count).
    """
    return decrypt(client, fetch(client, party, dataset, columns, ids, path))


def fetch(
    client: Client,
    party: str,
    dataset: str,
    columns: Sequence[str],
    ids: Sequence[str | None],
    path: planner.Path | None,
) -> Fetched:
    """Steps 1 and 2 of a lookup: plan, OPRF, and the encrypted rows our ids select. (An owner
    encrypts what it has not yet encrypted here, which may take minutes the first time.) When
    the owner refuses the fetch as FAILED_PRECONDITION (the epoch of our tags ended meanwhile,
    or its table changed) we ask again once, from the OPRF step."""
    try:
        return _fetch_once(client, party, dataset, columns, ids, path)
    except RemoteError as exc:
        if exc.code != grpc.StatusCode.FAILED_PRECONDITION:
            raise
    client.forget_schema(party)
    return _fetch_once(client, party, dataset, columns, ids, path)


def _fetch_once(
    client: Client,
    party: str,
    dataset: str,
    columns: Sequence[str],
    ids: Sequence[str | None],
    path: planner.Path | None,
) -> Fetched:
    stub = client.party_stub(party)
    caps = client.capabilities(party)
    real = list(dict.fromkeys(i for i in ids if i is not None))
    schema = client.schema(party, dataset)
    layout = row_layout(schema, columns, caps.paillier_bits)
    path_plan = _plan(caps.party, schema, layout, len(ids), len(real), path)
    # 1. OPRF: the owner's tag of each of our ids, without showing it the ids (in its current epoch).
    tag_of, epoch = oprf.dataset_tags(client, party, caps.party, dataset, real)
    # 2. The encrypted rows: the buckets our tags fall in (P3) or the whole table (P1).
    if path_plan.path == "P1":
        requests = [party_pb2.BucketRequest(dataset=dataset, columns=list(columns), whole_table=True, epoch=epoch)]
    else:
        # (with no id of ours, bucket 0 alone: the table's key masks the padding)
        buckets = sorted({lookup.bucket_of(t, schema.bucket_bits) for t in tag_of.values()}) or [0]
        requests = [
            party_pb2.BucketRequest(
                dataset=dataset, columns=list(columns), buckets=buckets[k : k + BUCKETS_PER_FETCH], epoch=epoch
            )
            for k in range(0, len(buckets), BUCKETS_PER_FETCH)
        ]
    found, public_key, tokens = _fetch_rows(
        client, party, stub, requests, layout, schema.bucket_bits, set(tag_of.values())
    )
    selected = [found.get(tag_of[i]) if i is not None else None for i in ids]
    return Fetched(party, caps.party, dataset, tuple(columns), path_plan, layout, public_key, selected, tokens)


def decrypt(client: Client, fetched: Fetched) -> SharedLookup:
    """Step 3: mask (absent ids and padding select nothing); the owner decrypts and keeps its
    shares under a new session id."""
    pk, layout, selected = fetched.public_key, fetched.layout, fetched.selected
    ciphertexts = [c[1] if c else None for c in selected]
    if fetched.plan.path == "P1":
        fixed = np.full(len(selected), -1, dtype=np.int64)
        matched = [i for i, c in enumerate(selected) if c is not None]
        fixed[matched] = layout.positions([c[0] for c in selected if c is not None])
        plan = lookup.plan_groups(fixed, layout.rows_per_plaintext)
        masked, mine = lookup.mask_groups(pk, layout, ciphertexts, plan, _obfuscators(pk, plan.count))
        groups: lookup.Groups | None = plan
    else:
        groups = None
        masked, mine = lookup.mask_rows(pk, layout, ciphertexts, _obfuscators(pk, len(selected)))
    session_id = uuid.uuid4().hex
    stub = client.party_stub(fetched.party)
    client.call(
        fetched.party,
        stub.MaskedDecrypt,
        masked_messages(
            session_id,
            fetched.dataset,
            fetched.columns,
            fetched.plan.path,
            masked,
            groups,
            len(selected),
            pk,
            fetched.tokens,
        ),
        timeout=3600,
    )
    present = np.array([c is not None for c in selected], dtype=np.uint8)
    return SharedLookup(fetched.owner, session_id, mine, present, fetched.plan)


def _fetch_rows(
    client: Client,
    party: str,
    stub: party_pb2_grpc.PartyStub,
    requests: Sequence[party_pb2.BucketRequest],
    layout: lookup.RowLayout,
    bucket_bits: int,
    wanted: set[bytes],
) -> tuple[dict[bytes, tuple[bytes, PaillierCiphertext]], PaillierPublicKey, tuple[bytes, ...]]:
    """Stream encrypted rows, each request's stream at once (up to :data:`FETCH_STREAMS`, so that a
    batch's buckets cross the wire side by side instead of one round trip after another); keep
    (tag, ciphertext) of the tags we want, check the layout; with the table's own public key (each
    answer's first message carries it: the same in all) and the fetch tokens our masked decryption
    cites."""
    want = np.sort(np.frombuffer(b"".join(wanted), dtype="<u8"))
    metadata = client.metadata()  # the purpose and case are this thread's (the service's client)

    def one(request: party_pb2.BucketRequest) -> _Stream:
        return _fetch_stream(client, party, stub, request, metadata, layout, bucket_bits, want)

    streams = [one(requests[0])] if len(requests) == 1 else list(_fetch_pool().map(one, requests))
    keys = {s.encoded for s in streams}
    if len(keys) != 1:
        raise _table_changed(client, party)
    found = {tag: row for s in streams for tag, row in s.found.items()}
    return found, streams[0].public_key, tuple(s.token for s in streams)


FETCH_STREAMS = 8  # a requester's encrypted-row streams in flight at once (per process)
BUCKETS_PER_FETCH = 16  # P3 buckets asked for in one call (a batch's calls run side by side)
_FETCH_POOL: ThreadPoolExecutor | None = None
_FETCH_POOL_LOCK = threading.Lock()


def _fetch_pool() -> ThreadPoolExecutor:
    global _FETCH_POOL
    with _FETCH_POOL_LOCK:
        if _FETCH_POOL is None:
            _FETCH_POOL = ThreadPoolExecutor(max_workers=FETCH_STREAMS, thread_name_prefix="bucket-fetch")
        return _FETCH_POOL


@dataclass(frozen=True)
class _Stream:
    """What one GetEncryptedBucket answer brought: the rows we want, the table's key (as encoded
    and as a key with its obfuscators) and the fetch token."""

    found: dict[bytes, tuple[bytes, PaillierCiphertext]]
    encoded: bytes
    public_key: PaillierPublicKey
    token: bytes


def _fetch_stream(
    client: Client,
    party: str,
    stub: party_pb2_grpc.PartyStub,
    request: party_pb2.BucketRequest,
    metadata: tuple[tuple[str, str], ...],
    layout: lookup.RowLayout,
    bucket_bits: int,
    want: np.ndarray,
) -> _Stream:
    """One request's stream of encrypted rows (``want``: the tags we look for, sorted). Buckets whose
    rows the client's :class:`~parties.requester.bucket_cache.BucketCache` keeps are asked for by
    the table version it holds; the owner sends them again only if its table changed since."""
    cache = client.bucket_cache if not request.whole_table else None
    asked = list(request.buckets)
    keys = {b: (party, request.dataset, tuple(request.columns), request.epoch, b) for b in asked}
    held: dict[int, CachedRows] = {}
    for b, entry in ((b, cache.get(keys[b])) for b in asked) if cache is not None else ():
        if entry is not None and all(entry.version == h.version for h in held.values()):
            held[b] = entry
    if held:
        request = party_pb2.BucketRequest(
            dataset=request.dataset,
            columns=request.columns,
            buckets=asked,
            epoch=request.epoch,
            cached_version=next(iter(held.values())).version,
            kept=[b in held for b in asked],
        )
    token, encoded, version, public_key = b"", b"", b"", None
    found: dict[bytes, tuple[bytes, PaillierCiphertext]] = {}
    omitted: set[int] = set()
    parts: dict[int, tuple[int, list[bytes], list[bytes]]] = {}  # what the cache keeps (P3 only)
    try:
        for message in stub.GetEncryptedBucket(request, metadata=metadata):
            if message.columns:
                if (
                    tuple(message.columns),
                    tuple(message.value_bits),
                    tuple(message.minimums),
                    message.rows_per_plaintext,
                    message.bucket_bits,
                ) != (
                    layout.columns,
                    layout.value_bits,
                    layout.minimums,
                    layout.rows_per_plaintext,
                    bucket_bits,
                ):
                    raise _table_changed(client, party)
                encoded, version = message.paillier_public_key, message.table_version
                public_key = table_key(
                    encoded, client.obfuscator_cache, client.pooled_obfuscators, client.obfuscators_on_backend
                )
                token = message.fetch_token
                if public_key.bits != layout.modulus_bits:
                    raise RemoteError(
                        party,
                        grpc.StatusCode.DATA_LOSS,
                        f"a {public_key.bits}-bit table key for a {layout.modulus_bits}-bit layout",
                    )
            if public_key is None:
                raise RemoteError(party, grpc.StatusCode.DATA_LOSS, "encrypted rows before the table's key")
            bucket = message.bucket
            if cache is not None and bucket not in keys:
                raise RemoteError(party, grpc.StatusCode.DATA_LOSS, f"rows of bucket {bucket}: we did not ask for it")
            if message.rows_omitted:
                kept = held.get(bucket)
                if kept is None or (version, encoded, message.bucket_rows) != (kept.version, kept.key, kept.rows):
                    raise RemoteError(party, grpc.StatusCode.DATA_LOSS, "rows omitted that we do not hold")
                omitted.add(bucket)
                _select(found, public_key, kept.tags, kept.ciphertexts, want)
                continue
            # each access to a bytes field copies it: read each once per message
            tag_bytes, blob = message.tags, message.ciphertexts
            if len(tag_bytes) != 8 * message.count or len(blob) != message.count * public_key.ciphertext_bytes:
                raise RemoteError(party, grpc.StatusCode.DATA_LOSS, "malformed encrypted rows")
            _select(found, public_key, tag_bytes, blob, want)
            if cache is not None:
                expected, tags, blobs = parts.setdefault(bucket, (message.bucket_rows, [], []))
                tags.append(tag_bytes)
                blobs.append(blob)
    except grpc.RpcError as exc:
        raise RemoteError(party, exc.code(), exc.details() or "") from None
    if public_key is None:
        raise RemoteError(party, grpc.StatusCode.DATA_LOSS, "no encrypted rows came back")
    if cache is not None:
        for b in asked:
            cache.counted(b in omitted)
        for b, (expected, tags, blobs) in parts.items():
            rows = CachedRows(version, encoded, b"".join(tags), b"".join(blobs))
            if version and rows.rows == expected:
                cache.put(keys[b], rows)
    return _Stream(found, encoded, public_key, token)


def _table_changed(client: Client, party: str) -> RemoteError:
    """The owner's table is not the one whose schema we read (its layout, buckets or key): the
    schema is read again on the next try."""
    client.forget_schema(party)
    return RemoteError(
        party,
        grpc.StatusCode.FAILED_PRECONDITION,
        "the owner's table changed since we read its schema (layout, buckets or key); try again",
    )


def _select(
    found: dict[bytes, tuple[bytes, PaillierCiphertext]],
    public_key: PaillierPublicKey,
    tag_bytes: bytes,
    blob: bytes,
    want: np.ndarray,
) -> None:
    """Add to ``found`` the (tag, ciphertext) of the rows whose tags are in ``want`` (sorted)."""
    if not len(want):
        return
    width, tags = public_key.ciphertext_bytes, np.frombuffer(tag_bytes, dtype="<u8")
    nearest = want[np.minimum(np.searchsorted(want, tags), len(want) - 1)]  # np.isin re-sorts `want`
    for k in np.flatnonzero(nearest == tags).tolist():
        tag = tag_bytes[8 * k : 8 * k + 8]
        found[tag] = (tag, public_key.ciphertext_from_bytes(blob[k * width : (k + 1) * width]))


def _obfuscators(public_key: PaillierPublicKey, count: int) -> list[Any] | None:
    """Mask obfuscators on every core for large batches (None: the key's own source)."""
    return parallel_obfuscators(public_key, count) if count >= 256 else None


def masked_messages(
    session_id: str,
    dataset: str,
    columns: Sequence[str],
    path: str,
    masked: Sequence[PaillierCiphertext],
    groups: lookup.Groups | None,
    rows: int,
    public_key: PaillierPublicKey,
    tokens: Sequence[bytes],
) -> Iterator[party_pb2.MaskedRows]:
    yield party_pb2.MaskedRows(
        session_id=session_id,
        dataset=dataset,
        columns=list(columns),
        path=path,
        rows=rows if groups is not None else 0,
        fetch_tokens=list(tokens),
    )
    step = 16_384
    for start in range(0, len(masked), step):
        part = list(masked[start : start + step])
        yield party_pb2.MaskedRows(ciphertexts=public_key.ciphertexts_to_bytes(part), count=len(part))
    if groups is not None:
        for start in range(0, rows, 1 << 20):
            end = start + (1 << 20)
            yield party_pb2.MaskedRows(
                groups=groups.groups[start:end].astype("<i4").tobytes(),
                positions=groups.positions[start:end].astype("<i4").tobytes(),
            )


def table_key(
    encoded: bytes, cache_dir: Path | None = None, pooled: int = POOLED_OBFUSCATORS, on_backend: bool = False
) -> PaillierPublicKey:
    """An owner's table key (as its encrypted rows carry it) with a short-exponent table, built
    once per process and key (every client of the process shares it; drawing obfuscators is
    thread-safe) and, with ``cache_dir`` (our state directory's), kept on disk for our next
    process: a command line checking one application then reads the table instead of building it.
    ``pooled``: how many obfuscators the key's pool keeps ready; ``on_backend``: computed on the
    compute backend's workers instead of this process (the first process's choice for both)."""
    with _KEYS_LOCK:
        key = _KEYS.get(encoded)
        if key is None:
            key = PaillierPublicKey.from_bytes(encoded)
            source: Obfuscator = (
                BackendObfuscator(key) if on_backend else _LockedObfuscator(_table(key, encoded, cache_dir))
            )
            key.use_obfuscator(ObfuscatorPool(source, capacity=pooled))
            _KEYS[encoded] = key
        return key


def _table(key: PaillierPublicKey, encoded: bytes, cache_dir: Path | None) -> ShortExponentObfuscator:
    """The key's short-exponent table, read from ``cache_dir`` or built (and saved there)."""
    saved = cache_dir / f"table-{hashlib.sha256(encoded).hexdigest()[:32]}-w8.bin" if cache_dir else None
    table = ShortExponentObfuscator.load(saved, key, 8) if saved is not None else None
    if table is None:
        table = ShortExponentObfuscator(key, window_bits=8)
        if saved is not None:
            try:
                saved.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                table.save(saved)
            except OSError as exc:  # a cache we cannot write costs the next process time, nothing else
                log.warning("obfuscator table not saved", extra={"fields": {"error": str(exc)}})
    # Point queries draw from a small pool that a background thread keeps full, in steps of a
    # few obfuscators (not the table's default 256, a quarter second of one core): a process
    # that checks one application draws a handful.
    table.buffer_size = REFILL_OBFUSCATORS
    return table


def declared(column: party_pb2.ColumnSchema) -> tuple[str, int | None, int | None]:
    """(type, min, max) of an owner's column as carried on shares (a category: its codes)."""
    if column.type == "category":
        return column.type, 0, max(0, len(column.categories) - 1) if column.categories else None
    return column.type, column.min if column.has_bounds else None, column.max if column.has_bounds else None


_KEYS: dict[bytes, PaillierPublicKey] = {}  # by PaillierPublicKey.to_bytes() of a table key
_KEYS_LOCK = threading.Lock()


class _LockedObfuscator:
    """One obfuscator source shared by threads (its refill buffer is not thread-safe)."""

    def __init__(self, source: ShortExponentObfuscator) -> None:
        self._source, self._lock = source, threading.Lock()
        self.public_key = source.public_key

    def next(self) -> mpz:
        with self._lock:
            return self._source.next()
