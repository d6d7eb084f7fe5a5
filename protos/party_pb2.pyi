from protos import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Capabilities(_message.Message):
    __slots__ = ("party", "protocols", "audit_public_key", "max_message_bytes", "max_batch_points", "paillier_bits")
    PARTY_FIELD_NUMBER: _ClassVar[int]
    PROTOCOLS_FIELD_NUMBER: _ClassVar[int]
    AUDIT_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_POINTS_FIELD_NUMBER: _ClassVar[int]
    PAILLIER_BITS_FIELD_NUMBER: _ClassVar[int]
    party: str
    protocols: _containers.RepeatedScalarFieldContainer[str]
    audit_public_key: str
    max_message_bytes: int
    max_batch_points: int
    paillier_bits: int
    def __init__(self, party: _Optional[str] = ..., protocols: _Optional[_Iterable[str]] = ..., audit_public_key: _Optional[str] = ..., max_message_bytes: _Optional[int] = ..., max_batch_points: _Optional[int] = ..., paillier_bits: _Optional[int] = ...) -> None: ...

class ColumnSchema(_message.Message):
    __slots__ = ("name", "type", "has_bounds", "min", "max", "classification", "allowed_uses", "categories")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    HAS_BOUNDS_FIELD_NUMBER: _ClassVar[int]
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    CLASSIFICATION_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_USES_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    has_bounds: bool
    min: int
    max: int
    classification: str
    allowed_uses: _containers.RepeatedScalarFieldContainer[str]
    categories: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ..., has_bounds: _Optional[bool] = ..., min: _Optional[int] = ..., max: _Optional[int] = ..., classification: _Optional[str] = ..., allowed_uses: _Optional[_Iterable[str]] = ..., categories: _Optional[_Iterable[str]] = ...) -> None: ...

class DatasetSchema(_message.Message):
    __slots__ = ("name", "id_kind", "rows", "columns", "description", "bucket_bits", "batch", "epoch")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ID_KIND_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    BUCKET_BITS_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    name: str
    id_kind: str
    rows: int
    columns: _containers.RepeatedCompositeFieldContainer[ColumnSchema]
    description: str
    bucket_bits: int
    batch: bool
    epoch: int
    def __init__(self, name: _Optional[str] = ..., id_kind: _Optional[str] = ..., rows: _Optional[int] = ..., columns: _Optional[_Iterable[_Union[ColumnSchema, _Mapping]]] = ..., description: _Optional[str] = ..., bucket_bits: _Optional[int] = ..., batch: _Optional[bool] = ..., epoch: _Optional[int] = ...) -> None: ...

class DatasetList(_message.Message):
    __slots__ = ("datasets", "reveal_clauses", "max_household", "release_epsilon")
    DATASETS_FIELD_NUMBER: _ClassVar[int]
    REVEAL_CLAUSES_FIELD_NUMBER: _ClassVar[int]
    MAX_HOUSEHOLD_FIELD_NUMBER: _ClassVar[int]
    RELEASE_EPSILON_FIELD_NUMBER: _ClassVar[int]
    datasets: _containers.RepeatedCompositeFieldContainer[DatasetSchema]
    reveal_clauses: bool
    max_household: int
    release_epsilon: float
    def __init__(self, datasets: _Optional[_Iterable[_Union[DatasetSchema, _Mapping]]] = ..., reveal_clauses: _Optional[bool] = ..., max_household: _Optional[int] = ..., release_epsilon: _Optional[float] = ...) -> None: ...

class PointBatch(_message.Message):
    __slots__ = ("dataset", "points", "count", "predicate", "epoch")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    PREDICATE_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    points: bytes
    count: int
    predicate: str
    epoch: int
    def __init__(self, dataset: _Optional[str] = ..., points: _Optional[bytes] = ..., count: _Optional[int] = ..., predicate: _Optional[str] = ..., epoch: _Optional[int] = ...) -> None: ...

class PredicateRequest(_message.Message):
    __slots__ = ("predicate",)
    PREDICATE_FIELD_NUMBER: _ClassVar[int]
    predicate: str
    def __init__(self, predicate: _Optional[str] = ...) -> None: ...

class FilterChunk(_message.Message):
    __slots__ = ("epoch", "total", "tags", "count")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    total: int
    tags: bytes
    count: int
    def __init__(self, epoch: _Optional[int] = ..., total: _Optional[int] = ..., tags: _Optional[bytes] = ..., count: _Optional[int] = ...) -> None: ...

class TagsRequest(_message.Message):
    __slots__ = ("dataset", "epoch")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    epoch: int
    def __init__(self, dataset: _Optional[str] = ..., epoch: _Optional[int] = ...) -> None: ...

