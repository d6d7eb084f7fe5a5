"""The requester's Python SDK: talk to owners' daemons with this agency's certificate.

    client = Client.from_config("housing.toml", purpose="public-rental-housing", case="HZ-2026-0001")
    result = client.psi_cardinality("tax", "income", my_ids)

Every call carries the purpose code and case reference as metadata; owners check them against
their policy and write them to their audit logs. Party names resolve to endpoints through the
coordinator's directory.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from mpc.crypto.curve25519 import OprfClient
from mpc.crypto.obfuscators import ShortExponentObfuscator
from mpc.crypto.packing import SlotPacking
from mpc.crypto.paillier import PaillierCiphertext, PaillierPublicKey
from mpc.protocols import lookup, psi, selftest
from mpc.protocols import threshold as threshold_rule
from mpc.sharing.channel import ChannelError
from mpc.sharing.runtime import Party
from parties.net.dealer_client import session_correlations
from parties.net.points import point_batches, split_fixed, split_points
from parties.net.share_channel import ShareClientChannel
from parties.net.tls import OwnCertificateError, TlsConfig, check_own_certificate, secure_channel
from parties.party.config import load_party_config
from protos import common_pb2, coordinator_pb2_grpc, party_pb2, party_pb2_grpc


class RemoteError(RuntimeError):
    """A refused or failed remote call: the party, the gRPC status and the callee's message."""

    def __init__(self, party: str, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{party}: {code.name}: {details}")
        self.party, self.code, self.details = party, code, details


@dataclass(frozen=True)
class PsiCardinality:
    intersection: int
    requester_count: int
    owner_count: int
    seconds: float


class Client:
    def __init__(self, name: str, tls: TlsConfig, coordinator: str | None, purpose: str = "", case: str = "") -> None:
        self.name, self.tls, self.coordinator = name, tls, coordinator
        self.purpose, self.case = purpose, case
        self._channels: dict[str, grpc.Channel] = {}
        self._paillier: dict[str, PaillierPublicKey] = {}

    @classmethod
    def from_config(cls, path: str | Path, purpose: str = "", case: str = "") -> Client:
        config = load_party_config(Path(path))
        return cls(config.party.name, config.tls, config.party.coordinator, purpose, case)

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing
    def _metadata(self) -> tuple[tuple[str, str], ...]:
        return (("x-purpose", self.purpose), ("x-case", self.case))

    def _channel(self, target: str) -> grpc.Channel:
        if not self._channels:
            try:
                check_own_certificate(self.tls)
            except OwnCertificateError as exc:
                raise RemoteError("(local)", grpc.StatusCode.UNAUTHENTICATED, str(exc)) from None
        if target not in self._channels:
            self._channels[target] = secure_channel(target, self.tls)
        return self._channels[target]

    def coordinator_stub(self) -> Any:
        if not self.coordinator:
            raise ValueError("no coordinator configured")
        return coordinator_pb2_grpc.CoordinatorStub(self._channel(self.coordinator))

    def endpoint(self, party: str) -> str:
        """A party's address: ``host:port`` as given, or a name looked up in the directory."""
        if ":" in party:
            return party
        try:
            directory = self.coordinator_stub().GetDirectory(common_pb2.Empty(), metadata=self._metadata(), timeout=10)
        except grpc.RpcError as exc:
            raise RemoteError("coordinator", exc.code(), exc.details() or "") from None
        for entry in directory.parties:
            if entry.party == party:
                return str(entry.endpoint)
        raise LookupError(f"party {party!r} is not in the coordinator's directory")

    def party_stub(self, party: str) -> Any:
        return party_pb2_grpc.PartyStub(self._channel(self.endpoint(party)))

    def _call(self, party: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, metadata=self._metadata(), **kwargs)
        except grpc.RpcError as exc:
            raise RemoteError(party, exc.code(), exc.details() or "") from None

    # ------------------------------------------------------------------ operations
    def capabilities(self, party: str) -> party_pb2.Capabilities:
        reply: party_pb2.Capabilities = self._call(party, self.party_stub(party).GetCapabilities, common_pb2.Empty(), timeout=10)
        return reply

    def list_datasets(self, party: str) -> party_pb2.DatasetList:
        reply: party_pb2.DatasetList = self._call(party, self.party_stub(party).ListDatasets, common_pb2.Empty(), timeout=10)
        return reply

    def psi_cardinality(self, party: str, dataset: str, ids: Sequence[str]) -> PsiCardinality:
        """P1 cardinality: how many of ``ids`` the owner's dataset holds. The owner learns only
        how many distinct ids we sent."""
        started = time.perf_counter()
        state, mine = psi.requester_encrypt(ids)

        def requests() -> Iterator[party_pb2.PsiMessage]:
            yield party_pb2.PsiMessage(start=party_pb2.PsiStart(dataset=dataset, mode="cardinality", requester_count=len(mine)))
            for batch in point_batches(mine):
                yield party_pb2.PsiMessage(points=batch)
            yield party_pb2.PsiMessage(done=party_pb2.PsiDone(list="requester", count=len(mine)))

        owner: list[bytes] = []
        double: list[bytes] = []
        target = owner
        try:
            for message in self.party_stub(party).PsiRound(requests(), metadata=self._metadata()):
                kind = message.WhichOneof("body")
                if kind == "points":
                    target.extend(split_points(message.points.points, message.points.count))
                elif kind == "done" and message.done.list == "owner":
                    target = double
        except grpc.RpcError as exc:
            raise RemoteError(party, exc.code(), exc.details() or "") from None
        count = psi.requester_count(state, owner, double)
        return PsiCardinality(count, state.count, len(owner), time.perf_counter() - started)

    def selftest_compare(self, party: str, values: np.ndarray, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
        """Secret-shared ``values < public_values(seed)`` with ``party`` as co-party, the
        coordinator dealing. Returns the bits and what the co-party reported learning."""
        name = party if ":" not in party else self.capabilities(party).party
        return self._run_program(party, name, uuid.uuid4().hex, "selftest-compare", {"n": len(values), "seed": seed},
                                 lambda p: selftest.compare_program(p, len(values), seed, 0, values))

    def _run_program(self, party: str, name: str, session_id: str, program: str, params: dict[str, Any],
                     body: Callable[[Party], np.ndarray | None]) -> tuple[np.ndarray, dict[str, Any]]:
        """Run ``body`` as party 0 against ``program`` on the co-party's daemon, the coordinator dealing."""
        correlations, remote = session_correlations(self.coordinator_stub(), session_id, (self.name, name), self._metadata())
        start = party_pb2.ShareStart(session_id=session_id, program=program, params=json.dumps(params).encode(),
                                     initiator_index=0)
        channel = ShareClientChannel(self.party_stub(party), start, peer=name, metadata=self._metadata())
        try:
            bits = body(Party(0, channel, correlations))
        except ChannelError as exc:
            channel.abort(f"{self.name} gave up: {exc}")
            code = grpc.StatusCode.UNAVAILABLE if "UNAVAILABLE" in str(exc) else grpc.StatusCode.ABORTED
            raise RemoteError(party, code, f"session {session_id}: {exc}") from None
        except BaseException as exc:
            channel.abort(f"{self.name} failed: {type(exc).__name__}")
            raise
        finally:
            if remote is not None:
                remote.close()
        channel.close()
        assert bits is not None
        return bits, channel.result or {}

    def threshold_check(self, party: str, dataset: str, column: str, ids: Sequence[str], op: str,
                        threshold: int) -> np.ndarray:
        """P3 then P4 for one owner: for each id, ``present AND column OP threshold``, as 0/1.

        The owner learns how many ids were asked and which buckets (each ~anonymity-set rows) they
        fall in; not the ids, not the threshold, not the results. We learn one bit per id.
        """
        if op not in threshold_rule.COMPARISONS:
            raise ValueError(f"op must be one of {sorted(threshold_rule.COMPARISONS)}")
        stub = self.party_stub(party)
        caps = self.capabilities(party)
        schema = next((d for d in self.list_datasets(party).datasets if d.name == dataset), None)
        if schema is None:
            raise RemoteError(party, grpc.StatusCode.NOT_FOUND, f"{caps.party} grants us no dataset {dataset!r}")
        public_key = self._paillier_key(caps)
        # 1. OPRF: the owner's tag of each of our ids, without showing it the ids.
        client = OprfClient(domain=f"{caps.party}/{dataset}".encode())
        query = client.blind(list(ids))
        evaluated: list[bytes] = []
        batches = point_batches(query.points, dataset=dataset)
        try:
            for reply in stub.EvaluateOprf(batches, metadata=self._metadata()):
                evaluated.extend(split_points(reply.points, reply.count))
        except grpc.RpcError as exc:
            raise RemoteError(party, exc.code(), exc.details() or "") from None
        tags = client.finalize(query, evaluated)
        # 2. The encrypted buckets our tags fall in.
        rows: dict[bytes, PaillierCiphertext] = {}
        packing = SlotPacking.for_modulus(int(public_key.n))
        for bucket in sorted({lookup.bucket_of(t, schema.bucket_bits) for t in tags}):
            request = party_pb2.BucketRequest(dataset=dataset, columns=[column], bucket=bucket)
            try:
                for message in stub.GetEncryptedBucket(request, metadata=self._metadata()):
                    got = split_fixed(message.tags, 8, message.count)
                    rows.update(zip(got, public_key.ciphertexts_from_bytes(message.ciphertexts), strict=True))
            except grpc.RpcError as exc:
                raise RemoteError(party, exc.code(), exc.details() or "") from None
        # 3. Mask every row (a missing id gets an encryption of zeros) and let the owner decrypt.
        table = lookup.EncryptedTable(public_key, packing, ("present", column), rows)
        masked, mine = zip(*(lookup.mask_row(table, t) for t in tags), strict=True) if tags else ((), ())
        session_id = uuid.uuid4().hex
        self._call(party, stub.MaskedDecrypt, party_pb2.MaskedRows(
            session_id=session_id, dataset=dataset, columns=[column],
            ciphertexts=public_key.ciphertexts_to_bytes(list(masked)), count=len(masked)), timeout=300)
        shares = np.array(mine, dtype=np.uint64).reshape(len(tags), 2)
        # 4. Compare on shares with the owner; only we see the bits.
        bits, _ = self._run_program(party, caps.party, session_id, "threshold-check", {"op": op},
                                    lambda p: threshold_rule.threshold_program(p, shares, op, requester=0, threshold=threshold))
        return bits

    def _paillier_key(self, caps: party_pb2.Capabilities) -> PaillierPublicKey:
        key = self._paillier.get(caps.paillier_public_key)
        if key is None:
            key = PaillierPublicKey.from_bytes(bytes.fromhex(caps.paillier_public_key))
            key.use_obfuscator(ShortExponentObfuscator(key, window_bits=8))
            self._paillier[caps.paillier_public_key] = key
        return key
