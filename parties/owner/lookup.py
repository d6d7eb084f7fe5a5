"""P3 private lookup (and P1's whole-table variant), the owner's role: stream the encrypted rows
of the buckets a requester's tags fall in, then decrypt what it masked and keep the owner's
shares under the requester's session id (:mod:`mpc.protocols.lookup`).

Each fetch is counted and answered with a fetch token; a masked decryption redeems the tokens of
fetches we served, once, with the key of their table and epoch. The owner learns the buckets (P3)
or each row's position class (P1) and the row count, never which row a requester wanted.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import grpc
import numpy as np

from mpc.protocols import lookup
from parties.owner.gate import Handlers
from parties.owner.sessions import Fetch, HeldShares, check_session_id
from parties.rpc.boundary import Call, ServiceError
from protos import party_pb2

if TYPE_CHECKING:
    pass

__all__ = ["DECRYPT_SERIAL_BELOW", "MAX_BUCKETS_PER_FETCH", "Lookup"]

MAX_BUCKETS_PER_FETCH = 1024  # P3 buckets one GetEncryptedBucket call may ask for (each one budgeted)
# masked decryptions of at least this many ciphertexts go to the compute backend's workers: a
# decryption holds the interpreter for 3 ms (2048 bits), and a coalesced batch brings 20 to 32
DECRYPT_SERIAL_BELOW = 4


class Lookup(Handlers):
    def encrypted_rows(
        self, request: party_pb2.BucketRequest, context: grpc.ServicerContext, call: Call
    ) -> Iterator[party_pb2.EncryptedRows]:
        _, columns = self.gate.readable(call, request.dataset, list(request.columns), batch=request.whole_table)
        epoch = self.daemon.check_dataset_epoch(request.epoch)  # the epoch of the requester's tags
        buckets = self.daemon.buckets(request.dataset, epoch)
        table = self.daemon.encrypted_table(request.dataset, columns, epoch)
        segments: list[tuple[int, np.ndarray, bool]]  # (bucket, its rows, kept by the requester)
        if request.whole_table:  # P1: every row; the owner learns nothing about which are used
            self.daemon.budgets.batch(call, request.dataset)
            table.ensure_all()
            segments, call.protocol = [(0, buckets.order, False)], "P1"  # in the file's order: one pass
            call.detail = f"dataset={request.dataset} whole table columns={list(columns)}"
        else:
            wanted = [int(b) for b in request.buckets] or [int(request.bucket)]
            kept = [bool(k) for k in request.kept] or [False] * len(wanted)
            if len(wanted) > MAX_BUCKETS_PER_FETCH:
                raise ServiceError(
                    grpc.StatusCode.RESOURCE_EXHAUSTED, f"{len(wanted)} buckets: at most {MAX_BUCKETS_PER_FETCH} a call"
                )
            if len(set(wanted)) != len(wanted) or len(kept) != len(wanted):
                raise ValueError("name each bucket once, with one kept flag per bucket (or none)")
            outside = [b for b in wanted if not 0 <= b < 1 << buckets.bucket_bits]
            if outside:
                raise ValueError(f"bucket {outside[0]} outside [0, 2^{buckets.bucket_bits})")
            self.daemon.budgets.buckets(call, request.dataset, wanted)
            # buckets the requester kept from fetches of this very table: their rows are what we
            # would send again (same file, same key), so their answer is the bucket's header alone
            current = bool(request.cached_version) and request.cached_version == table.version
            segments = [(b, buckets.rows(b), current and k) for b, k in zip(wanted, kept, strict=True)]
            table.ensure([b for b, _, omitted in segments if not omitted])
            call.protocol = "P3"
            held = sum(omitted for *_, omitted in segments)
            call.detail = (
                f"dataset={request.dataset} buckets={','.join(map(str, wanted))}/{1 << buckets.bucket_bits} "
                f"columns={list(columns)}" + (f" kept_by_requester={held}" if held else "")
            )
        call.rows = sum(len(rows) for _, rows, _ in segments)
        layout, step, first = table.layout, 4096, True
        for bucket, rows, omitted in segments:
            for start in range(0, 1 if omitted else max(1, len(rows)), step):
                part = rows[start : start + step] if not omitted else rows[:0]
                message = party_pb2.EncryptedRows(
                    tags=buckets.tag_bytes(part), ciphertexts=table.rows_bytes(part), count=len(part), bucket=bucket
                )
                if start == 0:
                    message.bucket_rows, message.rows_omitted = len(rows), omitted
                if first:
                    message.bucket_bits, message.rows_per_plaintext, message.total = (
                        buckets.bucket_bits,
                        layout.rows_per_plaintext,
                        call.rows,
                    )
                    message.columns.extend(layout.columns)
                    message.value_bits.extend(layout.value_bits)
                    message.minimums.extend(layout.minimums)
                    message.paillier_public_key = table.public_key.to_bytes()
                    message.table_version = table.version
                    message.fetch_token = self.daemon.fetches.issue(
                        Fetch(call.peer, request.dataset, columns, bool(request.whole_table), epoch, time.monotonic())
                    )
                    first = False
                yield message

    def masked_decrypt(
        self, requests: Iterator[party_pb2.MaskedRows], context: grpc.ServicerContext, call: Call
    ) -> party_pb2.DecryptReceipt:
        header = next(requests, None)
        if header is None:
            raise ValueError("MaskedDecrypt needs at least one message")
        data, columns = self.gate.readable(call, header.dataset, list(header.columns))
        check_session_id(header.session_id)
        if header.path not in ("P3", "P1"):  # never a path that hands a decryption to the requester
            raise ValueError(f"path must be P3 or P1, not {header.path!r}")
        if header.path == "P1":  # a batch over the whole table: the owner learns position classes only
            self.gate.dataset(call, header.dataset, batch=True)
        limit = self.daemon.config.party.max_points_per_request
        if not 0 <= header.rows <= limit:
            raise ServiceError(grpc.StatusCode.RESOURCE_EXHAUSTED, f"{header.rows} rows: more than {limit}")
        # only rows of fetches we served and counted, each decrypted once, with the key of the table
        # and epoch they came from (another table's or epoch's rows decrypt to noise)
        epoch = self.daemon.fetches.redeem(
            list(header.fetch_tokens), call.peer, header.dataset, columns, header.path == "P1"
        )
        sk = self.daemon.tables.private_key(data, columns, epoch)
        layout = self.daemon.tables.layout(data, columns)
        width = sk.public_key.ciphertext_bytes
        blobs, groups, positions, count = [], [], [], 0
        for message in itertools.chain([header], requests):  # limits checked as messages arrive
            if len(message.ciphertexts) != message.count * width:
                raise ValueError(
                    f"{len(message.ciphertexts)} bytes of ciphertexts for an announced count of {message.count}"
                )
            count += message.count
            if count > limit:
                raise ServiceError(grpc.StatusCode.RESOURCE_EXHAUSTED, f"more than {limit} ciphertexts")
            blobs.append(message.ciphertexts)
            groups.append(message.groups)
            positions.append(message.positions)
        masked = sk.public_key.ciphertexts_from_bytes(b"".join(blobs))
        plaintexts = sk.decrypt_parallel(masked, serial_below=DECRYPT_SERIAL_BELOW)
        if header.path == "P1":
            row_groups = np.frombuffer(b"".join(groups), dtype="<i4").astype(np.int64)
            row_positions = np.frombuffer(b"".join(positions), dtype="<i4").astype(np.int64)
            if not len(row_groups) == len(row_positions) == header.rows:
                raise ValueError(f"{len(row_groups)} groups and {len(row_positions)} positions for {header.rows} rows")
            shares = lookup.unmask(layout, plaintexts, row_groups, row_positions)
        else:
            shares = lookup.unmask(layout, plaintexts)
        self.daemon.sessions.put(
            header.session_id, HeldShares(call.peer, header.dataset, layout.columns, shares, time.monotonic())
        )
        call.rows, call.protocol = len(shares), header.path
        call.detail = (
            f"session={header.session_id} dataset={header.dataset} columns={list(columns)} ciphertexts={count}"
        )
        return party_pb2.DecryptReceipt(rows=len(shares))