class BucketRequest(_message.Message):
    __slots__ = ("dataset", "columns", "bucket", "whole_table", "epoch")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    WHOLE_TABLE_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    columns: _containers.RepeatedScalarFieldContainer[str]
    bucket: int
    whole_table: bool
    epoch: int
    def __init__(self, dataset: _Optional[str] = ..., columns: _Optional[_Iterable[str]] = ..., bucket: _Optional[int] = ..., whole_table: _Optional[bool] = ..., epoch: _Optional[int] = ...) -> None: ...

class EncryptedRows(_message.Message):
    __slots__ = ("bucket_bits", "columns", "tags", "ciphertexts", "count", "value_bits", "minimums", "rows_per_plaintext", "total", "paillier_public_key", "fetch_token")
    BUCKET_BITS_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    CIPHERTEXTS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    VALUE_BITS_FIELD_NUMBER: _ClassVar[int]
    MINIMUMS_FIELD_NUMBER: _ClassVar[int]
    ROWS_PER_PLAINTEXT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    PAILLIER_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    FETCH_TOKEN_FIELD_NUMBER: _ClassVar[int]
    bucket_bits: int
    columns: _containers.RepeatedScalarFieldContainer[str]
    tags: bytes
    ciphertexts: bytes
    count: int
    value_bits: _containers.RepeatedScalarFieldContainer[int]
    minimums: _containers.RepeatedScalarFieldContainer[int]
    rows_per_plaintext: int
    total: int
    paillier_public_key: bytes
    fetch_token: bytes
    def __init__(self, bucket_bits: _Optional[int] = ..., columns: _Optional[_Iterable[str]] = ..., tags: _Optional[bytes] = ..., ciphertexts: _Optional[bytes] = ..., count: _Optional[int] = ..., value_bits: _Optional[_Iterable[int]] = ..., minimums: _Optional[_Iterable[int]] = ..., rows_per_plaintext: _Optional[int] = ..., total: _Optional[int] = ..., paillier_public_key: _Optional[bytes] = ..., fetch_token: _Optional[bytes] = ...) -> None: ...

class MaskedRows(_message.Message):
    __slots__ = ("session_id", "dataset", "columns", "ciphertexts", "count", "rows", "groups", "positions", "path", "fetch_tokens")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    CIPHERTEXTS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    POSITIONS_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    FETCH_TOKENS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    dataset: str
    columns: _containers.RepeatedScalarFieldContainer[str]
    ciphertexts: bytes
    count: int
    rows: int
    groups: bytes
    positions: bytes
    path: str
    fetch_tokens: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, session_id: _Optional[str] = ..., dataset: _Optional[str] = ..., columns: _Optional[_Iterable[str]] = ..., ciphertexts: _Optional[bytes] = ..., count: _Optional[int] = ..., rows: _Optional[int] = ..., groups: _Optional[bytes] = ..., positions: _Optional[bytes] = ..., path: _Optional[str] = ..., fetch_tokens: _Optional[_Iterable[bytes]] = ...) -> None: ...

class ForwardRequest(_message.Message):
    __slots__ = ("session_id", "co_party", "rule_name", "rule", "applications", "slots")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CO_PARTY_FIELD_NUMBER: _ClassVar[int]
    RULE_NAME_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    APPLICATIONS_FIELD_NUMBER: _ClassVar[int]
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    co_party: str
    rule_name: str
    rule: bytes
    applications: int
    slots: int
    def __init__(self, session_id: _Optional[str] = ..., co_party: _Optional[str] = ..., rule_name: _Optional[str] = ..., rule: _Optional[bytes] = ..., applications: _Optional[int] = ..., slots: _Optional[int] = ...) -> None: ...

class SharesChunk(_message.Message):
    __slots__ = ("session_id", "requester", "dataset", "columns", "rows", "shares", "more", "reveal_allowed", "rule_name", "rule_fingerprint", "applications", "slots")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    SHARES_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    REVEAL_ALLOWED_FIELD_NUMBER: _ClassVar[int]
    RULE_NAME_FIELD_NUMBER: _ClassVar[int]
    RULE_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    APPLICATIONS_FIELD_NUMBER: _ClassVar[int]
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    requester: str
    dataset: str
    columns: _containers.RepeatedScalarFieldContainer[str]
    rows: int
    shares: _common_pb2.NdArray
    more: bool
    reveal_allowed: bool
    rule_name: str
    rule_fingerprint: str
    applications: int
    slots: int
    def __init__(self, session_id: _Optional[str] = ..., requester: _Optional[str] = ..., dataset: _Optional[str] = ..., columns: _Optional[_Iterable[str]] = ..., rows: _Optional[int] = ..., shares: _Optional[_Union[_common_pb2.NdArray, _Mapping]] = ..., more: _Optional[bool] = ..., reveal_allowed: _Optional[bool] = ..., rule_name: _Optional[str] = ..., rule_fingerprint: _Optional[str] = ..., applications: _Optional[int] = ..., slots: _Optional[int] = ...) -> None: ...

