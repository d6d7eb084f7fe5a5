from protos import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Registration(_message.Message):
    __slots__ = ("endpoint", "audit_public_key")
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    AUDIT_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    endpoint: str
    audit_public_key: str
    def __init__(self, endpoint: _Optional[str] = ..., audit_public_key: _Optional[str] = ...) -> None: ...

class DirectoryEntry(_message.Message):
    __slots__ = ("party", "endpoint", "certificate_sha256", "audit_public_key", "registered_at")
    PARTY_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_SHA256_FIELD_NUMBER: _ClassVar[int]
    AUDIT_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_AT_FIELD_NUMBER: _ClassVar[int]
    party: str
    endpoint: str
    certificate_sha256: str
    audit_public_key: str
    registered_at: str
    def __init__(self, party: _Optional[str] = ..., endpoint: _Optional[str] = ..., certificate_sha256: _Optional[str] = ..., audit_public_key: _Optional[str] = ..., registered_at: _Optional[str] = ...) -> None: ...

class Directory(_message.Message):
    __slots__ = ("parties",)
    PARTIES_FIELD_NUMBER: _ClassVar[int]
    parties: _containers.RepeatedCompositeFieldContainer[DirectoryEntry]
    def __init__(self, parties: _Optional[_Iterable[_Union[DirectoryEntry, _Mapping]]] = ...) -> None: ...

class SessionRequest(_message.Message):
    __slots__ = ("session_id", "parties", "reserve")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PARTIES_FIELD_NUMBER: _ClassVar[int]
    RESERVE_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    parties: _containers.RepeatedScalarFieldContainer[str]
    reserve: _common_pb2.Reservation
    def __init__(self, session_id: _Optional[str] = ..., parties: _Optional[_Iterable[str]] = ..., reserve: _Optional[_Union[_common_pb2.Reservation, _Mapping]] = ...) -> None: ...

class ReservedCorrections(_message.Message):
    __slots__ = ("kind", "words")
    KIND_FIELD_NUMBER: _ClassVar[int]
    WORDS_FIELD_NUMBER: _ClassVar[int]
    kind: str
    words: _common_pb2.NdArray
    def __init__(self, kind: _Optional[str] = ..., words: _Optional[_Union[_common_pb2.NdArray, _Mapping]] = ...) -> None: ...

class SessionSeed(_message.Message):
    __slots__ = ("index", "seed", "reserved")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    RESERVED_FIELD_NUMBER: _ClassVar[int]
    index: int
    seed: bytes
    reserved: _containers.RepeatedCompositeFieldContainer[ReservedCorrections]
    def __init__(self, index: _Optional[int] = ..., seed: _Optional[bytes] = ..., reserved: _Optional[_Iterable[_Union[ReservedCorrections, _Mapping]]] = ...) -> None: ...

class CorrectionRequest(_message.Message):
    __slots__ = ("session_id", "kind", "stream", "size")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    kind: str
    stream: int
    size: int
    def __init__(self, session_id: _Optional[str] = ..., kind: _Optional[str] = ..., stream: _Optional[int] = ..., size: _Optional[int] = ...) -> None: ...

class CorrectionChunk(_message.Message):
    __slots__ = ("words", "more")
    WORDS_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    words: _common_pb2.NdArray
    more: bool
    def __init__(self, words: _Optional[_Union[_common_pb2.NdArray, _Mapping]] = ..., more: _Optional[bool] = ...) -> None: ...

class WitnessReceipt(_message.Message):
    __slots__ = ("witnessed_at",)
    WITNESSED_AT_FIELD_NUMBER: _ClassVar[int]
    witnessed_at: str
    def __init__(self, witnessed_at: _Optional[str] = ...) -> None: ...

class WitnessQuery(_message.Message):
    __slots__ = ("party",)
    PARTY_FIELD_NUMBER: _ClassVar[int]
    party: str
    def __init__(self, party: _Optional[str] = ...) -> None: ...

class WitnessedHeads(_message.Message):
    __slots__ = ("heads",)
    HEADS_FIELD_NUMBER: _ClassVar[int]
    heads: _containers.RepeatedCompositeFieldContainer[_common_pb2.AuditHead]
    def __init__(self, heads: _Optional[_Iterable[_Union[_common_pb2.AuditHead, _Mapping]]] = ...) -> None: ...
