"""What an owner tells a caller about itself: capabilities, the catalogue it grants, its audit head.

The catalogue shows row counts rounded up to the owner's granularity and, for category columns
the caller may filter or group by, the declared domain, never the values present in the data.
"""

from __future__ import annotations

import grpc

from mpc.protocols.programs import PROGRAMS
from parties.owner.gate import Handlers
from parties.rpc.boundary import Call
from protos import common_pb2, party_pb2

__all__ = ["PROTOCOLS", "Catalogue"]

PROTOCOLS = (
    "oprf",
    "psi-cardinality",
    "psi-intersection",
    "psi-owner-tags",
    "encrypted-buckets",
    "encrypted-table",
    "masked-decrypt",
    *(f"share-exchange:{name}" for name in PROGRAMS),
)


class Catalogue(Handlers):
    def capabilities(
        self, request: common_pb2.Empty, context: grpc.ServicerContext, call: Call
    ) -> party_pb2.Capabilities:
        d = self.daemon
        return party_pb2.Capabilities(
            party=d.name,
            protocols=list(PROTOCOLS),
            paillier_bits=d.config.party.paillier_bits,
            audit_public_key=d.state.audit_public_key_hex(),
            max_message_bytes=d.max_message_bytes,
            max_batch_points=d.config.party.max_points_per_request,
        )

    def list_datasets(
        self, request: common_pb2.Empty, context: grpc.ServicerContext, call: Call
    ) -> party_pb2.DatasetList:
        grant = self.gate.listing(call)
        out = party_pb2.DatasetList(
            reveal_clauses=grant.reveal_clauses,
            max_household=grant.max_household,
            release_epsilon=grant.release_epsilon or 0.0,
        )
        for name, dataset_grant in grant.datasets.items():
            dataset = self.daemon.datasets.get(name)
            if dataset is None:
                continue
            spec = dataset.spec.schema_
            # the row count rounded up to the owner's granularity; category values are the declared
            # domain (Dataset.labels), never the values present in the data
            schema = party_pb2.DatasetSchema(
                name=name,
                id_kind=spec.id_kind,
                rows=self.gate.catalogue_rows(len(dataset.ids)),
                description=dataset.spec.description,
                bucket_bits=self.daemon.bucket_bits(name),
                batch=dataset_grant.batch,
                epoch=self.daemon.dataset_epoch(),
            )
            for column, col in spec.columns.items():
                uses = [] if col.classification == "secret" else list(dataset_grant.columns.get(column, []))
                labels = dataset.labels(column) if col.type == "category" and {"filter", "group_by"} & set(uses) else ()
                schema.columns.append(
                    party_pb2.ColumnSchema(
                        name=column,
                        type=col.type,
                        has_bounds=col.numeric_bounds is not None,
                        min=(col.numeric_bounds or (0, 0))[0],
                        max=(col.numeric_bounds or (0, 0))[1],
                        classification=col.classification,
                        allowed_uses=uses,
                        categories=list(labels),
                    )
                )
            out.datasets.append(schema)
        return out

    def audit_head(self, request: common_pb2.Empty, context: grpc.ServicerContext, call: Call) -> common_pb2.AuditHead:
        return self.daemon.signed_head()