class DecryptReceipt(_message.Message):
    __slots__ = ("rows",)
    ROWS_FIELD_NUMBER: _ClassVar[int]
    rows: int
    def __init__(self, rows: _Optional[int] = ...) -> None: ...

class AggregateCheck(_message.Message):
    __slots__ = ("request", "rows")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    request: bytes
    rows: int
    def __init__(self, request: _Optional[bytes] = ..., rows: _Optional[int] = ...) -> None: ...

class PsiMessage(_message.Message):
    __slots__ = ("start", "points", "done", "tags")
    START_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    start: PsiStart
    points: PointBatch
    done: PsiDone
    tags: TagBatch
    def __init__(self, start: _Optional[_Union[PsiStart, _Mapping]] = ..., points: _Optional[_Union[PointBatch, _Mapping]] = ..., done: _Optional[_Union[PsiDone, _Mapping]] = ..., tags: _Optional[_Union[TagBatch, _Mapping]] = ...) -> None: ...

class PsiStart(_message.Message):
    __slots__ = ("dataset", "mode", "requester_count", "owner_count")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_COUNT_FIELD_NUMBER: _ClassVar[int]
    OWNER_COUNT_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    mode: str
    requester_count: int
    owner_count: int
    def __init__(self, dataset: _Optional[str] = ..., mode: _Optional[str] = ..., requester_count: _Optional[int] = ..., owner_count: _Optional[int] = ...) -> None: ...

class TagBatch(_message.Message):
    __slots__ = ("tags", "count")
    TAGS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    tags: bytes
    count: int
    def __init__(self, tags: _Optional[bytes] = ..., count: _Optional[int] = ...) -> None: ...

class PsiDone(_message.Message):
    __slots__ = ("list", "count")
    LIST_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    list: str
    count: int
    def __init__(self, list: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class ShareMessage(_message.Message):
    __slots__ = ("start", "data", "abort", "result")
    START_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    ABORT_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    start: ShareStart
    data: ShareData
    abort: ShareAbort
    result: ShareResult
    def __init__(self, start: _Optional[_Union[ShareStart, _Mapping]] = ..., data: _Optional[_Union[ShareData, _Mapping]] = ..., abort: _Optional[_Union[ShareAbort, _Mapping]] = ..., result: _Optional[_Union[ShareResult, _Mapping]] = ...) -> None: ...

class ShareStart(_message.Message):
    __slots__ = ("session_id", "program", "params", "initiator_index", "reserve")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PROGRAM_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    INITIATOR_INDEX_FIELD_NUMBER: _ClassVar[int]
    RESERVE_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    program: str
    params: bytes
    initiator_index: int
    reserve: _common_pb2.Reservation
    def __init__(self, session_id: _Optional[str] = ..., program: _Optional[str] = ..., params: _Optional[bytes] = ..., initiator_index: _Optional[int] = ..., reserve: _Optional[_Union[_common_pb2.Reservation, _Mapping]] = ...) -> None: ...

class ShareData(_message.Message):
    __slots__ = ("label", "array", "more")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    ARRAY_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    label: str
    array: _common_pb2.NdArray
    more: bool
    def __init__(self, label: _Optional[str] = ..., array: _Optional[_Union[_common_pb2.NdArray, _Mapping]] = ..., more: _Optional[bool] = ...) -> None: ...

class ShareAbort(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...

class ShareResult(_message.Message):
    __slots__ = ("summary",)
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    summary: bytes
    def __init__(self, summary: _Optional[bytes] = ...) -> None: ...

class AggregateJob(_message.Message):
    __slots__ = ("request", "peer")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    request: bytes
    peer: str
    def __init__(self, request: _Optional[bytes] = ..., peer: _Optional[str] = ...) -> None: ...

class CellShares(_message.Message):
    __slots__ = ("session_id", "cells", "values", "rows")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CELLS_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    cells: _containers.RepeatedScalarFieldContainer[str]
    values: _common_pb2.NdArray
    rows: int
    def __init__(self, session_id: _Optional[str] = ..., cells: _Optional[_Iterable[str]] = ..., values: _Optional[_Union[_common_pb2.NdArray, _Mapping]] = ..., rows: _Optional[int] = ...) -> None: ...

class ResultRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...
